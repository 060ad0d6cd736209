//! WebSocket close codes sent by push nodes. Every close carries a human-readable reason.

/// Server is draining (SIGTERM, scale-down): reconnect, possibly to another node, and resume.
pub const GOING_AWAY: u16 = 1001;
/// The client sent something that is not a valid JSON client frame.
pub const INVALID_FRAME: u16 = 1007;
/// The client sent a binary frame; the protocol is JSON text only.
pub const UNSUPPORTED_DATA: u16 = 1003;
/// The client could not keep up: its send queue overflowed. Nothing is lost; reconnect with
/// `last_seq` to receive the rest.
pub const TRY_AGAIN_LATER: u16 = 1013;
/// No frame (not even a pong) arrived within the idle timeout.
pub const IDLE_TIMEOUT: u16 = 4000;

pub const REASON_GOING_AWAY: &str = "going away, reconnect";
pub const REASON_OVERFLOW: &str = "send queue overflow, reconnect to resume";
pub const REASON_IDLE: &str = "idle timeout";
pub const REASON_BINARY: &str = "binary frames are not supported";
