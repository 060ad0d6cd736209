//! The wire protocol shared by every pushcluster role.
//!
//! - [`frame`]: JSON text frames exchanged with WebSocket clients (see `docs/protocol.md`).
//! - [`close`]: the WebSocket close codes the server uses and what a client should do.
//! - [`api`]: request and response bodies of the collect HTTP API, with validation that names
//!   the offending field.
//! - [`payload`]: a message's JSON payload, validated once and shared.
#![forbid(unsafe_code)]

pub mod api;
pub mod close;
pub mod delivery;
pub mod frame;
pub mod grpc;
pub mod payload;
