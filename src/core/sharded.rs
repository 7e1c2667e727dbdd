//! A hash map split into shards behind `Arc`s, so that a copy with a few entries changed costs a
//! few shards, not the whole map: the registry's snapshots are copied on every admin change and
//! must cost the same with 100 or 100 000 profiles. Reads are one extra pointer hop over a plain
//! `HashMap`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

/// Number of shards: a change copies about `len / SHARDS` entries.
pub const SHARDS: usize = 64;

/// How a key picks its shard.
pub trait ShardKey {
    /// Any well-mixed number; its value modulo [`SHARDS`] is the shard.
    fn shard(&self) -> usize;
}

impl ShardKey for Box<str> {
    fn shard(&self) -> usize {
        // FNV-1a: ids are random hex, so any mix will do.
        let mut hash: u32 = 0x811c_9dc5;
        for &b in self.as_bytes() {
            hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        hash as usize
    }
}

/// A copy-on-write sharded hash map; `clone` copies [`SHARDS`] pointers.
pub struct ShardedMap<K, V, S> {
    shards: Box<[Arc<HashMap<K, V, S>>]>,
}

impl<K, V, S> Clone for ShardedMap<K, V, S> {
    fn clone(&self) -> Self {
        ShardedMap {
            shards: self.shards.clone(),
        }
    }
}

impl<K, V, S> Default for ShardedMap<K, V, S>
where
    S: Default,
{
    fn default() -> Self {
        ShardedMap {
            shards: (0..SHARDS)
                .map(|_| Arc::new(HashMap::with_hasher(S::default())))
                .collect(),
        }
    }
}

impl<K, V, S> ShardedMap<K, V, S>
where
    K: ShardKey + Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher + Clone,
{
    #[inline]
    fn index(key: &K) -> usize {
        key.shard() % SHARDS
    }

    /// The value stored under `key`.
    #[inline]
    pub fn get(&self, key: &K) -> Option<&V> {
        self.shards[Self::index(key)].get(key)
    }

    /// Stores `value` under `key`, returning the value it replaces. Copies the key's shard if
    /// another clone still shares it.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        Arc::make_mut(&mut self.shards[Self::index(&key)]).insert(key, value)
    }

    /// Removes and returns the value under `key`. Copies the key's shard only if it holds `key`
    /// and another clone still shares it.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let shard = &mut self.shards[Self::index(key)];
        if !shard.contains_key(key) {
            return None;
        }
        Arc::make_mut(shard).remove(key)
    }

    /// Every value, shard by shard.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|shard| shard.values())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::RandomState;

    #[test]
    fn a_clone_is_not_changed_by_writes_to_the_original() {
        let mut map: ShardedMap<Box<str>, u32, RandomState> = ShardedMap::default();
        for i in 0..1000u32 {
            map.insert(i.to_string().into(), i);
        }
        let copy = map.clone();
        map.insert("5".into(), 50);
        map.remove(&Box::<str>::from("6"));
        assert_eq!(map.get(&"5".into()), Some(&50));
        assert_eq!(copy.get(&"5".into()), Some(&5));
        assert_eq!(copy.get(&"6".into()), Some(&6));
        assert_eq!(map.get(&"6".into()), None);
        assert_eq!((map.len(), copy.len()), (999, 1000));
        // Only the two touched shards were copied.
        let shared = map
            .shards
            .iter()
            .zip(copy.shards.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert!(shared >= SHARDS - 2, "{shared}");
    }
}
