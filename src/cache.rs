//! A cache bounded in bytes: two generations of entries, the way a clock approximates LRU. New
//! entries go into the current generation; when it holds half the budget, it becomes the previous
//! one and the old previous one is dropped. A hit in the previous generation moves the entry
//! back into the current one, so entries in use survive and the rest age out, at O(1) a step.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// What an entry costs besides its key and value's own bytes (hash-table slot, headers).
const OVERHEAD: usize = 64;

pub struct Bounded<K, V> {
    budget: usize,
    current: HashMap<K, (V, usize)>,
    current_bytes: usize,
    previous: HashMap<K, (V, usize)>,
    previous_bytes: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> Bounded<K, V> {
    /// A cache that holds at most about `budget` bytes (the weights its callers give).
    pub fn new(budget: usize) -> Self {
        Self {
            budget: budget.max(2 * OVERHEAD),
            current: HashMap::new(),
            current_bytes: 0,
            previous: HashMap::new(),
            previous_bytes: 0,
        }
    }

    /// The entry of `key` (a `&str` for `String` keys).
    pub fn get<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some((v, _)) = self.current.get(key) {
            return Some(v.clone());
        }
        let (v, bytes) = self.previous.remove(key)?;
        self.previous_bytes -= bytes;
        self.put(key.to_owned(), v.clone(), bytes);
        Some(v)
    }

    /// Inserts an entry that costs `bytes` (its key's and value's heap bytes). An entry of more
    /// than half the budget is not kept.
    pub fn insert(&mut self, key: K, value: V, bytes: usize) {
        self.remove(&key);
        if bytes + OVERHEAD <= self.budget / 2 {
            self.put(key, value, bytes + OVERHEAD);
        }
    }

    pub fn remove(&mut self, key: &K) {
        if let Some((_, bytes)) = self.current.remove(key) {
            self.current_bytes -= bytes;
        }
        if let Some((_, bytes)) = self.previous.remove(key) {
            self.previous_bytes -= bytes;
        }
    }

    /// Bytes held, by the callers' weights.
    pub fn bytes(&self) -> usize {
        self.current_bytes + self.previous_bytes
    }

    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn put(&mut self, key: K, value: V, bytes: usize) {
        if self.current_bytes + bytes > self.budget / 2 {
            self.previous = std::mem::take(&mut self.current);
            self.previous_bytes = std::mem::take(&mut self.current_bytes);
        }
        self.current_bytes += bytes;
        self.current.insert(key, (value, bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_its_budget_and_keeps_what_is_used() {
        let mut c: Bounded<u32, u32> = Bounded::new(100 * (OVERHEAD + 36));
        for i in 0..10_000 {
            c.insert(i, i, 36);
            // Entry 7 is asked for all the time: it must survive the churn.
            assert_eq!(c.get(&7), (i >= 7).then_some(7), "at {i}");
            assert!(
                c.bytes() <= 100 * (OVERHEAD + 36),
                "{} bytes at {i}",
                c.bytes()
            );
        }
        assert!(c.len() >= 50, "{} entries", c.len());
        assert_eq!(c.get(&0), None);
        assert_eq!(c.get(&9_999), Some(9_999));
        c.remove(&9_999);
        assert_eq!(c.get(&9_999), None);
    }

    #[test]
    fn replacing_an_entry_counts_it_once() {
        let mut c: Bounded<&str, u8> = Bounded::new(10_000);
        c.insert("a", 1, 100);
        c.insert("a", 2, 100);
        assert_eq!(c.bytes(), 100 + OVERHEAD);
        assert_eq!(c.get(&"a"), Some(2));
        c.insert("huge", 3, 10_000);
        assert_eq!((c.get(&"huge"), c.get(&"a")), (None, Some(2)));
    }
}
