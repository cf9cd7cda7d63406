//! The embedded engine's inbox: dedupe check, enqueue and mark in ONE write closure, so the
//! hand-off is atomic (all of a delivery's new events are queued and remembered, or none) and
//! durable when `accept` returns (group commit, `synchronous=FULL`). New keys go to the
//! append-only dedupe log ([`super::recent`]); a merger moves them into `dedupe_keys` between
//! bursts.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::db::{Clock, Db};
use super::dedupe::ttl_ms;
use super::queue::{enqueue_in, EVENTS_QUEUE};
use super::recent::{MergePolicy, RecentKeys};
use wabridge_core::consumer::Pressure;
use wabridge_core::dedupe::DEFAULT_DEDUPE_TTL;
use wabridge_core::error::StoreError;
use wabridge_core::event::Event;
use wabridge_core::inbox::{AcceptReport, Fanout, Inbox};

#[derive(Clone, Debug)]
pub struct SqliteInbox {
    db: Db,
    queue: String,
    ttl: Duration,
    clock: Clock,
    pub(super) recent: Arc<RecentKeys>,
    merge: MergePolicy,
    /// The destinations' queues each new event also goes to, in the same write.
    fanout: Option<Arc<dyn Fanout>>,
}

impl SqliteInbox {
    /// The inbox of `db`, enqueuing on the `events` queue, remembering keys for the default TTL.
    /// One per database across processes (clone it to share): a second is refused, naming the
    /// lock file, since each keeps the index of the recent keys it wrote.
    pub async fn open(db: Db) -> Result<Self, StoreError> {
        let recent = RecentKeys::open(&db).await?;
        Ok(SqliteInbox {
            db,
            queue: EVENTS_QUEUE.into(),
            ttl: DEFAULT_DEDUPE_TTL,
            clock: Clock::System,
            recent,
            merge: MergePolicy::default(),
            fanout: None,
        })
    }

    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Enqueues each new event on the queues `fanout` names too (fan-out destinations).
    pub fn with_fanout(mut self, fanout: Arc<dyn Fanout>) -> Self {
        self.fanout = Some(fanout);
        self
    }

    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_merge_policy(mut self, merge: MergePolicy) -> Self {
        self.merge = merge;
        self
    }

    /// Keys accepted but not yet merged into `dedupe_keys` (about; see [`super::recent`]).
    pub fn recent_keys(&self) -> usize {
        self.recent.len()
    }

    /// Merges every recent key into `dedupe_keys` now; returns how many moved.
    pub async fn merge_recent(&self) -> Result<usize, StoreError> {
        self.recent.merge_all(&self.db, self.merge.chunk).await
    }

    /// Merges recent keys (by default every second) while no burst is on (`pressure` not busy),
    /// or whenever the log grows past [`MergePolicy::anyway_at`], until `stop` turns true.
    pub fn spawn_merger(
        &self,
        pressure: Option<Pressure>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        self.recent
            .clone()
            .spawn_merger(self.db.clone(), self.merge, pressure, stop)
    }
}

#[async_trait]
impl Inbox for SqliteInbox {
    async fn accept(&self, events: Vec<Event>) -> Result<AcceptReport, StoreError> {
        if events.is_empty() {
            return Ok(AcceptReport::default());
        }
        // Serialise outside the writer thread: it is the one resource every request shares.
        let items: Vec<(String, String, Vec<String>)> = events
            .into_iter()
            .map(|e| {
                let body = e.to_json();
                let more = self
                    .fanout
                    .as_ref()
                    .map(|f| f.queues(&e))
                    .unwrap_or_default();
                (e.key, body, more)
            })
            .collect();
        let now = self.clock.now_ms();
        let expires_at = now.saturating_add(ttl_ms(self.ttl));
        let queue = self.queue.clone();
        // Weak: a finished write must not keep the log's lock held after the inbox is dropped.
        let recent = Arc::downgrade(&self.recent);
        self.db
            .write(move |t| {
                let recent = recent.upgrade().ok_or_else(closed)?;
                let mut report = AcceptReport::default();
                for (key, body, more) in &items {
                    // A key repeated inside one delivery is seen here once claimed just above.
                    if !recent.claim(t, key, now, expires_at)? {
                        report.duplicates += 1;
                        continue;
                    }
                    enqueue_in(t, &queue, key, body, None, now)?;
                    for destination in more {
                        enqueue_in(t, destination, key, body, None, now)?;
                    }
                    report.accepted += 1;
                }
                Ok(report)
            })
            .await
    }
}

