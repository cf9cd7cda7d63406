//! [`AwsEngine`]: the one way the Lambdas (and the tests over moto) build wabridge's stores,
//! queues and services over one DynamoDB table and SQS.

use std::sync::Arc;

use std::time::Duration;
use wabridge_core::erasure::ErasureService;

use crate::sdk::SdkConfig;
use wabridge_core::attribution::AttributionConfig;
use wabridge_core::audit::Audit;
use wabridge_core::auth::ApiKeys;
use wabridge_core::claim_check::{BlobStore, ClaimCheckQueue, ClaimChecked};
use wabridge_core::consent::{ConsentScope, ConsentService};
use wabridge_core::consumer::Handler;
use wabridge_core::crm::Crm;
use wabridge_core::inbox::StagedInbox;
use wabridge_core::mapping::Mapping;
use wabridge_core::media::store::MediaStore;
use wabridge_core::queue::Queue;
use wabridge_core::sends::policy::Policy;
use wabridge_core::sends::service::{SendEvents, Sends};
use wabridge_core::sync::{CrmSync, SyncHooks};
use wabridge_core::window::WindowService;

use crate::dynamo::{
    attribution::DynamoAttribution, audit::DynamoAudit, consent::DynamoConsent,
    dedupe::DynamoDedupe, identity::DynamoIdentityStore, ledger::DynamoLedger,
    media_index::DynamoMediaIndex, media_uploads::DynamoMediaUploads, sends::DynamoSends,
    templates::DynamoTemplates, window::DynamoWindow,
};
use crate::s3::S3Blobs;
use crate::sqs::SqsQueue;

/// The distributed engine: SDK clients and the table every store lives in. Cheap to clone.
#[derive(Clone)]
pub struct AwsEngine {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub table: String,
    /// The events' claim-check bucket (`CLAIM_CHECK_BUCKET`), when there is one.
    pub claim_check: Option<S3Blobs>,
    /// How long a send's content is kept (`WABRIDGE_CONTENT_RETENTION_DAYS`), and a stored media
    /// file's index items after the latest message that used it.
    pub content_retention: Duration,
    /// The media bucket (`MEDIA_BUCKET`), when this function reaches it: erasures delete the
    /// person's files there.
    pub media: Option<Arc<dyn MediaStore>>,
    /// Whether an opt-out on one number holds for the others (`WABRIDGE_CONSENT_SCOPE`).
    pub consent_scope: ConsentScope,
}

impl AwsEngine {
    /// Clients from the shared SDK configuration (built once per cold start).
    pub fn new(sdk: &SdkConfig, table: impl Into<String>) -> AwsEngine {
        AwsEngine {
            dynamo: aws_sdk_dynamodb::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            table: table.into(),
            claim_check: None,
            content_retention: Duration::from_secs(
                wabridge_core::retention::DEFAULT_CONTENT_RETENTION_DAYS * 86_400,
            ),
            media: None,
            consent_scope: ConsentScope::default(),
        }
    }

    /// The send guards read consent in `scope` ([`ConsentScope`]).
    pub fn with_consent_scope(mut self, scope: ConsentScope) -> AwsEngine {
        self.consent_scope = scope;
        self
    }

    /// Erasures through this engine delete the person's media files from `store`.
    pub fn with_media(mut self, store: Arc<dyn MediaStore>) -> AwsEngine {
        self.media = Some(store);
        self
    }

    /// The media index in the table (who sent each stored file), items kept the content
    /// retention after their latest use.
    pub fn media_index(&self) -> DynamoMediaIndex {
        DynamoMediaIndex::new(
            self.dynamo.clone(),
            self.table.clone(),
            self.content_retention,
        )
    }

    /// Sends created through this engine keep their content `retention`.
    pub fn with_content_retention(mut self, retention: Duration) -> AwsEngine {
        self.content_retention = retention;
        self
    }

    /// Events over the claim-check threshold go to `bucket` (`CLAIM_CHECK_BUCKET`); `None`
    /// leaves them on the queue, which refuses those over its size limit.
    pub fn with_claim_check(mut self, sdk: &SdkConfig, bucket: Option<String>) -> AwsEngine {
        self.claim_check = bucket.map(|b| S3Blobs::new(sdk, b));
        self
    }

