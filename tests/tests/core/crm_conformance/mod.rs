//! The adapter conformance suite: ONE set of cases every CRM adapter runs, each against a local
//! fake of its CRM that checks the documented request shapes (an undocumented shape gets the
//! CRM's own 400, so a wrong request fails the case) and answers 429 (with and without
//! `Retry-After`), 5xx, timeouts, 401/403 and 400 with the CRM's own bodies on demand.
//!
//! A new adapter is one [`Subject`] impl (start its fake, build the adapter pointing at it, read
//! back what the fake holds) plus one `conformance!` line. The cases drive the real crm-sync
//! handler over real SQLite files (identities, ledger, attribution, queue), as `wabridge serve`
//! does; the conversation case adds the conversation store.

mod bench;
mod cases;
mod check;
mod conversations;
mod conversations_first;
mod hubspot;
mod hubspot_tickets;
mod kommo;
mod kommo_conversations;
mod kommo_fake;
mod kommo_fake_leads;
mod kommo_fake_oauth;
mod kommo_fake_records;
mod kommo_lambda;
mod kommo_more;
mod kommo_oauth;
mod pipedrive;
mod pipedrive_conversations;
mod pipedrive_fake;
mod pipedrive_fake_deals;
mod pipedrive_fake_oauth;
mod pipedrive_fake_records;
mod pipedrive_more;
mod pipedrive_oauth;
mod salesforce;
mod salesforce_cases;
mod salesforce_fake;
mod salesforce_fake_records;
mod salesforce_more;
mod webhook;
mod zoho;
mod zoho_batch;
mod zoho_cases;
mod zoho_fake;
mod zoho_fake_cases;
mod zoho_fake_reads;
mod zoho_fake_records;
mod zoho_lambda;
mod zoho_more;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};
use wabridge_core::attribution::AttributionConfig;
use wabridge_core::consumer::{run_worker, Handler, Outcome, WorkerOptions};
use wabridge_core::crm::Crm;
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::{Delivery, OutgoingMessage, Queue};
use wabridge_core::sync::CrmSync;
use wabridge_sqlite::attribution::SqliteAttribution;
use wabridge_sqlite::identity::SqliteIdentityStore;
use wabridge_sqlite::ledger::SqliteLedger;
use wabridge_sqlite::{Db, SqliteQueue, EVENTS_QUEUE};

pub(crate) use crate::crm_http::fake::Fault;

/// A contact as the CRM holds it, in the suite's terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ContactView {
    /// The identity it is kept under: the canonical E.164 number, or the BSUID.
    pub key: String,
    pub name: Option<String>,
    /// `opt_in` / `opt_out`.
    pub consent: Option<String>,
    pub first_clid: Option<String>,
    pub last_clid: Option<String>,
}

/// An activity (a message or a status change of one we sent) on a contact's timeline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ActivityView {
    /// The wabridge effect id the CRM keeps with it.
    pub effect: String,
    /// [`ContactView::key`] of the contact it belongs to.
    pub contact: String,
    pub text: String,
}

/// A deal (or opportunity) made from a lead.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DealView {
    pub effect: String,
    pub contact: String,
    pub clid: Option<String>,
}

/// A conversation as the CRM holds it (HubSpot: a ticket; webhook: its records).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConversationView {
    pub id: String,
    /// [`ContactView::key`] of the contact it belongs to.
    pub contact: String,
    /// The revision it shows (a late older one must not replace it).
    pub revision: u64,
    pub outcome: Option<String>,
    pub closed: bool,
    /// The activities tied to it (HubSpot: Communications associated to the ticket).
    pub activities: usize,
}

/// One CRM adapter and its fake.
#[async_trait]
pub(crate) trait Subject: Send + Sync + Sized + 'static {
    /// The `CRM_KIND`.
    const KIND: &'static str;
    /// The CRM's documented burst limit that its fake enforces (calls per rolling window);
    /// `None` for a receiver without one.
    const LIMIT: Option<(usize, Duration)>;
    /// Words of the CRM's own 400 body that must reach the dead-letter reason.
    const REJECTION_WORDS: &'static str;
    /// Starts the fake, answering every call after `latency`.
    async fn start_with(latency: Duration) -> Self;
    fn mapping(&self) -> Mapping;
    /// A new adapter pointing at the fake: a new process, with empty caches.
    fn crm(&self) -> Arc<dyn Crm>;
    /// How long the fake's search index lags behind creates (and the adapter trusts a miss).
    fn lag_search_index(&self, lag: Duration);
    /// Faults for the next calls, in order.
    fn script(&self, faults: &[Fault]);
    /// A fault for the next call that creates an activity.
    fn fault_next_activity(&self, fault: Fault);
    fn contacts(&self) -> Vec<ContactView>;
    fn activities(&self) -> Vec<ActivityView>;
    fn deals(&self) -> Vec<DealView>;
    /// The conversations it holds; `None` for a CRM that does not write them.
    fn conversations(&self) -> Option<Vec<ConversationView>>;
    /// Requests the fake refused as undocumented.
    fn problems(&self) -> Vec<String>;
    /// When each call arrived.
    fn arrivals(&self) -> Vec<Instant>;
    /// Calls answered 429 because the limit was exceeded (not scripted).
    fn over_limit(&self) -> u64;
    /// The CRM's documented limit on calls in flight at once (Zoho's concurrency), when it
    /// limits concurrency rather than (or besides) a rate.
    const CONCURRENCY: Option<usize> = None;
    /// The most calls the fake had in flight at once.
    fn peak_concurrency(&self) -> usize {
        0
    }
}

