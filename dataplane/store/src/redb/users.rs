//! The users' counters `(high, acked, delivered)`, and the progress the writer has applied but
//! not written yet.
//!
//! A user's highest seq is the larger of its `USERS` row and its last `INDEX` entry: a submit
//! writes only the index entry, which it writes anyway, so a commit of submits leaves the
//! `USERS` table alone. The row is written when a purge removes index entries (so a user's seqs
//! never go back) and for acked/delivered marks.
//!
//! Memory ([`Deferred`]) keeps the exact counters of the users seen lately: the writer updates
//! them after every transaction, before it answers a submit. Acks, delivered marks and outbox
//! clears only record progress that can be repeated, so they need not be written at once: an
//! ack of a user in memory is applied there by the caller, without the writer; readers merge
//! memory with what they read from the file, so an ack is visible as soon as it is answered.
//! Outbox clears are written by the next commit (their entries are the newest of the table, on
//! pages that commit writes anyway); moved marks in one go at most [`FLUSH_EVERY`] later, in
//! whatever commit comes next or in one of their own, so commits of submits do not rewrite the
//! users' rows. A crash loses at most that much progress: some messages are delivered again
//! (clients drop them by seq) or dispatched again (push nodes drop them by seq, mobile claims
//! stop a second notification), never a message.

use std::collections::hash_map::Entry as Slot;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redb::{ReadableTable, WriteTransaction};

use super::{INDEX, Marks, USERS};
use crate::{AckOutcome, Error, Result};

/// Longest applied progress waits before it is written.
pub(super) const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Most users memory keeps before it forgets those with nothing unwritten, and most moved
/// users or outbox clears before they are written anyway: bounds the memory.
const MAX_KEPT: usize = 65_536;

/// A user's counters in memory.
#[derive(Clone, Copy)]
struct Counters {
    marks: Marks,
    /// The acked or delivered mark is ahead of the file.
    dirty: bool,
}

/// What memory holds: counters, and progress not yet in the file.
#[derive(Default)]
pub(super) struct Deferred {
    users: HashMap<String, Counters>,
    /// How many of `users` are dirty.
    dirty: usize,
    /// Outbox entries dispatched but still in the `OUTBOX` table.
    cleared: HashSet<String>,
    /// Since when something is unwritten.
    since: Option<Instant>,
    /// Times memory forgot users: a reader whose read overlapped one reads again.
    forgets: u64,
}

impl Deferred {
    /// Sets a user's counters and whether they are ahead of the file.
    fn set(&mut self, user: String, marks: Marks, dirty: bool) {
        match self.users.entry(user) {
            Slot::Occupied(mut e) => {
                let c = e.get_mut();
                match (c.dirty, dirty) {
                    (false, true) => self.dirty += 1,
                    (true, false) => self.dirty -= 1,
                    _ => {}
                }
                *c = Counters { marks, dirty };
            }
            Slot::Vacant(e) => {
                self.dirty += usize::from(dirty);
                e.insert(Counters { marks, dirty });
            }
        }
    }

    /// `row` (a user's counters as read from the file) with what memory has for `user`.
    fn merged(&self, user: &str, row: Marks) -> Marks {
        self.users
            .get(user)
            .map_or(row, |c| max_marks(row, c.marks))
    }

