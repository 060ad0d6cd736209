//! The users' counters `(high, acked, delivered)`, and the progress the writer has applied but
//! not written yet.
//!
//! A user's highest seq is the larger of its `USERS` row and its last `INDEX` entry: a submit
//! writes only the index entry, which it writes anyway, so a commit of submits leaves the
//! `USERS` table alone. The row is written when a purge removes index entries (so a user's seqs
//! never go back) and for acked/delivered marks.
//!
//! Acks, delivered marks and outbox clears only record progress that can be repeated, so they
//! need not be written at once: the writer applies them to [`Deferred`] (which readers merge
//! with what they read from the file, so an ack is visible as soon as it is answered). Outbox
//! clears are written by the next commit (their entries are the newest of the table, on pages
//! that commit writes anyway); the marks in one go at most [`FLUSH_EVERY`] later, in whatever
//! commit comes next or in one of their own, so commits of submits do not rewrite the users'
//! rows. A crash loses at most that much progress: some messages are delivered
//! again (clients drop them by seq) or dispatched again (push nodes drop them by seq, mobile
//! claims stop a second notification), never a message.

use std::collections::hash_map::Entry as Slot;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redb::{ReadableTable, WriteTransaction};

use super::{INDEX, Marks, USERS};
use crate::{AckOutcome, Error, Result};

/// Longest applied progress waits before it is written.
pub(super) const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Most users (and outbox clears) deferred before they are written anyway: bounds the memory.
const MAX_DEFERRED: usize = 65_536;

/// Progress applied but not yet in the file.
#[derive(Default)]
pub(super) struct Deferred {
    /// Users whose acked or delivered mark moved since the last flush: their counters as of
    /// the writer's last transaction (exact, unlike the file's).
    marks: HashMap<String, Marks>,
    /// Outbox entries dispatched but still in the `OUTBOX` table.
    cleared: HashSet<String>,
    /// When the oldest of them was applied.
    since: Option<Instant>,
    /// Flushes of marks so far: a reader whose read overlapped one reads again.
    flushes: u64,
}

/// [`Deferred`], shared by the writer and the readers.
#[derive(Clone, Default)]
pub(super) struct Pending(Arc<Mutex<Deferred>>);

impl Pending {
    fn lock(&self) -> MutexGuard<'_, Deferred> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When what is deferred must be written.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.lock().since.map(|t| t + FLUSH_EVERY)
    }

    /// Whether the next commit writes what is deferred.
    pub(super) fn due(&self) -> bool {
        let d = self.lock();
        d.since.is_some_and(|t| t.elapsed() >= FLUSH_EVERY)
            || d.marks.len() >= MAX_DEFERRED
            || d.cleared.len() >= MAX_DEFERRED
    }

    /// The flush count, read before a read transaction starts.
    fn generation(&self) -> u64 {
        self.lock().flushes
    }

    /// Runs `read` (which reads the file and then merges with [`Pending::merge`]) until no
    /// flush happened meanwhile: a read transaction that began before a flush, merged with
    /// what is deferred after it, would miss the flushed progress.
    pub(super) fn consistent<T>(&self, mut read: impl FnMut() -> Result<T>) -> Result<T> {
        for _ in 0..8 {
            let before = self.generation();
            let out = read()?;
            if self.generation() == before {
                return Ok(out);
            }
        }
        read()
    }

    /// `row` (a user's counters as read from the file) with what is deferred for `user`.
    pub(super) fn merge(&self, user: &str, row: Marks) -> Marks {
        match self.lock().marks.get(user) {
            Some(d) => max_marks(row, *d),
            None => row,
        }
    }

    /// Every user of `list` merged at once (one lock).
    pub(super) fn merge_all<'a>(&self, list: impl Iterator<Item = (&'a str, Marks)>) -> Vec<Marks> {
        let d = self.lock();
        list.map(|(u, row)| match d.marks.get(u) {
            Some(m) => max_marks(row, *m),
            None => row,
        })
        .collect()
    }

    /// Applies an ack without the writer when the user's counters are in memory (exact: the
    /// writer updates them after every transaction, before it answers a submit, so a client
    /// cannot ack a seq the memory does not know yet). `None`: the writer must load them.
    pub(super) fn try_ack(&self, user: &str, seq: u64) -> Option<AckOutcome> {
        self.lock().marks.get_mut(user).map(|m| ack(m, seq))
    }

    /// [`Pending::try_ack`] for a delivered mark.
    pub(super) fn try_delivered(&self, user: &str, seq: u64) -> bool {
        self.lock()
            .marks
            .get_mut(user)
            .map(|m| delivered(m, seq))
            .is_some()
    }

    /// Whether outbox entry `id` was dispatched (its removal deferred).
    pub(super) fn is_cleared(&self, id: &str) -> bool {
        self.lock().cleared.contains(id)
    }

    /// The deferred clears, to remove from `OUTBOX` in the next commit.
    pub(super) fn cleared(&self) -> Vec<String> {
        self.lock().cleared.iter().cloned().collect()
    }
}

