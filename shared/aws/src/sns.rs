//! The events topic over SNS (`wabridge_core::inbox::EventTopic`, `docs/destinations.md`): a
//! stack with destinations publishes each new event once, with `PublishBatch` (up to 10 entries
//! and 256 KiB a call), and SNS delivers it to the events queue and to each destination's queue
//! whose filter policy matches its attributes (`wabridge_core::numbers::topic`). Raw message
//! delivery makes each queue's message the event's JSON (or its claim-check pointer), exactly
//! what the events queue holds without a topic.
//!
//! One call (SNS's query protocol, a form POST), signed with SigV4 and sent through this crate's
//! HTTPS client by the helper the S3 calls use (`crate::signed`), rather than through
//! aws-sdk-sns: ingest's package stays small. A 5xx, a 429, a timeout or a refused connection is
//! retried here (three attempts, with the queue consumers' jittered backoff); entries SNS reports failed for its own reason are published again; anything
//! left, or an entry SNS blames on us, fails the publish (`Unavailable` or `Corrupt`), so ingest
//! answers 5xx and Meta retries the delivery.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sigv4::http_request::SigningSettings;
use http::Method;

use crate::s3::{error_code, query_escape};
use crate::sdk::SdkConfig;
use crate::signed::{pause_before, Failure, SignedClient};
use wabridge_core::claim_check::{checked, BlobStore, CLAIM_CHECK_BYTES};
use wabridge_core::error::StoreError;
use wabridge_core::event::Event;
use wabridge_core::inbox::EventTopic;
use wabridge_core::numbers::{topic, Numbers};
use wabridge_core::queue::OutgoingMessage;

/// PublishBatch takes at most 10 entries and 256 KiB of messages and attributes together.
pub const PUBLISH_BATCH_MAX: usize = 10;
const PUBLISH_BATCH_BYTES: usize = 256 * 1024;
/// Room for each entry's attributes within the batch's 256 KiB.
const ENTRY_OVERHEAD: usize = 256;
const ATTEMPTS: u32 = 3;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const READ_TIMEOUT: Duration = Duration::from_secs(4);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One entry to publish: the body (event or pointer) and its attributes.
struct Entry {
    body: String,
    attributes: Vec<(&'static str, String)>,
}

#[derive(Clone)]
pub struct SnsTopic {
    endpoint: String,
    topic_arn: String,
    client: SignedClient,
    /// The registry that names each event's number (`None`: one-number stack, no `number`).
    numbers: Option<Arc<Numbers>>,
    /// The claim-check bucket for events too large for SNS and SQS.
    blobs: Option<Arc<dyn BlobStore>>,
    /// Told of events whose number `numbers` does not know (ingest reads the registry again).
    unknown: Option<topic::UnknownSeen>,
}

impl std::fmt::Debug for SnsTopic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnsTopic")
            .field("topic_arn", &self.topic_arn)
            .finish_non_exhaustive()
    }
}

impl SnsTopic {
    /// The topic `topic_arn` with the configuration's region, credentials and endpoint
    /// (`AWS_ENDPOINT_URL_SNS`, else `AWS_ENDPOINT_URL`).
    pub fn new(sdk: &SdkConfig, topic_arn: impl Into<String>) -> SnsTopic {
        let client = SignedClient::new(sdk, "sns", CONNECT_TIMEOUT, READ_TIMEOUT);
        let endpoint = SignedClient::endpoint(sdk, "SNS")
            .map(|url| format!("{}/", url.trim_end_matches('/')))
            .unwrap_or_else(|| {
                format!(
                    "https://sns.{}.amazonaws.com/",
                    client.region().unwrap_or("us-east-1")
                )
            });
        SnsTopic {
            endpoint,
            topic_arn: topic_arn.into(),
            client,
            numbers: None,
            blobs: None,
            unknown: None,
        }
    }

    /// Events carry the label of their number in this registry (`number` attribute).
    pub fn with_numbers(mut self, numbers: Option<Arc<Numbers>>) -> SnsTopic {
        self.numbers = numbers;
        self
    }

    /// Events of a number the registry does not know are noted in `unknown`.
    pub fn with_unknown_seen(mut self, unknown: Option<topic::UnknownSeen>) -> SnsTopic {
        self.unknown = unknown;
        self
    }

    /// Events over the claim-check threshold go to `blobs`; the topic carries their pointer.
    pub fn with_claim_check(mut self, blobs: Option<Arc<dyn BlobStore>>) -> SnsTopic {
        self.blobs = blobs;
        self
    }

