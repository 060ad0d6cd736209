//! `Node.Deliver` over gRPC: dispatch's [`GrpcTransport`] (one long-lived stream per node,
//! nodes addressed through [`addressing`]) and the push node's [`NodeService`].

pub mod addressing;
mod client;
mod service;

pub use client::GrpcTransport;
pub use service::NodeService;