/// Moves the acked (and delivered) mark to `seq`, never past what was handed out: an ack of a
/// seq the user does not have yet must not swallow the message that will get it.
pub(super) fn ack(m: &mut Marks, seq: u64) -> AckOutcome {
    let seq = seq.min(m.0);
    if seq > m.1 {
        m.1 = seq;
        m.2 = m.2.max(seq);
        AckOutcome::Acked
    } else {
        AckOutcome::AlreadyFinal
    }
}

/// Moves the delivered mark to `seq` (never past what was handed out).
pub(super) fn delivered(m: &mut Marks, seq: u64) {
    m.2 = m.2.max(seq.min(m.0));
}

fn max_marks(a: Marks, b: Marks) -> Marks {
    (a.0.max(b.0), a.1.max(b.1), a.2.max(b.2))
}

/// A user's highest seq in the index (0 without entries).
pub(super) fn last_indexed(
    index: &impl ReadableTable<(&'static str, u64), &'static str>,
    user: &str,
) -> Result<u64> {
    let last = index
        .range((user, 0)..=(user, u64::MAX))
        .map_err(Error::backend)?
        .next_back();
    match last {
        Some(e) => Ok(e.map_err(Error::backend)?.0.value().1),
        None => Ok(0),
    }
}

/// A user's counters as the file has them: the row, its high raised to the index's last seq.
pub(super) fn read_marks(
    users: &impl ReadableTable<&'static str, (u64, u64, u64)>,
    index: &impl ReadableTable<(&'static str, u64), &'static str>,
    user: &str,
) -> Result<Marks> {
    let mut m = super::marks(users, user)?;
    m.0 = m.0.max(last_indexed(index, user)?);
    Ok(m)
}

struct Entry {
    loaded: Marks,
    marks: Marks,
    /// Write the row in this transaction (a purge removes index entries below its high).
    persist: bool,
}

/// The counters one transaction touches, and its `INDEX` table (which holds the highs).
pub(super) struct Users<'t> {
    table: redb::Table<'t, &'static str, (u64, u64, u64)>,
    pub index: redb::Table<'t, (&'static str, u64), &'static str>,
    entries: HashMap<String, Entry>,
    pending: Pending,
}