/// crm-sync over SQLite files writing to a subject's adapter.
pub(crate) struct Harness<S: Subject> {
    pub subject: S,
    _dir: tempfile::TempDir,
    pub db: Db,
    pub sync: Arc<CrmSync>,
    lease: Duration,
}

impl<S: Subject> Harness<S> {
    pub async fn start() -> Self {
        Self::with_lease(Duration::from_secs(3)).await
    }

    pub async fn with_lease(lease: Duration) -> Self {
        Self::with(lease, Duration::ZERO).await
    }

    /// With the CRM answering after `latency`.
    pub async fn with(lease: Duration, latency: Duration) -> Self {
        let subject = S::start_with(latency).await;
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("t.db")).unwrap();
        let sync = sync_over(&db, subject.crm(), subject.mapping(), lease).await;
        Harness {
            subject,
            _dir: dir,
            db,
            sync,
            lease,
        }
    }

    /// crm-sync of a new process (a fresh adapter, the same stores).
    pub async fn restarted(&self) -> Arc<CrmSync> {
        sync_over(
            &self.db,
            self.subject.crm(),
            self.subject.mapping(),
            self.lease,
        )
        .await
    }

    pub async fn handle(&self, event: &Value, receive_count: u32) -> Outcome {
        self.sync.handle(&delivery(event, receive_count)).await
    }

    /// Fails the case when the fake refused a request shape.
    pub fn assert_documented(&self) {
        let problems = self.subject.problems();
        assert!(problems.is_empty(), "{}: {problems:?}", S::KIND);
    }
}

/// crm-sync over the SQLite file `db` (identities, ledger, attribution) writing to `crm`.
pub(crate) async fn sync_over(
    db: &Db,
    crm: Arc<dyn Crm>,
    mapping: Mapping,
    lease: Duration,
) -> Arc<CrmSync> {
    let store = Arc::new(SqliteAttribution::open(db.clone()).await.unwrap());
    Arc::new(
        CrmSync::new(
            Arc::new(SqliteIdentityStore::new(db.clone())),
            Arc::new(SqliteLedger::new(db.clone())),
            crm,
            Arc::new(mapping),
        )
        .with_lease(lease)
        .with_attribution(store, AttributionConfig::default()),
    )
}

pub(crate) fn delivery(event: &Value, receive_count: u32) -> Delivery {
    Delivery {
        message_id: "m".into(),
        receipt: "r".into(),
        body: event.to_string(),
        receive_count,
        enqueued_at: None,
    }
}

/// A message event from `wa_id` and/or `bsuid`.
pub(crate) fn message(key: &str, wa_id: Option<&str>, bsuid: Option<&str>, item: Value) -> Value {
    let mut item = item;
    item["id"] = json!(key);
    item["timestamp"] = json!("1763780000");
    let mut contact = json!({"profile": {"name": "Ana Pérez"}});
    if let Some(w) = wa_id {
        item["from"] = json!(w);
        contact["wa_id"] = json!(w);
    }
    if let Some(u) = bsuid {
        item["from_user_id"] = json!(u);
        contact["user_id"] = json!(u);
    }
    json!({"v": 1, "key": key, "kind": "message", "field": "messages", "waba_id": "W1",
           "contact": contact, "item": item, "received_at": 1763780000123i64})
}

pub(crate) fn text(key: &str, wa_id: &str, body: &str) -> Value {
    message(
        key,
        Some(wa_id),
        None,
        json!({"type": "text", "text": {"body": body}}),
    )
}

/// The status `status` of our message `wamid` to `to`.
pub(crate) fn status(wamid: &str, to: &str, status: &str) -> Value {
    let mut item =
        json!({"id": wamid, "status": status, "timestamp": "1763780100", "recipient_id": to});
    if status == "failed" {
        item["errors"] = json!([{"code": 131026, "title": "Message undeliverable"}]);
    }
    json!({"v": 1, "key": format!("{wamid}:{status}"), "kind": "status", "field": "messages",
           "waba_id": "W1", "item": item, "received_at": 1763780100000i64})
}

