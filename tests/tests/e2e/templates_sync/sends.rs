//! `POST /sends` for real (through `Sends::submit`), checked against what the sync learned.

use serde_json::{json, Value};
use wabridge_core::http::ApiError;
use wabridge_core::sends::service::Sends;
use wabridge_core::sends::store::SendState;
use wabridge_sqlite::{Db, SqliteEngine};

use super::*;

fn sends(db: &Db) -> Sends {
    SqliteEngine::new(db.clone()).sends(wabridge_tests::admin_keys("k"))
}

async fn submit(sends: &Sends, body: Value) -> Result<SendState, ApiError> {
    sends
        .submit(body.to_string().as_bytes(), None)
        .await
        .map(|r| r.state)
        // The answer the API gives.
        .map_err(ApiError::from)
}

fn refusal_code(r: Result<SendState, ApiError>) -> String {
    match r {
        Err(e) => {
            assert_eq!(e.status(), 422, "{e:?}");
            e.code().to_string()
        }
        Ok(state) => panic!("expected a refusal, got {state:?}"),
    }
}

#[tokio::test]
async fn sends_are_checked_against_what_the_sync_learned() {
    let graph = GraphServer::start(two_pages()).await;
    let (_dir, db) = temp_db();
    let sends = sends(&db);
    let order = |params: &[&str]| {
        json!({"to": "+52 1 55 1234 5678", "template": "order_confirmation",
               "language": "es_MX", "parameters": params})
    };

    // Before the sync the registry knows nothing: the count cannot be checked.
    assert_eq!(
        submit(&sends, order(&["Ana", "1042"])).await.unwrap(),
        SendState::Queued
    );

    wabridge_graph::template_sync(graph.config())
        .sync(&registry(&db))
        .await
        .unwrap();

    // Wrong count: refused with the stable code and a sentence naming both numbers.
    let wrong = submit(&sends, order(&["Ana", "1042"])).await;
    let message = format!("{:?}", wrong.as_ref().unwrap_err());
    assert_eq!(refusal_code(wrong), "template_parameter_count");
    assert!(
        message.contains("takes 3") && message.contains("gives 2"),
        "{message}"
    );
    assert_eq!(
        refusal_code(submit(&sends, order(&["Ana", "1042", "$1", "extra"])).await),
        "template_parameter_count"
    );
    // The right count, as `parameters` or as Meta's body component, is accepted.
    assert_eq!(
        submit(&sends, order(&["Ana", "1042", "$1,250.00 MXN"]))
            .await
            .unwrap(),
        SendState::Queued
    );
    let as_components = json!({"to": "+5215512345678", "template": "order_confirmation",
        "language": "es_MX", "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "1042"}]},
            {"type": "body", "parameters": [
                {"type": "text", "text": "Ana"}, {"type": "text", "text": "1042"},
                {"type": "text", "text": "$1,250.00 MXN"}]}]});
    assert_eq!(
        submit(&sends, as_components).await.unwrap(),
        SendState::Queued
    );

    // PAUSED at Meta: refused whatever the parameters.
    let cart = json!({"to": "+5215512345678", "template": "cart_reminder",
        "language": "es_MX", "parameters": ["Ana"]});
    assert_eq!(
        refusal_code(submit(&sends, cart).await),
        "template_not_sendable"
    );

    // Meta says MARKETING: the caller's UTILITY does not get it past the opt-in guard.
    let promo = json!({"to": "+55 11 91234 5678", "template": "promo_named",
        "language": "pt_BR", "category": "UTILITY", "parameters": ["Ana", "VERAO25", "31/12"]});
    assert_eq!(
        refusal_code(submit(&sends, promo.clone()).await),
        "marketing_without_opt_in"
    );
    sends
        .record_consent(
            json!({"to": "+55 11 91234 5678", "action": "opt_in", "category": "marketing",
                   "source": "web_form", "evidence": "https://loja.example.br/optin/77"})
            .to_string()
            .as_bytes(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        submit(&sends, promo).await.unwrap(),
        SendState::Queued,
        "opted in, right count: accepted"
    );

    // A template Meta did not list stays unchecked.
    let unknown = json!({"to": "+5215512345678", "template": "not_at_meta_yet",
        "language": "es_MX", "parameters": ["a"]});
    assert_eq!(submit(&sends, unknown).await.unwrap(), SendState::Queued);
}
