//! Dispatch: the outbox workers — where is a message routed, and who gets it.
//!
//! - [`Dispatcher`]: takes accepted batches from the outbox (handed over by collect at once,
//!   or claimed when a lease ran out), looks every recipient's nodes up in one batch, sends
//!   each node its [`DeliveryBatch`](pushcluster_node::DeliveryBatch)es (each payload once),
//!   starts the mobile sends, and clears the mark. Routes are looked up only after the batch
//!   is stored, and push nodes write the route before replaying, so a message stored while
//!   its user connects is either forwarded or replayed — never neither.
//! - [`worker`]: the loop that feeds the dispatcher: hand-offs, wake-ups, lease expiries.
//! - [`handoff`]: how collect tells dispatch about a batch (in process, or the `Dispatch.Wake`
//!   gRPC call, which [`carried`] batches travel whole in), and [`service`]: the dispatch
//!   role's side of it.
//! - [`mobile`]: the [`MobileSender`] seam and [`MobilePush`], which sends a message's
//!   `notification` to offline (or all) recipients' registered devices in the background.
#![forbid(unsafe_code)]

pub mod carried;
mod dispatcher;
pub mod handoff;
pub mod mobile;
pub mod service;
pub mod worker;

pub use dispatcher::{DispatchConfig, DispatchReport, Dispatcher};
pub use handoff::Handoff;
pub use mobile::{MobilePush, MobileRequest, MobileResult, MobileSender};
