//! Fan-out destinations on AWS (issue 21, docs/destinations.md) over moto's DynamoDB, SNS and SQS:
//! ingest's Lambda handler publishes each new event once to the events topic; SNS delivers it
//! (raw message delivery) to the events queue, unfiltered, and to the bot's queue through its
//! filter policy (ventas-mx's messages); the relay Lambda's handler delivers the bot's queue to a
//! local bot whose signature check pywa accepts; a bot that is down keeps its events on its own
//! queue (retried) while the CRM's queue has everything; a refusal, and a failure past the retry
//! horizon, are dead-lettered into the bot's DLQ with their reason.
//!
//! moto 5.2 applies filter policies (`MessageAttributes` scope) and raw delivery to SQS, both
//! checked here (the raw body must parse as the event, the status must not reach the bot).

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use wabridge_aws::sqs::SqsQueue;
use wabridge_core::event::Event;
use wabridge_core::ingest::IngestConfig;
use wabridge_core::numbers::destinations::{DestinationKind, EventClass};
use wabridge_core::numbers::{topic, Numbers};
use wabridge_core::queue::Queue;
use wabridge_core::retry::RetryPolicy;
use wabridge_crm::relay::HttpRelay;

use crate::claim_check_s3::{post_webhook, APP_SECRET};
use crate::destinations_serve::{pywa_python, pywa_verdicts};
use wabridge_tests::{
    create_queues, create_table, queue_depth, receive_lambda_records, require_aws, unique_name,
    Aws, TestQueues,
};

pub(crate) const BOT_SECRET: &str = "bot-secret-0123456789";
pub(crate) const MX: &str = "106540352242922";
pub(crate) const CO: &str = "206540352242922";
pub(crate) const WABA_MX: &str = "102290129340398";
pub(crate) const WABA_CO: &str = "202290129340398";

pub(crate) const REGISTRY: &str = r#"
[[number]]
label = "ventas-mx"
phone_number_id = "106540352242922"
waba_id = "102290129340398"
display_number = "+52 55 5000 1111"
token_key = "WHATSAPP_ACCESS_TOKEN_MX"
crm = { kind = "local" }

[[number]]
label = "soporte-co"
phone_number_id = "206540352242922"
waba_id = "202290129340398"
display_number = "+57 601 500 2222"
token_key = "WHATSAPP_ACCESS_TOKEN_CO"
crm = { kind = "local" }
"#;

/// One SNS query call to moto (which routes by the credential scope and checks no signature).
async fn sns(endpoint: &str, params: &[(&str, &str)]) -> String {
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let answer = reqwest::Client::new()
        .post(endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=00",
        )
        .body(form)
        .send()
        .await
        .expect("SNS call");
    let status = answer.status();
    let text = answer.text().await.unwrap();
    assert!(status.is_success(), "SNS {params:?}: {status} {text}");
    text
}

fn xml_field(xml: &str, name: &str) -> String {
    let (_, rest) = xml.split_once(&format!("<{name}>")).expect(name);
    rest.split_once(&format!("</{name}>"))
        .unwrap()
        .0
        .to_string()
}

async fn queue_arn(aws: &Aws, url: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    aws.sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .unwrap()
}

/// Subscribes `queue_url` to `topic_arn` with raw delivery and, when given, a filter policy.
async fn subscribe(aws: &Aws, endpoint: &str, topic_arn: &str, url: &str, filter: Option<Value>) {
    let arn = queue_arn(aws, url).await;
    let filter = filter.map(|f| f.to_string());
    let mut params = vec![
        ("Action", "Subscribe"),
        ("TopicArn", topic_arn),
        ("Protocol", "sqs"),
        ("Endpoint", arn.as_str()),
        ("Attributes.entry.1.key", "RawMessageDelivery"),
        ("Attributes.entry.1.value", "true"),
    ];
    if let Some(f) = &filter {
        params.push(("Attributes.entry.2.key", "FilterPolicy"));
        params.push(("Attributes.entry.2.value", f.as_str()));
    }
    sns(endpoint, &params).await;
}

pub(crate) struct Stack {
    pub(crate) aws: Aws,
    pub(crate) table: String,
    pub(crate) events: TestQueues,
    pub(crate) bot: TestQueues,
    api: wabridge_core::api::Api,
}