    fn blobs(&self) -> Option<Arc<dyn BlobStore>> {
        self.claim_check
            .clone()
            .map(|b| Arc::new(b) as Arc<dyn BlobStore>)
    }

    /// The events queue as its producers send to it: through the claim-check when there is a
    /// bucket.
    pub fn events_producer(&self, url: impl Into<String>) -> Arc<dyn Queue> {
        let queue: Arc<dyn Queue> = Arc::new(self.producer(url));
        match self.blobs() {
            Some(blobs) => Arc::new(ClaimCheckQueue::new(queue, blobs)),
            None => queue,
        }
    }

    /// An events consumer's handler, reading claim-checked events back (see
    /// [`ClaimChecked`]).
    pub fn claim_checked(&self, handler: Arc<dyn Handler>) -> Arc<dyn Handler> {
        Arc::new(ClaimChecked::new(handler, self.blobs()))
    }

    /// [`Self::claim_checked`] for a consumer of a queue fed by the events topic: other queues'
    /// consumers read the same objects, so done events leave them to the bucket's lifecycle.
    pub fn claim_checked_shared(&self, handler: Arc<dyn Handler>) -> Arc<dyn Handler> {
        Arc::new(ClaimChecked::new(handler, self.blobs()).shared())
    }

    /// A queue this function consumes (and dead-letters to).
    pub fn queue(&self, url: impl Into<String>, dlq_url: impl Into<String>) -> SqsQueue {
        SqsQueue::new(self.sqs.clone(), url, dlq_url)
    }

    /// A queue this function only sends to (no dead-letter access needed).
    pub fn producer(&self, url: impl Into<String>) -> SqsQueue {
        SqsQueue::producer(self.sqs.clone(), url)
    }

    /// Ingest's hand-off: dedupe in the table, then the events queue (through the claim-check).
    pub fn inbox(&self, events_queue_url: impl Into<String>, dedupe_ttl: Duration) -> StagedInbox {
        StagedInbox::new(
            Arc::new(DynamoDedupe::new(self.dynamo.clone(), self.table.clone())),
            self.events_producer(events_queue_url),
            dedupe_ttl,
        )
    }

    /// Ingest's hand-off on a stack with destinations (`docs/destinations.md`): dedupe in the
    /// table, then one publish to the events topic (through the claim-check), which every
    /// consumer's queue subscribes to; `numbers` names each event's number for the filters.
    pub fn topic_inbox(
        &self,
        sdk: &SdkConfig,
        topic_arn: impl Into<String>,
        numbers: Option<Arc<wabridge_core::numbers::Numbers>>,
        unknown: Option<wabridge_core::numbers::topic::UnknownSeen>,
        dedupe_ttl: Duration,
    ) -> StagedInbox {
        let topic = crate::sns::SnsTopic::new(sdk, topic_arn)
            .with_numbers(numbers)
            .with_unknown_seen(unknown)
            .with_claim_check(self.blobs());
        StagedInbox::publishing(
            Arc::new(DynamoDedupe::new(self.dynamo.clone(), self.table.clone())),
            Arc::new(topic),
            dedupe_ttl,
        )
    }

    /// The audit trail in the table, lines kept `retention`.
    pub fn audit(&self, retention: Duration) -> Audit {
        Audit::new(Arc::new(
            DynamoAudit::new(self.dynamo.clone(), self.table.clone()).with_retention(retention),
        ))
    }

    /// Erasure over the table (and the media bucket, [`Self::with_media`]); the CRM's erasure
    /// events go on the events queue at `events_url`.
    pub fn erasure(&self, events_url: impl Into<String>, audit: Audit) -> ErasureService {
        let mut store = crate::dynamo::erasure::DynamoErasure::new(
            self.dynamo.clone(),
            self.table.clone(),
            Arc::new(self.producer(events_url)),
        );
        if let Some(media) = &self.media {
            store = store.with_media(media.clone());
        }
        ErasureService::new(Arc::new(store), audit)
    }

