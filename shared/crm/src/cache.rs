//! The in-process caches of the CRM adapters (CRM ids by identity, field ids): bounded maps
//! that start over when full, since every entry can be read again from the CRM.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// Entries one cache keeps before it starts over.
pub(crate) const CACHE_MAX: usize = 100_000;

/// Inserts into a bounded map (cleared when full: it is a cache).
pub(crate) fn remember<K: Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, key: K, value: V) {
    let mut map = map.lock().unwrap();
    if map.len() >= CACHE_MAX && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}
