//! The ledger's verdict on one step: accepted versus delivered per device, how each
//! device's connections ended, and the order the messages came in.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::End;

/// One device of one step.
#[derive(Debug, Clone)]
pub struct DeviceReport {
    pub dev: usize,
    pub user: String,
    /// Messages collect accepted for this device's user.
    pub accepted: usize,
    /// Distinct messages this device received.
    pub delivered: usize,
    /// Messages received again (at-least-once redelivery after a reconnect).
    pub duplicates: usize,
    pub missing: Vec<u64>,
    pub unexpected: Vec<u64>,
    pub in_order: bool,
    /// Frames that came after a higher seq on the same connection (protocol.md: "per user,
    /// frames arrive in seq order").
    pub seq_inversions: usize,
    /// (k, seq, connection number) of every frame of the step, in arrival order.
    pub arrivals: Vec<(u64, u64, u32)>,
    /// Connections this device saw closed with 1001 "going away".
    pub going_away: usize,
    /// Connections that broke without a close frame.
    pub broken: usize,
    /// How each of this device's connections ended during the step.
    pub ends: Vec<End>,
}

/// Accepted versus delivered, per device, for one step.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub step: u32,
    pub name: String,
    /// How long messages were posted.
    pub posted: Duration,
    pub given_up: Vec<String>,
    pub retries: usize,
    pub devices: Vec<DeviceReport>,
}

impl StepReport {
    /// Messages accepted (each once, whatever the number of devices).
    pub fn accepted(&self) -> usize {
        let mut per_user = BTreeMap::new();
        for d in &self.devices {
            per_user.insert(d.user.clone(), d.accepted);
        }
        per_user.values().sum()
    }

    /// Deliveries expected over every device, and made.
    pub fn deliveries(&self) -> (usize, usize) {
        (
            self.devices.iter().map(|d| d.accepted).sum(),
            self.devices.iter().map(|d| d.delivered).sum(),
        )
    }

    pub fn missing(&self) -> usize {
        self.devices.iter().map(|d| d.missing.len()).sum()
    }

    pub fn going_away(&self) -> usize {
        self.devices.iter().map(|d| d.going_away).sum()
    }

    pub fn broken(&self) -> usize {
        self.devices.iter().map(|d| d.broken).sum()
    }

    /// Devices whose messages came in another order than collect accepted them.
    pub fn reordered(&self) -> usize {
        self.devices.iter().filter(|d| !d.in_order).count()
    }

    pub fn seq_inversions(&self) -> usize {
        self.devices.iter().map(|d| d.seq_inversions).sum()
    }

    /// Panics, naming the devices, unless every device got exactly its user's accepted
    /// messages and no post was given up; with `strict_order`, also unless they came in the
    /// order collect accepted them.
    ///
    /// Both kinds of disorder are counted on each step's line: `reordered` (a device got its
    /// user's messages in another order than collect accepted them: seqs handed out against
    /// the posting order across collect pods) and `seq inversions` (a frame after a higher
    /// seq on one connection: a late row sent after what follows it).
    pub fn assert_complete(&self, strict_order: bool) {
        let bad: Vec<&DeviceReport> = self
            .devices
            .iter()
            .filter(|d| {
                !d.missing.is_empty()
                    || !d.unexpected.is_empty()
                    || (strict_order && (!d.in_order || d.seq_inversions > 0))
            })
            .collect();
        assert!(
            bad.is_empty() && self.given_up.is_empty(),
            "{self}\ngiven up: {:?}\ndevices that differ: {bad:#?}",
            self.given_up
        );
    }
}

impl fmt::Display for StepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (expected, delivered) = self.deliveries();
        write!(
            f,
            "step {} {:<34} accepted {:>5} | deliveries expected {:>5}, delivered {:>5}, missing {} | \
             {} devices all complete: {} | reordered {}, seq inversions {} | 1001 closes {}, \
             broken {} | post retries {} | {:.0} s",
            self.step,
            self.name,
            self.accepted(),
            expected,
            delivered,
            self.missing(),
            self.devices.len(),
            self.devices
                .iter()
                .all(|d| d.missing.is_empty() && d.unexpected.is_empty()),
            self.reordered(),
            self.seq_inversions(),
            self.going_away(),
            self.broken(),
            self.retries,
            self.posted.as_secs_f64(),
        )
    }
}

/// Frames of `arrivals` (k, seq, connection) below an earlier frame's seq on the same
/// connection (duplicates, the same seq again, excluded).
pub(super) fn seq_inversions(arrivals: &[(u64, u64, u32)]) -> usize {
    let mut high: BTreeMap<u32, u64> = BTreeMap::new();
    let mut inversions = 0;
    for &(_, seq, conn) in arrivals {
        let h = high.entry(conn).or_default();
        if seq < *h {
            inversions += 1;
        }
        *h = (*h).max(seq);
    }
    inversions
}