    /// The policy guards' stores: consent, template registry, 24-hour window.
    pub fn policy(&self) -> Policy {
        Policy {
            consent: ConsentService::new(Arc::new(DynamoConsent::new(
                self.dynamo.clone(),
                self.table.clone(),
            )))
            .with_scope(self.consent_scope),
            templates: DynamoTemplates::registries(self.dynamo.clone(), self.table.clone()),
            window: WindowService::new(Arc::new(DynamoWindow::new(
                self.dynamo.clone(),
                self.table.clone(),
            ))),
            numbers: None,
        }
    }

    /// The sends service over the table. `queue` is where accepted sends go (the sends queue;
    /// the sender consumes it); `events` is told how sends end; `keys` guard the HTTP routes
    /// (none where the function serves none).
    pub fn sends(
        &self,
        queue: Arc<dyn Queue>,
        events: Arc<dyn SendEvents>,
        keys: Arc<ApiKeys>,
    ) -> Sends {
        Sends::new(
            Arc::new(
                DynamoSends::new(self.dynamo.clone(), self.table.clone())
                    .with_content_retention(self.content_retention),
            ),
            queue,
            self.policy(),
            events,
            keys,
        )
    }

    /// The destinations' delivery log in the table (`wabridge replay`), items kept the content
    /// retention.
    pub fn deliveries(&self) -> crate::dynamo::deliveries::DynamoDeliveries {
        crate::dynamo::deliveries::DynamoDeliveries::new(
            self.dynamo.clone(),
            self.table.clone(),
            self.content_retention,
        )
    }

    /// What uploads recorded of the files sends carry, and Meta's media ids of the files the
    /// sender uploaded (details kept for the content retention).
    pub fn media_uploads(&self) -> DynamoMediaUploads {
        DynamoMediaUploads::new(self.dynamo.clone(), self.table.clone())
            .with_retention(self.content_retention)
    }

    /// Conversation changes from the API and from conversions, written to the table, then
    /// queued on the events queue for crm-sync (they write no message marks).
    pub fn conversation_updates(
        &self,
        idle_ms: i64,
        events_queue_url: impl Into<String>,
    ) -> wabridge_core::conversations::update::ConversationUpdates {
        wabridge_core::conversations::update::ConversationUpdates::new(
            self.conversations(idle_ms, Duration::ZERO),
            self.events_producer(events_queue_url),
        )
    }

    /// Conversations over the table, closing after `idle_ms` without a message; message marks
    /// are kept `ledger_retention`.
    pub fn conversations(
        &self,
        idle_ms: i64,
        ledger_retention: Duration,
    ) -> wabridge_core::conversations::Conversations {
        wabridge_core::conversations::Conversations::new(
            Arc::new(crate::dynamo::conversations::DynamoConversations::new(
                self.dynamo.clone(),
                self.table.clone(),
                ledger_retention,
            )),
            idle_ms,
        )
    }

    /// The identity store over the table.
    pub fn identities(&self) -> DynamoIdentityStore {
        DynamoIdentityStore::new(self.dynamo.clone(), self.table.clone())
    }

    /// The effects ledger over the table, its items kept `retention`.
    pub fn ledger(&self, retention: Duration) -> DynamoLedger {
        DynamoLedger::new(self.dynamo.clone(), self.table.clone()).with_retention(retention)
    }

    /// crm-sync over the table: identities, the effects ledger (kept `ledger_retention`),
    /// attribution, and the sending side's `hooks`.
    pub fn crm_sync(
        &self,
        crm: Arc<dyn Crm>,
        mapping: Mapping,
        attribution: AttributionConfig,
        ledger_retention: Duration,
        hooks: Arc<dyn SyncHooks>,
    ) -> CrmSync {
        let (dynamo, table) = (self.dynamo.clone(), self.table.clone());
        CrmSync::new(
            Arc::new(self.identities()),
            Arc::new(self.ledger(ledger_retention)),
            crm,
            Arc::new(mapping),
        )
        .with_attribution(Arc::new(DynamoAttribution::new(dynamo, table)), attribution)
        .with_hooks(hooks)
        .with_alerts(Arc::new(crate::emf::EmfAlerts::stdout()))
    }
}