/// A table, the events queue and the bot's queue, and the topic both subscribe to: the events
/// queue unfiltered, the bot's with the filter of `events = ["messages"]`, `numbers = [label]`.
pub(crate) async fn topology(aws: &Aws, label: &str) -> (String, TestQueues, TestQueues, String) {
    let endpoint = wabridge_tests::moto_endpoint().unwrap();
    let table = create_table(&aws.dynamo, &unique_name("fanout")).await;
    let events = create_queues(&aws.sqs, &unique_name("fanout-events"), 5).await;
    let bot = create_queues(&aws.sqs, &unique_name("fanout-bot"), 50).await;
    let created = sns(
        &endpoint,
        &[("Action", "CreateTopic"), ("Name", &unique_name("events"))],
    )
    .await;
    let topic_arn = xml_field(&created, "TopicArn");
    subscribe(aws, &endpoint, &topic_arn, &events.url, None).await;
    let labels = [label.to_string()];
    let filter = topic::filter_policy(&[EventClass::Messages], Some(&labels));
    subscribe(aws, &endpoint, &topic_arn, &bot.url, Some(filter)).await;
    (table, events, bot, topic_arn)
}

/// The template's shape: a topic; the events queue subscribed unfiltered; the bot's queue
/// subscribed with the filter of `events = ["messages"]`, `numbers = ["ventas-mx"]`; ingest
/// wired as its cold start wires it with `EVENTS_TOPIC_ARN`.
pub(crate) async fn stack(aws: Aws) -> Stack {
    let (table, events, bot, topic_arn) = topology(&aws, "ventas-mx").await;
    let ingest = IngestConfig::from_lookup(|name| {
        (name == "WHATSAPP_APP_SECRET").then(|| APP_SECRET.to_string())
    })
    .unwrap();
    let numbers = Numbers::parse("numbers.toml", REGISTRY.as_bytes()).unwrap();
    let api = ingest::build_api_with_topic(
        &aws.config,
        ingest::Settings {
            table: table.clone(),
            events_queue_url: events.url.clone(),
            ingest,
            sends_queue_url: None,
            api_keys: Default::default(),
            claim_check_bucket: None,
            audit_retention: wabridge_tests::AUDIT_RETENTION,
            content_retention: wabridge_tests::CONTENT_RETENTION,
            template_languages: Default::default(),
            media_bucket: None,
            media_links: None,
            catalogues: Default::default(),
            conversation_idle_ms: 24 * 3_600_000,
            consent_scope: Default::default(),
        },
        Some(Arc::new(numbers)),
        Some(topic_arn),
        None,
    );
    Stack {
        aws,
        table,
        events,
        bot,
        api,
    }
}

pub(crate) fn message(waba: &str, number: &str, wamid: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": waba, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": number},
        "contacts": [{"profile": {"name": "Cliente"}, "wa_id": "5215512345678"}],
        "messages": [{"from": "5215512345678", "id": wamid, "timestamp": "1763780000", "type": "text",
                      "text": {"body": "¿Tienen envío a Monterrey?"}}]}}]}]})
}

fn status(waba: &str, number: &str, wamid: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": waba, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": number},
        "statuses": [{"id": wamid, "status": "delivered", "timestamp": "1763780001",
                      "recipient_id": "5215512345678"}]}}]}]})
}

impl Stack {
    pub(crate) async fn post(&self, body: &Value) {
        let (status, answer) = post_webhook(&self.api, body.to_string().as_bytes()).await;
        assert_eq!(status, 200, "{answer}");
    }

    async fn keys(&self, url: &str) -> Vec<(String, Vec<(String, String)>)> {
        queued_keys(&self.aws, url).await
    }

    /// The messages on `url` as Lambda hands them to a function.
    pub(crate) async fn batch(&self, url: &str) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = receive_lambda_records(&self.aws.sqs, url).await;
        event
    }

    /// Deletes the batch's messages, as Lambda does after a batch without failures.
    pub(crate) async fn finish(&self, url: &str, event: &SqsEvent) {
        for record in &event.records {
            self.aws
                .sqs
                .delete_message()
                .queue_url(url)
                .receipt_handle(record.receipt_handle.clone().unwrap())
                .send()
                .await
                .unwrap();
        }
    }

    /// Makes a message visible again now: its retry's delay over, rather than waited for.
    pub(crate) async fn visible_now(&self, url: &str, receipt: String) {
        self.aws
            .sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }

    /// The relay function of the bot's queue, delivering to the bot at `url`.
    pub(crate) fn relay_app(&self, url: &str) -> relay::App {
        let destination = relay::Destination {
            name: "bot".into(),
            kind: DestinationKind::Relay,
            url: url.to_string(),
            secret_key: "BOT_SECRET".into(),
            queue_url: self.bot.url.clone(),
            dlq_url: self.bot.dlq_url.clone(),
        };
        let engine = self.aws.engine(&self.table);
        let post = Arc::new(HttpRelay::new(url, Duration::from_secs(5)).unwrap());
        relay::build(&engine, &destination, BOT_SECRET, post, RetryPolicy::EVENTS).unwrap()
    }
}