    /// One signed form POST; SNS's status and body.
    async fn post(&self, form: &str) -> Result<(u16, Vec<u8>), Failure> {
        let length = form.len().to_string();
        let headers = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-length", length.as_str()),
        ];
        let settings = SigningSettings::default();
        self.client
            .send_read(
                &Method::POST,
                &self.endpoint,
                &headers,
                form.as_bytes(),
                settings,
            )
            .await
    }

    /// Publishes one batch (at most 10 entries, 256 KiB), retrying transient failures and the
    /// entries SNS failed for its own reasons.
    async fn publish_batch(&self, entries: &[Entry]) -> Result<(), StoreError> {
        let mut pending: Vec<usize> = (0..entries.len()).collect();
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                pause_before(attempt).await;
            }
            let form = publish_form(&self.topic_arn, entries, &pending);
            let answer = tokio::time::timeout(CALL_TIMEOUT, self.post(&form)).await;
            let (status, body) = match answer {
                Ok(Ok(answer)) => answer,
                Ok(Err(Failure::Transient(e))) => {
                    last = e;
                    continue;
                }
                // No region or credentials: no attempt can succeed until an operator fixes it.
                Ok(Err(Failure::Config(e))) => {
                    return Err(StoreError::Unavailable(format!("PublishBatch: {e}")))
                }
                Err(_) => {
                    last = format!("no answer within {CALL_TIMEOUT:?}");
                    continue;
                }
            };
            if status == 429 || status >= 500 {
                last = format!("HTTP {status}: {}", error_code(&body));
                continue;
            }
            if status != 200 {
                // Denied, a missing topic, a throttled account: an operator fixes it while
                // Meta retries the delivery.
                return Err(StoreError::Unavailable(format!(
                    "PublishBatch to {}: HTTP {status} {}",
                    self.topic_arn,
                    error_code(&body)
                )));
            }
            let failed = failed_entries(&String::from_utf8_lossy(&body));
            if failed.is_empty() {
                return Ok(());
            }
            let mut retry = Vec::new();
            for f in failed {
                let index =
                    f.id.strip_prefix('e')
                        .and_then(|i| i.parse::<usize>().ok())
                        .filter(|i| *i < entries.len())
                        .ok_or_else(|| {
                            StoreError::corrupt(format!("PublishBatch: unknown entry id {}", f.id))
                        })?;
                let detail = format!("PublishBatch entry {index}: {}", f.code);
                if f.sender_fault {
                    return Err(StoreError::Corrupt(detail));
                }
                tracing::warn!(attempt, %detail, "SNS did not take an event; publishing again");
                last = detail;
                retry.push(index);
            }
            pending = retry;
        }
        Err(StoreError::Unavailable(format!(
            "PublishBatch: {last} (after {ATTEMPTS} attempts)"
        )))
    }
}

#[async_trait]
impl EventTopic for SnsTopic {
    async fn publish(&self, events: &[&Event]) -> Result<(), StoreError> {
        let mut entries = Vec::with_capacity(events.len());
        for event in events {
            let mut message = event.to_message();
            // Objects first, pointers second: a pointer never names an object not yet written.
            if let Some(blobs) = &self.blobs {
                message = checked(blobs.as_ref(), &message, CLAIM_CHECK_BYTES).await?;
            }
            let OutgoingMessage { body, .. } = message;
            if let (Some(unknown), Some(numbers)) = (&self.unknown, &self.numbers) {
                unknown.note_if_unknown(event, numbers);
            }
            entries.push(Entry {
                body,
                attributes: topic::attributes(event, self.numbers.as_deref()),
            });
        }
        let batches = batches(&entries);
        futures::future::try_join_all(batches.iter().map(|b| self.publish_batch(b))).await?;
        Ok(())
    }
}

/// Splits entries into batches of at most 10 and 256 KiB.
fn batches(entries: &[Entry]) -> Vec<&[Entry]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, e) in entries.iter().enumerate() {
        let len = e.body.len() + ENTRY_OVERHEAD;
        if i > start && (i - start == PUBLISH_BATCH_MAX || size + len > PUBLISH_BATCH_BYTES) {
            out.push(&entries[start..i]);
            (start, size) = (i, 0);
        }
        size += len;
    }
    if start < entries.len() {
        out.push(&entries[start..]);
    }
    out
}