    /// Applies `f` to a kept user's counters (`None`: not kept).
    fn update<T>(&mut self, user: &str, f: impl FnOnce(&mut Marks) -> T) -> Option<T> {
        let c = self.users.get_mut(user)?;
        let before = c.marks;
        let out = f(&mut c.marks);
        if c.marks != before {
            if !c.dirty {
                c.dirty = true;
                self.dirty += 1;
            }
            self.since.get_or_insert_with(Instant::now);
        }
        Some(out)
    }
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
            || d.dirty >= MAX_KEPT
            || d.cleared.len() >= MAX_KEPT
    }

    fn generation(&self) -> u64 {
        self.lock().forgets
    }

    /// Runs `read` (which reads the file and then merges with [`Pending::merge`]) until memory
    /// forgot nobody meanwhile: a read transaction that began before a write of the marks,
    /// merged with a memory that forgot them after it, would miss them.
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

    /// `row` (a user's counters as read from the file) with what memory has for `user`.
    pub(super) fn merge(&self, user: &str, row: Marks) -> Marks {
        self.lock().merged(user, row)
    }

    /// Every user of `list` merged at once (one lock).
    pub(super) fn merge_all<'a>(&self, list: impl Iterator<Item = (&'a str, Marks)>) -> Vec<Marks> {
        let d = self.lock();
        list.map(|(u, row)| d.merged(u, row)).collect()
    }

    /// Applies an ack without the writer when the user's counters are in memory (exact, so a
    /// client cannot ack a seq memory does not know yet). `None`: the writer must load them.
    pub(super) fn try_ack(&self, user: &str, seq: u64) -> Option<AckOutcome> {
        self.lock().update(user, |m| ack(m, seq))
    }

    /// [`Pending::try_ack`] for a delivered mark.
    pub(super) fn try_delivered(&self, user: &str, seq: u64) -> bool {
        self.lock().update(user, |m| delivered(m, seq)).is_some()
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

/// Whether `a` and `b` have the same acked and delivered marks (what a row write records).
fn same_marks(a: Marks, b: Marks) -> bool {
    (a.1, a.2) == (b.1, b.2)
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
            let kept = self.pending.lock().users.get(user).map(|c| c.marks);
            let current = match kept {
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

    /// Ends the transaction's use of the counters. With `flush`, every mark ahead of the file
    /// (this transaction's and memory's) is written now; without, moved marks stay in memory.
    /// `clears_written`: the transaction will commit, and removed every deferred outbox
    /// clear; `cleared`: the clears it deferred instead. Returns what to do once the
    /// transaction committed (or ended without a commit).
    pub(super) fn finish(
        mut self,
        flush: bool,
        clears_written: bool,
        cleared: Vec<String>,
    ) -> Result<AfterCommit> {
        let mut after = AfterCommit {
            updates: Vec::with_capacity(self.entries.len()),
            clears_written,
            cleared,
        };
        // Computed under the lock, written without it (acks take it meanwhile).
        let mut rows = Vec::new();
        {
            let pending = self.pending.lock();
            if flush && pending.dirty > 0 {
                for (user, c) in &pending.users {
                    if c.dirty && !self.entries.contains_key(user) {
                        rows.push((user.clone(), c.marks));
                        after.updates.push(Update {
                            user: user.clone(),
                            marks: c.marks,
                            moved: false,
                            written: true,
                        });
                    }
                }
            }
            for (user, e) in self.entries.drain() {
                let moved = !same_marks(e.marks, e.loaded);
                // Acked meanwhile without the writer (see `Pending::try_ack`)?
                let kept = pending.users.get(&user);
                let marks = kept.map_or(e.marks, |c| max_marks(c.marks, e.marks));
                let written = e.persist || (flush && (moved || kept.is_some_and(|c| c.dirty)));
                if written {
                    rows.push((user.clone(), marks));
                }
                after.updates.push(Update {
                    user,
                    marks,
                    moved,
                    written,
                });
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

/// One user's counters after a transaction.
struct Update {
    user: String,
    marks: Marks,
    /// The transaction moved its acked or delivered mark.
    moved: bool,
    /// The transaction wrote its row with `marks`.
    written: bool,
}

/// What a transaction leaves to memory once it has ended well.
pub(super) struct AfterCommit {
    updates: Vec<Update>,
    /// The transaction committed and removed every deferred outbox clear.
    clears_written: bool,
    /// Outbox clears this transaction deferred (it did not commit).
    cleared: Vec<String>,
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
        let mut wrote = false;
        for u in self.updates {
            wrote |= u.written;
            let (marks, dirty) = match d.users.get(&u.user) {
                // Memory may have moved on (an ack) while this transaction ran.
                Some(c) => {
                    let marks = max_marks(c.marks, u.marks);
                    let dirty = if u.written {
                        !same_marks(marks, u.marks)
                    } else {
                        c.dirty || u.moved
                    };
                    (marks, dirty)
                }
                None => (u.marks, u.moved && !u.written),
            };
            d.set(u.user, marks, dirty);
        }
        if d.users.len() > MAX_KEPT {
            // Forget those with nothing unwritten: the file has their marks.
            d.users.retain(|_, c| c.dirty);
            d.forgets += 1;
        }
        if d.dirty == 0 && d.cleared.is_empty() {
            d.since = None;
        } else if wrote {
            d.since = Some(Instant::now());
        } else {
            d.since.get_or_insert_with(Instant::now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(pending: &Pending, user: &str, marks: Marks, dirty: bool) {
        let mut d = pending.lock();
        d.set(user.to_owned(), marks, dirty);
        d.since = Some(Instant::now());
    }

    fn update(user: &str, marks: Marks, moved: bool, written: bool) -> Update {
        Update {
            user: user.to_owned(),
            marks,
            moved,
            written,
        }
    }

    fn after(updates: Vec<Update>) -> AfterCommit {
        AfterCommit {
            updates,
            clears_written: true,
            cleared: Vec::new(),
        }
    }

    fn dirty(pending: &Pending, user: &str) -> Option<bool> {
        pending.lock().users.get(user).map(|c| c.dirty)
    }

    /// A write of the marks leaves memory's counters in place, clean, but not an ack taken
    /// while it wrote.
    #[test]
    fn a_flush_keeps_what_moved_while_it_wrote() {
        let pending = Pending::default();
        kept(&pending, "a", (5, 2, 2), true);
        kept(&pending, "b", (5, 3, 3), true);
        let written = vec![
            update("a", (5, 2, 2), false, true),
            update("b", (7, 3, 3), false, true),
        ];
        // Between the rows' write and the commit's end:
        assert_eq!(pending.try_ack("b", 4), Some(AckOutcome::Acked));
        after(written).apply(&pending);
        assert_eq!(dirty(&pending, "a"), Some(false), "a was written");
        assert_eq!(pending.merge("a", (0, 0, 0)), (5, 2, 2));
        // b keeps its newer ack and the high the transaction handed out.
        assert_eq!(dirty(&pending, "b"), Some(true));
        assert_eq!(pending.merge("b", (0, 0, 0)), (7, 4, 4));
        assert_eq!(pending.lock().dirty, 1);
        assert!(pending.deadline().is_some());
        // Clean users still take acks in memory.
        assert_eq!(pending.try_ack("a", 5), Some(AckOutcome::Acked));
        assert_eq!(dirty(&pending, "a"), Some(true));
        assert_eq!(pending.lock().dirty, 2);
    }

    /// Acks stop at the highest seq handed out; a transaction's result merges by maximum.
    #[test]
    fn acks_in_memory_stop_at_the_high_and_merge_by_maximum() {
        let pending = Pending::default();
        assert!(
            pending.try_ack("u", 1).is_none(),
            "not in memory: the writer loads it"
        );
        kept(&pending, "u", (3, 1, 1), false);
        assert_eq!(pending.try_ack("u", 9), Some(AckOutcome::Acked));
        assert_eq!(pending.try_ack("u", 2), Some(AckOutcome::AlreadyFinal));
        assert_eq!(pending.merge("u", (0, 0, 0)), (3, 3, 3));
        // A transaction that loaded u before that ack and handed out seq 4; and a new user.
        AfterCommit {
            updates: vec![
                update("u", (4, 1, 1), false, false),
                update("n", (1, 0, 0), false, false),
            ],
            clears_written: false,
            cleared: vec!["batch".to_owned()],
        }
        .apply(&pending);
        assert_eq!(pending.merge("u", (0, 0, 0)), (4, 3, 3));
        assert_eq!(dirty(&pending, "u"), Some(true));
        assert_eq!(dirty(&pending, "n"), Some(false), "kept, nothing to write");
        assert!(pending.is_cleared("batch"));
        assert!(pending.try_delivered("u", 9));
        assert_eq!(pending.merge("u", (0, 0, 0)), (4, 3, 4));
        assert_eq!(pending.try_ack("n", 1), Some(AckOutcome::Acked));
        assert_eq!(pending.lock().dirty, 2);
    }
}