/// The event keys on `url` and each message's attributes (received, hidden 60 s).
pub(crate) async fn queued_keys(aws: &Aws, url: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    for _ in 0..3 {
        let got = aws
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .visibility_timeout(60)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in got.messages.unwrap_or_default() {
            // Raw delivery: the body is the event itself, not SNS's notification.
            let event = Event::from_json(m.body().unwrap())
                .unwrap_or_else(|e| panic!("not an event (raw delivery?): {e}"));
            let mut attrs: Vec<(String, String)> = m
                .message_attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.string_value.unwrap_or_default()))
                .collect();
            attrs.sort();
            out.push((event.key, attrs));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn ingest_publishes_each_new_event_once_and_sns_filters_it_to_the_bot() {
    let s = stack(require_aws!()).await;
    s.post(&message(WABA_MX, MX, "wamid.MX1")).await;
    s.post(&message(WABA_CO, CO, "wamid.CO1")).await;
    s.post(&status(WABA_MX, MX, "wamid.OUT1")).await;
    // Meta redelivers a webhook it already sent: its dedupe key stops it before the topic.
    s.post(&message(WABA_MX, MX, "wamid.MX1")).await;

    let crm: Vec<String> = s
        .keys(&s.events.url)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        crm.len(),
        3,
        "the CRM's queue gets every event once: {crm:?}"
    );
    assert!(
        crm.iter().any(|k| k.contains("wamid.CO1")) && crm.iter().any(|k| k.contains("wamid.OUT1"))
    );

    let bot = s.keys(&s.bot.url).await;
    assert_eq!(
        bot.len(),
        1,
        "only ventas-mx's message reaches the bot: {bot:?}"
    );
    assert!(bot[0].0.contains("wamid.MX1"), "{bot:?}");
    assert_eq!(
        bot[0].1,
        vec![
            ("event_class".to_string(), "messages".to_string()),
            ("number".to_string(), "ventas-mx".to_string())
        ]
    );
}

#[tokio::test]
async fn ingest_answers_503_when_the_topic_refuses_and_marks_nothing() {
    let aws = require_aws!();
    let s = stack(aws).await;
    // A topic that does not exist: the publish fails after the dedupe check, Meta must retry.
    let numbers = Numbers::parse("numbers.toml", REGISTRY.as_bytes()).unwrap();
    let broken = ingest::build_api_with_topic(
        &s.aws.config,
        ingest::Settings::from_lookup(|name| match name {
            "WABRIDGE_TABLE" => Some(s.table.clone()),
            "EVENTS_QUEUE_URL" => Some(s.events.url.clone()),
            "WHATSAPP_APP_SECRET" => Some(APP_SECRET.to_string()),
            _ => None,
        })
        .unwrap(),
        Some(Arc::new(numbers)),
        Some("arn:aws:sns:us-east-1:123456789012:no-such-topic".into()),
        None,
    );
    let body = message(WABA_MX, MX, "wamid.LOST1").to_string();
    let (status, _) = post_webhook(&broken, body.as_bytes()).await;
    assert!(
        status >= 500,
        "a failed publish must not answer 200 (got {status})"
    );
    // The working stack takes the same delivery afterwards: nothing was marked seen.
    s.post(&message(WABA_MX, MX, "wamid.LOST1")).await;
    assert_eq!(s.keys(&s.bot.url).await.len(), 1);
}

