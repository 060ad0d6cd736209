//! Mobile push lives in `pushcluster-mobile` (fan-out, records, vendor senders); dispatch
//! decides who gets it: after routing, each recipient whose `mobile` policy asks for it
//! ([`wants_mobile`]) is handed to [`MobilePush`], which sends in the background.

pub use pushcluster_mobile::{MobilePush, MobileRequest, MobileResult, MobileSender, wants_mobile};

#[cfg(test)]
mod tests;
