//! Per-user seq allocation without a counter update per user.
//!
//! A collect node keeps each user's highest seq in memory and hands out the next ones to the
//! messages of a batch, in batch order. The store's truth is the `rows` collection, whose
//! `_id` is `(user, seq)`: its unique index arbitrates when two collect nodes hand out the
//! same seq (the loser's insert fails with a duplicate key, it reloads that user and tries
//! the next seq). A user the cache does not know is loaded (highest row, or the floor left by
//! a purge) before its first allocation.
//!
//! Bounded: past `capacity` users, the least recently touched half is forgotten (reloaded
//! when next needed).

use std::collections::HashMap;

/// The in-memory highest seq of each user this node allocated for (or loaded).
pub(crate) struct SeqCache {
    highs: HashMap<String, Entry>,
    capacity: usize,
    tick: u64,
}

struct Entry {
    high: u64,
    touched: u64,
}

impl SeqCache {
    pub fn new(capacity: usize) -> SeqCache {
        SeqCache {
            highs: HashMap::new(),
            capacity: capacity.max(16),
            tick: 0,
        }
    }

    /// The users of `users` the cache does not know (to load before allocating).
    pub fn missing<'a>(&self, users: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut out: Vec<String> = users
            .into_iter()
            .filter(|u| !self.highs.contains_key(*u))
            .map(str::to_owned)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Records a loaded high (never lowers one: allocations may have raced the load).
    pub fn load(&mut self, user: &str, high: u64) {
        self.tick += 1;
        let tick = self.tick;
        let e = self.highs.entry(user.to_owned()).or_insert(Entry {
            high,
            touched: tick,
        });
        e.high = e.high.max(high);
        e.touched = tick;
    }

    /// The next seq of a known user. `None` if the user is not loaded.
    pub fn next(&mut self, user: &str) -> Option<u64> {
        self.tick += 1;
        let e = self.highs.get_mut(user)?;
        e.high += 1;
        e.touched = self.tick;
        Some(e.high)
    }

    /// Forgets users whose allocations were not written (a failed batch), so they are
    /// reloaded from the store next time.
    pub fn forget<'a>(&mut self, users: impl IntoIterator<Item = &'a str>) {
        for u in users {
            self.highs.remove(u);
        }
    }

    /// Keeps the cache within its capacity (call between batches).
    pub fn trim(&mut self) {
        if self.highs.len() <= self.capacity {
            return;
        }
        let mut ticks: Vec<u64> = self.highs.values().map(|e| e.touched).collect();
        let keep = self.capacity / 2;
        let cut = ticks.len() - keep;
        let (_, nth, _) = ticks.select_nth_unstable(cut);
        let threshold = *nth;
        self.highs.retain(|_, e| e.touched >= threshold);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.highs.len()
    }
}

/// The `_id` of a row: the user, a unit separator (no user id contains control characters;
/// PostgreSQL-backed servers refuse NUL), the seq zero-padded so ids sort by seq.
pub(crate) fn row_id(user: &str, seq: u64) -> String {
    format!("{user}\u{1f}{seq:020}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_in_order_after_a_load() {
        let mut c = SeqCache::new(100);
        assert_eq!(c.next("a"), None);
        assert_eq!(c.missing(["a", "b", "a"]), vec!["a", "b"]);
        c.load("a", 5);
        c.load("b", 0);
        assert_eq!(c.next("a"), Some(6));
        assert_eq!(c.next("a"), Some(7));
        assert_eq!(c.next("b"), Some(1));
        // A late load never moves a user back.
        c.load("a", 3);
        assert_eq!(c.next("a"), Some(8));
        c.forget(["a"]);
        assert_eq!(c.next("a"), None);
    }

    #[test]
    fn trims_the_least_recently_touched() {
        let mut c = SeqCache::new(16);
        for i in 0..40 {
            c.load(&format!("u{i}"), 1);
        }
        c.next("u0");
        c.trim();
        assert!(c.len() <= 16);
        assert!(c.next("u0").is_some(), "recently touched stays");
        assert_eq!(c.next("u1"), None, "old ones go");
    }

    #[test]
    fn row_ids_sort_by_seq() {
        assert!(row_id("u", 9) < row_id("u", 10));
        assert_eq!(row_id("u", 1), "u\u{1f}00000000000000000001");
    }
}
