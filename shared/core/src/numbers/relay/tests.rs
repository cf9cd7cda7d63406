use std::sync::Mutex;

use super::*;
use crate::signature::{verify, WebhookSignature};
use crate::webhook::split::split;

fn samples() -> Vec<(String, Vec<u8>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/webhooks");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    assert!(out.len() > 40, "the sample payloads are there");
    out
}

/// Every event of every sample payload, relayed, is a webhook Meta could have sent: ingest's
/// own splitter finds that same event in it (key, kind, number, contact and item bytes).
#[test]
fn a_relayed_event_splits_back_into_itself() {
    for (name, body) in samples() {
        for event in split(&body, 1).unwrap() {
            let relayed = relay_body(&event);
            let again =
                split(relayed.as_bytes(), 1).unwrap_or_else(|e| panic!("{name}: {e}\n{relayed}"));
            let same = again
                .iter()
                .find(|e| e.key == event.key)
                .unwrap_or_else(|| panic!("{name}: {} not in its relay\n{relayed}", event.key));
            assert_eq!(same.kind, event.kind, "{name}: {relayed}");
            assert_eq!(same.item.get(), event.item.get(), "{name}");
            assert_eq!(same.field, event.field, "{name}");
            assert_eq!(same.waba_id, event.waba_id, "{name}");
            assert_eq!(same.phone_number_id, event.phone_number_id, "{name}");
            assert_eq!(
                same.contact.as_ref().map(|c| c.get().to_string()),
                event.contact.as_ref().map(|c| c.get().to_string()),
                "{name}"
            );
        }
    }
}

/// A payload of one message is relayed as Meta sent it (same JSON).
#[test]
fn a_one_message_payload_is_relayed_as_meta_sent_it() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/webhooks");
    let body = std::fs::read(format!("{dir}/text_es_mx.json")).unwrap();
    let events = split(&body, 1).unwrap();
    assert_eq!(events.len(), 1);
    let original: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let relayed: serde_json::Value = serde_json::from_str(&relay_body(&events[0])).unwrap();
    assert_eq!(relayed, original);
}

#[derive(Default)]
struct Recorder {
    posted: Mutex<Vec<(String, String)>>,
    answer: Mutex<Option<CrmError>>,
}

#[async_trait]
impl RelayPost for Recorder {
    async fn post(&self, body: String, signature: String) -> Result<(), CrmError> {
        self.posted.lock().unwrap().push((body, signature));
        match self.answer.lock().unwrap().clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn delivery(body: String) -> Delivery {
    Delivery {
        message_id: "1".into(),
        receipt: "1.a".into(),
        body,
        receive_count: 1,
        enqueued_at: Some(crate::clock::now_ms()),
    }
}

#[tokio::test]
async fn deliveries_are_signed_with_the_destination_secret_and_failures_name_it() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/webhooks");
    let body = std::fs::read(format!("{dir}/text_es_mx.json")).unwrap();
    let event = split(&body, 1).unwrap().remove(0);
    let recorder = Arc::new(Recorder::default());
    assert!(
        RelayHandler::new("bot", "", recorder.clone()).is_none(),
        "never unsigned"
    );
    let handler = RelayHandler::new("bot", "bot-secret", recorder.clone()).unwrap();

    assert_eq!(
        handler.handle(&delivery(event.to_json())).await,
        Outcome::Done
    );
    let (posted, signature) = recorder.posted.lock().unwrap()[0].clone();
    let signature = WebhookSignature::parse(&signature).unwrap();
    assert!(verify(
        &AppSecret::new("bot-secret").unwrap(),
        posted.as_bytes(),
        &signature
    ));
    assert!(!verify(
        &AppSecret::new("app-secret").unwrap(),
        posted.as_bytes(),
        &signature
    ));

    *recorder.answer.lock().unwrap() = Some(CrmError::Transient("HTTP 503: down".into()));
    match handler.handle(&delivery(event.to_json())).await {
        Outcome::Retry { reason, .. } => {
            assert_eq!(reason, "destination bot: unavailable: HTTP 503: down")
        }
        other => panic!("{other:?}"),
    }
    *recorder.answer.lock().unwrap() = Some(CrmError::Rejected("HTTP 400: no".into()));
    assert_eq!(
        handler.handle(&delivery(event.to_json())).await,
        Outcome::DeadLetter("destination bot: refused the delivery: HTTP 400: no".into())
    );
    assert_eq!(
        handler.handle(&delivery("{".into())).await,
        Outcome::DeadLetter(
            "destination bot: not an event: EOF while parsing an object at line 1 column 1".into()
        )
    );
}