impl<'t> Users<'t> {
    pub(super) fn open(txn: &'t WriteTransaction, pending: &Pending) -> Result<Users<'t>> {
        Ok(Users {
            table: txn.open_table(USERS).map_err(Error::backend)?,
            index: txn.open_table(INDEX).map_err(Error::backend)?,
            entries: HashMap::new(),
            pending: pending.clone(),
        })
    }

    /// The user's counters, for this transaction to change.
    pub(super) fn get(&mut self, user: &str) -> Result<&mut Marks> {
        if !self.entries.contains_key(user) {
            let deferred = self.pending.lock().marks.get(user).copied();
            let current = match deferred {
                Some(m) => m,
                None => read_marks(&self.table, &self.index, user)?,
            };
            self.entries.insert(
                user.to_owned(),
                Entry {
                    loaded: current,
                    marks: current,
                    persist: false,
                },
            );
        }
        Ok(&mut self.entries.get_mut(user).expect("just inserted").marks)
    }

    /// Writes the user's row in this transaction (before its index entries go).
    pub(super) fn persist(&mut self, user: &str) -> Result<()> {
        self.get(user)?;
        self.entries.get_mut(user).expect("just loaded").persist = true;
        Ok(())
    }

    /// Ends the transaction's use of the counters. With `flush`, every moved mark (this
    /// transaction's and the deferred ones) is written now; without, moved marks are
    /// deferred. Returns what to do once the transaction committed (or, without `flush`,
    /// ended without a commit).
    pub(super) fn finish(mut self, flush: bool) -> Result<AfterCommit> {
        let mut after = AfterCommit {
            flushed: flush,
            marks: Vec::new(),
            clears_written: false,
            cleared: Vec::new(),
        };
        // Computed under the lock, written without it (acks take it meanwhile).
        let mut rows = Vec::new();
        {
            let pending = self.pending.lock();
            if flush {
                for (user, m) in &pending.marks {
                    if !self.entries.contains_key(user) {
                        rows.push((user.clone(), *m));
                        after.marks.push((user.clone(), *m));
                    }
                }
            }
            for (user, e) in self.entries.drain() {
                let moved = (e.marks.1, e.marks.2) != (e.loaded.1, e.loaded.2);
                // Acked meanwhile without the writer (see `Pending::try_ack`)?
                let current = pending.marks.get(&user).copied();
                let deferred = moved || current.is_some();
                let marks = current.map_or(e.marks, |c| max_marks(c, e.marks));
                if e.persist || (flush && deferred) {
                    rows.push((user.clone(), marks));
                }
                if deferred {
                    // Deferred (or deferred already: its high must stay exact); with `flush`,
                    // what was written.
                    after.marks.push((user, marks));
                }
            }
        }
        for (user, m) in rows {
            self.table
                .insert(user.as_str(), m)
                .map_err(Error::backend)?;
        }
        Ok(after)
    }
}

/// What a transaction leaves to [`Pending`] once it has ended well.
pub(super) struct AfterCommit {
    flushed: bool,
    marks: Vec<(String, Marks)>,
    /// The transaction committed and removed every deferred outbox clear.
    pub clears_written: bool,
    /// Outbox clears this transaction deferred (it did not commit).
    pub cleared: Vec<String>,
}

impl AfterCommit {
    pub(super) fn apply(self, pending: &Pending) {
        let mut d = pending.lock();
        if self.clears_written {
            // A read that overlapped this may still find a cleared entry in its snapshot:
            // a second dispatch, which push nodes drop by seq. Not worth a retry.
            d.cleared.clear();
        }
        d.cleared.extend(self.cleared);
        if self.flushed {
            // Gone from memory unless acked again while it was written.
            for (user, written) in self.marks {
                if let Slot::Occupied(mut e) = d.marks.entry(user) {
                    if *e.get() == written {
                        e.remove();
                    } else {
                        *e.get_mut() = max_marks(*e.get(), written);
                    }
                }
            }
            d.flushes += 1;
        } else {
            for (user, m) in self.marks {
                d.marks
                    .entry(user)
                    .and_modify(|v| *v = max_marks(*v, m))
                    .or_insert(m);
            }
        }
        if d.marks.is_empty() && d.cleared.is_empty() {
            d.since = None;
        } else {
            d.since.get_or_insert_with(Instant::now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deferred(pending: &Pending, user: &str, m: Marks) {
        let mut d = pending.lock();
        d.marks.insert(user.to_owned(), m);
        d.since = Some(Instant::now());
    }

    fn flushed(marks: Vec<(String, Marks)>) -> AfterCommit {
        AfterCommit {
            flushed: true,
            marks,
            clears_written: true,
            cleared: Vec::new(),
        }
    }

    /// A flush forgets what it wrote, but not an ack taken in memory while it wrote.
    #[test]
    fn a_flush_keeps_what_moved_while_it_wrote() {
        let pending = Pending::default();
        deferred(&pending, "a", (5, 2, 2));
        deferred(&pending, "b", (5, 3, 3));
        let written = vec![("a".to_owned(), (5, 2, 2)), ("b".to_owned(), (7, 3, 3))];
        // Between the rows' write and the commit's end:
        assert_eq!(pending.try_ack("b", 4), Some(AckOutcome::Acked));
        let generation = pending.generation();
        flushed(written).apply(&pending);
        assert_ne!(pending.generation(), generation, "readers must read again");
        assert_eq!(pending.merge("a", (5, 2, 2)), (5, 2, 2));
        assert!(
            pending.try_ack("a", 3).is_none(),
            "a was written: back to the file"
        );
        // b keeps its newer ack and the high the transaction handed out.
        assert_eq!(pending.merge("b", (0, 0, 0)), (7, 4, 4));
        assert!(pending.deadline().is_some());
    }

    /// Acks stop at the highest seq handed out; a transaction's result merges by maximum.
    #[test]
    fn acks_in_memory_stop_at_the_high_and_merge_by_maximum() {
        let pending = Pending::default();
        assert!(
            pending.try_ack("u", 1).is_none(),
            "not in memory: the writer loads it"
        );
        deferred(&pending, "u", (3, 1, 1));
        assert_eq!(pending.try_ack("u", 9), Some(AckOutcome::Acked));
        assert_eq!(pending.try_ack("u", 2), Some(AckOutcome::AlreadyFinal));
        assert_eq!(pending.merge("u", (0, 0, 0)), (3, 3, 3));
        // A transaction that loaded u before that ack and handed out seq 4.
        AfterCommit {
            flushed: false,
            marks: vec![("u".to_owned(), (4, 1, 1))],
            clears_written: false,
            cleared: vec!["batch".to_owned()],
        }
        .apply(&pending);
        assert_eq!(pending.merge("u", (0, 0, 0)), (4, 3, 3));
        assert!(pending.is_cleared("batch"));
        assert!(pending.try_delivered("u", 9));
        assert_eq!(pending.merge("u", (0, 0, 0)), (4, 3, 4));
    }
}
