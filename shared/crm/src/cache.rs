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

/// One async lock per key (a person's find-or-create, a conversation's record): two deliveries
/// of the same new person or conversation at once would both miss the search and create it
/// twice. Locks nobody holds are dropped once [`CACHE_MAX`] keys are kept.
#[derive(Default)]
pub(crate) struct KeyLocks(Mutex<HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>);

impl KeyLocks {
    /// Waits for `key`'s lock; holds it until the guard is dropped.
    pub(crate) async fn lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.0.lock().unwrap();
            if locks.len() >= CACHE_MAX {
                locks.retain(|_, l| std::sync::Arc::strong_count(l) > 1);
            }
            locks.entry(key.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_holder_per_key_and_other_keys_go_on() {
        let locks = std::sync::Arc::new(KeyLocks::default());
        let held = locks.lock("cnv_a").await;
        // Another key is not held back.
        tokio::time::timeout(Duration::from_secs(1), locks.lock("cnv_b"))
            .await
            .expect("another key waits for nothing");
        // The same key waits until the guard goes.
        let waiting = tokio::spawn({
            let locks = locks.clone();
            async move { drop(locks.lock("cnv_a").await) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a second holder of the same key");
        drop(held);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
    }
}
