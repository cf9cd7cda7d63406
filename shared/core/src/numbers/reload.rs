//! The one way a long-lived process re-reads the numbers registry (on AWS, the table's items):
//! what was built from the registry ([`Reloading::current`]) is built again when a request or
//! an event names a number it does not know, so a number added with `wabridge numbers add
//! --table T` is served without a recycle. crm-sync, ingest, the sender and the media function
//! use it.
//!
//! The re-read is bounded: at most once per `every` ([`RELOAD_EVERY`]) per instance, whatever
//! the rate of misses, so a misconfigured number costs one read a minute, not one per request;
//! and only on a miss. One task reads at a time; the others take what it built.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How often an instance may re-read the registry on a miss.
pub const RELOAD_EVERY: Duration = Duration::from_secs(60);

/// What was built from the registry, rebuilt on a miss.
pub struct Reloading<T> {
    current: RwLock<Arc<T>>,
    /// When the registry was last read; held while re-reading, so one task reads at a time.
    read_at: tokio::sync::Mutex<Instant>,
    every: Duration,
}

impl<T> Reloading<T> {
    /// `first`, just built from the registry; re-read at most once per `every`.
    pub fn new(first: T, every: Duration) -> Reloading<T> {
        Reloading {
            current: RwLock::new(Arc::new(first)),
            read_at: tokio::sync::Mutex::new(Instant::now()),
            every,
        }
    }

    /// What serves now.
    pub fn current(&self) -> Arc<T> {
        self.current.read().expect("never poisoned").clone()
    }

    /// A newer build than `seen` (the one that missed): another task's, or `build()`'s now if
    /// the last read is old enough. `None`: none (too soon, or `build` failed: the previous one
    /// stays, and the reason is logged).
    pub async fn newer<F, Fut>(&self, seen: &Arc<T>, build: F) -> Option<Arc<T>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        self.newer_or_wait(seen, build).await.ok()
    }

    /// [`Reloading::newer`], saying why there is none: `Err(Some(wait))` when the next read
    /// is allowed in `wait`, `Err(None)` when `build` failed. A caller that must not give up on
    /// a miss (a queued send) retries after `wait`.
    pub async fn newer_or_wait<F, Fut>(
        &self,
        seen: &Arc<T>,
        build: F,
    ) -> Result<Arc<T>, Option<Duration>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let mut read_at = self.read_at.lock().await;
        let current = self.current();
        if !Arc::ptr_eq(&current, seen) {
            return Ok(current);
        }
        let since = read_at.elapsed();
        if since < self.every {
            return Err(Some(self.every - since));
        }
        *read_at = Instant::now();
        match build().await {
            Ok(next) => {
                let next = Arc::new(next);
                *self.current.write().expect("never poisoned") = next.clone();
                tracing::info!("numbers registry re-read on an unknown number");
                Ok(next)
            }
            Err(why) => {
                tracing::error!(%why, "numbers registry not re-read: keeping the previous one");
                Err(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A miss re-reads at once when the last read is old enough, never twice within `every`;
    /// a miss on an old build takes the newer one without reading; a failed read keeps the
    /// previous build.
    #[tokio::test]
    async fn rereads_are_bounded_and_only_on_a_miss() {
        let reads = AtomicUsize::new(0);
        let build = |v: u32| {
            let reads = &reads;
            move || async move {
                reads.fetch_add(1, Ordering::SeqCst);
                Ok(v)
            }
        };
        let r = Reloading::new(1u32, Duration::ZERO);
        let first = r.current();
        let second = r.newer(&first, build(2)).await.unwrap();
        assert_eq!(*second, 2);
        // Another task that missed on the first build takes the second, no read.
        assert_eq!(*r.newer(&first, build(9)).await.unwrap(), 2);
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        let failed = r
            .newer(&second, || async {
                Err::<u32, _>("table down".to_string())
            })
            .await;
        assert!(failed.is_none());
        assert_eq!(*r.current(), 2);

        let slow = Reloading::new(1u32, Duration::from_secs(60));
        let seen = slow.current();
        assert!(slow.newer(&seen, build(3)).await.is_none(), "too soon");
        match slow.newer_or_wait(&seen, build(3)).await {
            Err(Some(wait)) => assert!(wait > Duration::from_secs(50), "{wait:?}"),
            other => panic!("too soon says how long to wait: {:?}", other.map(|v| *v)),
        }
        let failed = r
            .newer_or_wait(&r.current(), || async { Err::<u32, _>("down".to_string()) })
            .await;
        assert_eq!(failed.map(|v| *v), Err(None), "a failed read says no wait");
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }
}