/// The form of a PublishBatch of `entries[pending]`; entry ids are `e<index>`.
fn publish_form(topic_arn: &str, entries: &[Entry], pending: &[usize]) -> String {
    let mut form = format!(
        "Action=PublishBatch&Version=2010-03-31&TopicArn={}",
        query_escape(topic_arn)
    );
    for (n, &i) in pending.iter().enumerate() {
        let p = format!("PublishBatchRequestEntries.member.{}", n + 1);
        form.push_str(&format!("&{p}.Id=e{i}&{p}.Message="));
        form.push_str(&query_escape(&entries[i].body));
        for (m, (name, value)) in entries[i].attributes.iter().enumerate() {
            let a = format!("{p}.MessageAttributes.entry.{}", m + 1);
            form.push_str(&format!(
                "&{a}.Name={name}&{a}.Value.DataType=String&{a}.Value.StringValue={}",
                query_escape(value)
            ));
        }
    }
    form
}

struct Failed {
    id: String,
    code: String,
    sender_fault: bool,
}

/// The `<Failed>` members of a PublishBatch answer.
fn failed_entries(xml: &str) -> Vec<Failed> {
    let Some((_, rest)) = xml.split_once("<Failed>") else {
        return Vec::new();
    };
    let section = rest.split_once("</Failed>").map_or(rest, |(s, _)| s);
    let field = |member: &str, name: &str| {
        member
            .split_once(&format!("<{name}>"))
            .and_then(|(_, r)| r.split_once(&format!("</{name}>")))
            .map(|(v, _)| v.trim().to_string())
            .unwrap_or_default()
    };
    section
        .split("<member>")
        .skip(1)
        .map(|member| Failed {
            id: field(member, "Id"),
            code: field(member, "Code"),
            sender_fault: field(member, "SenderFault") == "true",
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(len: usize) -> Entry {
        Entry {
            body: "x".repeat(len),
            attributes: vec![(topic::ATTR_EVENT_CLASS, "messages".into())],
        }
    }

    #[test]
    fn batches_respect_count_and_size_limits() {
        let small: Vec<_> = (0..23).map(|_| entry(10)).collect();
        let sizes: Vec<usize> = batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![10, 10, 3]);
        let big: Vec<_> = (0..5).map(|_| entry(100 * 1024)).collect();
        let sizes: Vec<usize> = batches(&big).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn the_form_carries_each_pending_entry_with_its_attributes() {
        let entries = vec![
            Entry {
                body: r#"{"a":"b c&d"}"#.into(),
                attributes: vec![
                    (topic::ATTR_NUMBER, "ventas-mx".into()),
                    (topic::ATTR_EVENT_CLASS, "messages".into()),
                ],
            },
            entry(1),
        ];
        let form = publish_form("arn:aws:sns:us-east-1:1:t", &entries, &[0]);
        assert!(
            form.contains("TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A1%3At"),
            "{form}"
        );
        assert!(form.contains("PublishBatchRequestEntries.member.1.Id=e0&PublishBatchRequestEntries.member.1.Message=%7B%22a%22%3A%22b%20c%26d%22%7D"), "{form}");
        assert!(form.contains("member.1.MessageAttributes.entry.1.Name=number&PublishBatchRequestEntries.member.1.MessageAttributes.entry.1.Value.DataType=String&PublishBatchRequestEntries.member.1.MessageAttributes.entry.1.Value.StringValue=ventas-mx"), "{form}");
        assert!(form.contains("entry.2.Name=event_class"), "{form}");
        assert!(!form.contains("member.2"), "only pending entries: {form}");
        // A retry of entry 1 alone numbers it member 1 with its own id.
        let form = publish_form("t", &entries, &[1]);
        assert!(form.contains("member.1.Id=e1"), "{form}");
    }

    #[test]
    fn failed_entries_are_read_with_their_fault() {
        let xml = "<PublishBatchResponse><PublishBatchResult><Successful><member><Id>e0</Id>\
            <MessageId>m</MessageId></member></Successful><Failed><member><Id>e1</Id>\
            <Code>InternalError</Code><SenderFault>false</SenderFault></member><member>\
            <Id>e2</Id><Code>InvalidParameter</Code><SenderFault>true</SenderFault></member>\
            </Failed></PublishBatchResult></PublishBatchResponse>";
        let failed = failed_entries(xml);
        assert_eq!(failed.len(), 2);
        assert_eq!(
            (
                failed[0].id.as_str(),
                failed[0].code.as_str(),
                failed[0].sender_fault
            ),
            ("e1", "InternalError", false)
        );
        assert!(failed[1].sender_fault);
        assert!(failed_entries("<Failed/>").is_empty());
        assert!(failed_entries("<PublishBatchResult><Failed></Failed>").is_empty());
    }
}
