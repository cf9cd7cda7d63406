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

/// Answers on their way from the CRM, by key (a contact's upsert, a ticket's create): a caller
/// that needs the same answer waits for the one in flight instead of asking again.
pub(crate) struct InFlight<V>(Mutex<HashMap<String, tokio::sync::watch::Receiver<Answer<V>>>>);

/// `None` while in flight, then what came back (`Some(None)`: it failed).
type Answer<V> = Option<Option<V>>;

impl<V> Default for InFlight<V> {
    fn default() -> Self {
        InFlight(Mutex::new(HashMap::new()))
    }
}

impl<V: Clone> InFlight<V> {
    /// Marks `key` in flight until the returned guard says the answer or is dropped.
    pub(crate) fn start(&self, key: &str) -> Landing<'_, V> {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let mut map = self.0.lock().unwrap();
        if map.len() >= CACHE_MAX {
            map.retain(|_, rx| rx.borrow().is_none());
        }
        map.insert(key.to_string(), rx);
        Landing {
            map: self,
            key: key.to_string(),
            tx,
        }
    }

    /// The answer of `key`'s request in flight, once it lands; `None` when there is none in
    /// flight or it failed (the caller asks the CRM itself).
    pub(crate) async fn wait(&self, key: &str) -> Option<V> {
        let mut rx = self.0.lock().unwrap().get(key).cloned()?;
        let answer = rx.wait_for(Option::is_some).await.ok()?.clone();
        answer.flatten()
    }
}

/// One request in flight ([`InFlight::start`]).
pub(crate) struct Landing<'a, V> {
    map: &'a InFlight<V>,
    key: String,
    tx: tokio::sync::watch::Sender<Answer<V>>,
}

impl<V> Landing<'_, V> {
    /// Hands the answer to whoever waits (`None`: it failed).
    pub(crate) fn land(self, answer: Option<V>) {
        self.tx.send_replace(Some(answer));
    }
}

impl<V> Drop for Landing<'_, V> {
    fn drop(&mut self) {
        // Waiters are woken by the answer, or see the sender gone (a cancelled request).
        let mut map = self.map.0.lock().unwrap();
        if map
            .get(&self.key)
            .is_some_and(|rx| rx.same_channel(&self.tx.subscribe()))
        {
            map.remove(&self.key);
        }
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

    #[tokio::test]
    async fn a_waiter_gets_the_answer_in_flight_or_nothing() {
        let flights = std::sync::Arc::new(InFlight::<String>::default());
        // Nothing in flight: no wait.
        assert_eq!(flights.wait("c1").await, None);

        let landing = flights.start("c1");
        let waiter = tokio::spawn({
            let flights = flights.clone();
            async move { flights.wait("c1").await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "it waits for the answer");
        landing.land(Some("hs-1".into()));
        assert_eq!(waiter.await.unwrap(), Some("hs-1".into()));
        // Landed: the key is no longer in flight.
        assert_eq!(flights.wait("c1").await, None);

        // A request that failed, or was dropped without an answer, hands over nothing.
        let failed = flights.start("c2");
        let waiter = tokio::spawn({
            let flights = flights.clone();
            async move { flights.wait("c2").await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        failed.land(None);
        assert_eq!(waiter.await.unwrap(), None);
        let dropped = flights.start("c3");
        let waiter = tokio::spawn({
            let flights = flights.clone();
            async move { flights.wait("c3").await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(dropped);
        assert_eq!(waiter.await.unwrap(), None);
    }
}