/// A bot answering `answer`, keeping each accepted POST's body and signature.
pub(crate) async fn bot() -> (String, Arc<AtomicU16>, Arc<Mutex<Vec<(String, String)>>>) {
    let answer = Arc::new(AtomicU16::new(200));
    let got: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let (a, g) = (answer.clone(), got.clone());
    let app = axum::Router::new().route(
        "/bot",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (a, g) = (a.clone(), g.clone());
            async move {
                let status = a.load(Ordering::SeqCst);
                if status == 200 {
                    let sig = headers
                        .get("x-hub-signature-256")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    g.lock().unwrap().push((body, sig.to_string()));
                }
                let body = if status == 400 { "bad payload" } else { "" };
                (StatusCode::from_u16(status).unwrap(), body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/bot", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, answer, got)
}

#[tokio::test]
async fn the_relay_lambda_delivers_signed_retries_a_bot_that_is_down_and_dead_letters_refusals() {
    let s = stack(require_aws!()).await;
    let python = pywa_python();
    if python.is_none() && wabridge_tests::services_required() {
        panic!("pywa is not in the venv: scripts/requirements.txt installs it");
    }
    let (url, answer, got) = bot().await;
    let app = s.relay_app(&url);

    // Up: delivered once, in Meta's envelope, signed so that pywa accepts it.
    s.post(&message(WABA_MX, MX, "wamid.UP1")).await;
    let event = s.batch(&s.bot.url).await;
    assert_eq!(event.records.len(), 1);
    let answer_ = relay::handle(&app, event, None).await;
    assert!(answer_.batch_item_failures.is_empty());
    let delivered = got.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1);
    let envelope: Value = serde_json::from_str(&delivered[0].0).unwrap();
    assert_eq!(
        envelope["entry"][0]["changes"][0]["value"]["messages"][0]["id"],
        "wamid.UP1"
    );
    if let Some(python) = &python {
        assert_eq!(pywa_verdicts(python, BOT_SECRET, &delivered), ["valid"]);
        assert_eq!(pywa_verdicts(python, APP_SECRET, &delivered), ["invalid"]);
    }

    // Down (503): the delivery stays on the bot's queue (a partial batch failure, retried
    // later); the CRM's queue has the event all the same.
    answer.store(503, Ordering::SeqCst);
    s.post(&message(WABA_MX, MX, "wamid.DOWN1")).await;
    let event = s.batch(&s.bot.url).await;
    let id = event.records[0].message_id.clone().unwrap();
    let receipt = event.records[0].receipt_handle.clone().unwrap();
    let answer_ = relay::handle(&app, event, None).await;
    let failed: Vec<_> = answer_
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, [id]);
    assert_eq!(got.lock().unwrap().len(), 1);
    let crm: Vec<String> = s
        .keys(&s.events.url)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(crm.iter().any(|k| k.contains("wamid.DOWN1")), "{crm:?}");
    // The bot is back; the retry's delay is over (made visible now rather than waited for).
    answer.store(200, Ordering::SeqCst);
    s.visible_now(&s.bot.url, receipt).await;
    let event = s.batch(&s.bot.url).await;
    assert_eq!(event.records.len(), 1);
    assert!(relay::handle(&app, event, None)
        .await
        .batch_item_failures
        .is_empty());
    assert_eq!(got.lock().unwrap().len(), 2);

    // Refused (400): dead-lettered at once into the bot's DLQ, its reason naming the bot.
    answer.store(400, Ordering::SeqCst);
    s.post(&message(WABA_MX, MX, "wamid.BAD1")).await;
    let event = s.batch(&s.bot.url).await;
    assert!(relay::handle(&app, event, None)
        .await
        .batch_item_failures
        .is_empty());
    let queue = SqsQueue::new(s.aws.sqs.clone(), &s.bot.url, &s.bot.dlq_url);
    let letters = queue.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let reason = letters[0].reason.as_deref().unwrap_or_default();
    assert!(
        reason.starts_with("destination bot: refused the delivery: HTTP 400"),
        "{reason}"
    );
    assert!(letters[0].body.contains("wamid.BAD1"));

    // Down past the retry horizon (the event was first enqueued 8 days ago): dead-lettered,
    // the reason naming the horizon and the bot's last error.
    answer.store(503, Ordering::SeqCst);
    s.post(&message(WABA_MX, MX, "wamid.OLD1")).await;
    let mut event = s.batch(&s.bot.url).await;
    let long_ago = wabridge_core::clock::now_ms() - 8 * 86_400_000;
    event.records[0]
        .attributes
        .insert("SentTimestamp".into(), long_ago.to_string());
    assert!(relay::handle(&app, event, None)
        .await
        .batch_item_failures
        .is_empty());
    let letters = queue.dead_letters(10).await.unwrap();
    let old = letters
        .iter()
        .find(|l| l.body.contains("wamid.OLD1"))
        .expect("dead-lettered");
    let reason = old.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("retry horizon of") && reason.contains("destination bot: unavailable"),
        "{reason}"
    );
    assert_eq!(queue_depth(&s.aws.sqs, &s.bot.url).await.0, 0);
}