/// Enqueues `events` on a real SQLite queue and runs one worker loop handling `concurrency`
/// deliveries at once until the queue is empty. Returns the dead letters and the time taken.
pub(crate) async fn drain(
    db: &Db,
    sync: &Arc<CrmSync>,
    events: &[Value],
    times: usize,
    workers: usize,
    concurrency: usize,
) -> (u64, Duration) {
    let handler = sync.clone() as Arc<dyn Handler>;
    let breaker = Some(sync.breaker().clone());
    drain_with(db, handler, breaker, events, times, workers, concurrency).await
}

/// [`drain`] through any events handler (a registry's dispatch) and the breaker the worker
/// paces itself by (`wabridge serve` gives none with several CRM targets).
pub(crate) async fn drain_with(
    db: &Db,
    handler: Arc<dyn Handler>,
    breaker: Option<Arc<wabridge_core::breaker::CircuitBreaker>>,
    events: &[Value],
    times: usize,
    workers: usize,
    concurrency: usize,
) -> (u64, Duration) {
    let queue = Arc::new(SqliteQueue::new(db.clone(), EVENTS_QUEUE).with_max_receives(10));
    let mut batch = Vec::new();
    for round in 0..times {
        for (i, e) in events.iter().enumerate() {
            batch.push(OutgoingMessage {
                id: format!("{round}-{i}"),
                body: e.to_string(),
                delay: None,
            });
        }
    }
    for chunk in batch.chunks(500) {
        queue.send_batch(chunk).await.unwrap();
    }
    let started = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = (0..workers)
        .map(|_| {
            tokio::spawn(run_worker(
                queue.clone(),
                handler.clone(),
                WorkerOptions {
                    batch: 100,
                    concurrency,
                    visibility: Duration::from_secs(30),
                    idle: Duration::from_millis(10),
                    // As `wabridge serve` wires it: a failing CRM opens the circuit and the
                    // worker waits instead of spending receives.
                    breaker: breaker.clone(),
                    ..WorkerOptions::default()
                },
                stop_rx.clone(),
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let c = queue.counts().await.unwrap();
        if c.visible + c.hidden == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "queue not drained: {c:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    stop_tx.send(true).unwrap();
    for worker in workers {
        worker.await.unwrap();
    }
    (queue.counts().await.unwrap().dead, elapsed)
}

/// The most calls that arrived within any `window` (a rolling window over the arrivals).
pub(crate) fn busiest_window(arrivals: &[Instant], window: Duration) -> usize {
    let mut sorted = arrivals.to_vec();
    sorted.sort();
    let mut start = 0;
    let mut most = 0;
    for end in 0..sorted.len() {
        while sorted[end].duration_since(sorted[start]) >= window {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

/// Every case, as tests of one subject.
macro_rules! conformance {
    ($module:ident, $subject:ty) => {
        mod $module {
            use super::cases;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn one_contact_per_person_across_spellings_and_bsuid() {
                cases::one_contact_per_person::<$subject>().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_first_messages_of_one_person_make_one_contact() {
                cases::concurrent_first_messages::<$subject>().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_bsuid_alone_stays_on_the_contact_of_its_phone() {
                cases::bsuid_alone_after_phone::<$subject>().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn inbound_activity_once_across_a_crash_before_confirm() {
                cases::activity_once_across_a_crash::<$subject>().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn in_doubt_retry_waits_out_the_search_index_lag() {
                cases::in_doubt_waits_out_index_lag::<$subject>().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn outbound_statuses_are_activities() {
                cases::outbound_statuses::<$subject>().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn consent_fields_follow_opt_out_and_opt_in() {
                cases::consent_fields::<$subject>().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn attribution_fields_and_a_lead_becoming_a_deal() {
                cases::attribution_and_deal::<$subject>().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rate_limit_held_under_a_2000_event_burst() {
                cases::burst_holds_the_rate_limit::<$subject>().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn throttles_errors_and_timeouts_are_retried() {
                cases::retried_failures::<$subject>().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_400_dead_letters_with_the_crm_message_masked() {
                cases::rejection_dead_letters_masked::<$subject>().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn conversation_records() {
                super::conversations::conversation_records::<$subject>().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_401_or_403_makes_events_wait() {
                cases::unauthorized_waits::<$subject>().await
            }
        }
    };
}

conformance!(hubspot_adapter, super::hubspot::HubSpot);
conformance!(webhook_adapter, super::webhook::Webhook);
conformance!(pipedrive_adapter, super::pipedrive::Pipedrive);
conformance!(zoho_adapter, super::zoho::Zoho);
conformance!(kommo_adapter, super::kommo::Kommo);
conformance!(salesforce_adapter, super::salesforce::Salesforce);
