//! Files re-read when they change: their modification time and size are polled (Secret
//! volumes are updated by an atomic symlink swap, which changes both as seen through the link).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What a file looked like when last seen: `None` if it could not be stat'ed.
type Stamp = Option<(Option<SystemTime>, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok(), meta.len()))
}

/// The stamps of a set of files.
pub(crate) struct Stamps {
    paths: Vec<PathBuf>,
    last: Vec<Stamp>,
}

impl Stamps {
    pub(crate) fn new(paths: Vec<PathBuf>) -> Stamps {
        let last = paths.iter().map(|p| stamp(p)).collect();
        Stamps { paths, last }
    }

    /// True (once) when any file changed since the last call.
    pub(crate) fn changed(&mut self) -> bool {
        let now: Vec<Stamp> = self.paths.iter().map(|p| stamp(p)).collect();
        if now == self.last {
            return false;
        }
        self.last = now;
        true
    }
}

/// Calls `check` every `every` until the returned task is aborted (or the runtime stops).
pub(crate) fn every(
    every: Duration,
    mut check: impl FnMut() + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            check();
        }
    })
}