pub(super) fn closed() -> StoreError {
    StoreError::Unavailable("the inbox was closed".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::sql_err;
    use crate::testing::{event, queued, setup};
    use crate::{SqliteDedupe, SqliteQueue};
    use wabridge_core::queue::Queue;

    #[tokio::test]
    async fn accepts_new_events_once_and_counts_duplicates() {
        let (_d, db, _clock, inbox) = setup().await;
        let r = inbox
            .accept(vec![event("wamid.A"), event("wamid.B"), event("wamid.A")])
            .await
            .unwrap();
        assert_eq!(
            r,
            AcceptReport {
                accepted: 2,
                duplicates: 1
            }
        );
        let r = inbox
            .accept(vec![event("wamid.B"), event("wamid.C")])
            .await
            .unwrap();
        assert_eq!(
            r,
            AcceptReport {
                accepted: 1,
                duplicates: 1
            }
        );
        assert_eq!(queued(&db).await, ["wamid.A", "wamid.B", "wamid.C"]);
        // The queued body is the event JSON, readable by consumers.
        let d = SqliteQueue::new(db.clone(), EVENTS_QUEUE)
            .receive(1, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(Event::from_json(&d[0].body).unwrap().key, "wamid.A");
    }

    #[tokio::test]
    async fn forgets_keys_after_the_ttl() {
        let (_d, db, clock, inbox) = setup().await;
        let inbox = inbox.with_ttl(Duration::from_secs(60));
        inbox.accept(vec![event("k")]).await.unwrap();
        clock.advance(Duration::from_secs(60));
        assert_eq!(inbox.accept(vec![event("k")]).await.unwrap().accepted, 1);
        assert_eq!(queued(&db).await.len(), 2);
    }

    /// A failure after some events were claimed and enqueued (a trigger aborts the claim of the
    /// third key): the caller gets an error and nothing of the delivery is kept; the retry then
    /// lands every event exactly once.
    #[tokio::test]
    async fn failure_mid_delivery_keeps_nothing_and_retry_lands_exactly_once() {
        let (_d, db, clock, inbox) = setup().await;
        db.write(|t| {
            t.execute_batch(
                "CREATE TRIGGER inject_fault BEFORE INSERT ON dedupe_log
                 WHEN NEW.key = 'wamid.3' BEGIN SELECT RAISE(ABORT, 'injected fault'); END;",
            )
            .map_err(sql_err)
        })
        .await
        .unwrap();
        let delivery = || {
            vec![
                event("wamid.1"),
                event("wamid.2"),
                event("wamid.3"),
                event("wamid.4"),
            ]
        };
        let err = inbox.accept(delivery()).await.unwrap_err();
        assert!(
            err.is_retryable(),
            "a store failure must be answered with a retryable 5xx: {err}"
        );
        assert!(err.to_string().contains("injected fault"));
        assert!(queued(&db).await.is_empty(), "nothing half-written");
        // The Dedupe port counts the log and the merged table alike.
        let seen = SqliteDedupe::with_clock(db.clone(), clock.clone())
            .count()
            .await
            .unwrap();
        assert_eq!(seen, 0, "no key marked");

        db.write(|t| {
            t.execute_batch("DROP TRIGGER inject_fault")
                .map_err(sql_err)
        })
        .await
        .unwrap();
        assert_eq!(
            inbox.accept(delivery()).await.unwrap(),
            AcceptReport {
                accepted: 4,
                duplicates: 0
            }
        );
        assert_eq!(
            inbox.accept(delivery()).await.unwrap(),
            AcceptReport {
                accepted: 0,
                duplicates: 4
            }
        );
        assert_eq!(
            queued(&db).await,
            ["wamid.1", "wamid.2", "wamid.3", "wamid.4"]
        );
    }

    /// With destinations, each new event is also on the queues they select, in the same write;
    /// a redelivered key goes to none.
    #[tokio::test]
    async fn fans_new_events_out_to_the_selected_queues_once() {
        #[derive(Debug)]
        struct EvenToBot;
        impl Fanout for EvenToBot {
            fn queues(&self, e: &Event) -> Vec<String> {
                match e.key.ends_with(['2', '4']) {
                    true => vec!["destination:bot".into()],
                    false => vec![],
                }
            }
        }
        let (_d, db, _clock, inbox) = setup().await;
        let inbox = inbox.with_fanout(Arc::new(EvenToBot));
        let batch = || vec![event("wamid.1"), event("wamid.2"), event("wamid.4")];
        assert_eq!(inbox.accept(batch()).await.unwrap().accepted, 3);
        assert_eq!(inbox.accept(batch()).await.unwrap().duplicates, 3);
        let bot = SqliteQueue::new(db.clone(), "destination:bot");
        let got = bot.receive(10, Duration::from_secs(5)).await.unwrap();
        let keys: Vec<String> = got
            .iter()
            .map(|d| Event::from_json(&d.body).unwrap().key)
            .collect();
        assert_eq!(keys, ["wamid.2", "wamid.4"]);
        // Every queue's rows: the events queue has all three, nothing is there twice.
        assert_eq!(
            queued(&db).await,
            ["wamid.1", "wamid.2", "wamid.2", "wamid.4", "wamid.4"]
        );
    }

    /// Concurrent deliveries of overlapping keys (Meta retrying while the first POST is still in
    /// flight): each key is enqueued exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_overlapping_deliveries_enqueue_each_key_once() {
        let (_d, db, _clock, inbox) = setup().await;
        let mut tasks = Vec::new();
        for round in 0..50 {
            let inbox = inbox.clone();
            tasks.push(tokio::spawn(async move {
                let keys = [(round % 10).to_string(), ((round + 1) % 10).to_string()];
                inbox
                    .accept(keys.iter().map(|k| event(k)).collect())
                    .await
                    .unwrap()
            }));
        }
        let mut accepted = 0;
        for t in tasks {
            accepted += t.await.unwrap().accepted;
        }
        assert_eq!(accepted, 10);
        let mut keys = queued(&db).await;
        keys.sort();
        assert_eq!(keys, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    }
}
