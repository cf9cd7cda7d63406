//! A template send without `language`: the recipient's country picks it, only among the
//! languages the registry knows as APPROVED; an explicit `language` always wins; none
//! approved → 422 `template_language_unavailable` naming the approved ones. The choice is on
//! the send (`GET /sends/{id}`) and on the CRM activity of a send that ends without a status.

use serde_json::json;
use wabridge_core::sends::events::finished_item;
use wabridge_core::sends::language::LanguageMap;
use wabridge_core::sends::service::send_json;
use wabridge_core::sends::template_sync::RemoteTemplate;
use wabridge_core::templates::TemplateStatus;

use super::*;

async fn approve(s: &Setup, name: &str, languages: &[&str]) {
    for l in languages {
        s.sends
            .policy
            .templates
            .implicit()
            .apply_synced(
                &RemoteTemplate {
                    status: Some(TemplateStatus::new("APPROVED")),
                    category: Some("UTILITY".into()),
                    body_parameters: 1,
                    ..RemoteTemplate::named(name, l)
                },
                1,
            )
            .await
            .unwrap();
    }
}

async fn language_of(
    s: &Setup,
    body: serde_json::Value,
) -> Result<String, (u16, &'static str, String)> {
    match s.sends.submit(body.to_string().as_bytes(), None).await {
        Ok(record) => Ok(send_json(&record)["language"].as_str().unwrap().to_string()),
        Err(e) => {
            let message = e.to_string();
            let (status, code) = refusal_code(e);
            Err((status, code, message))
        }
    }
}

#[tokio::test]
async fn each_country_gets_its_own_approved_language() {
    let s = setup().await;
    approve(&s, "pedido_enviado", &["es_MX", "pt_BR", "es_AR"]).await;
    // A PENDING language is not sent.
    s.sends
        .policy
        .templates
        .implicit()
        .apply_synced(
            &RemoteTemplate {
                status: Some(TemplateStatus::new("PENDING")),
                category: Some("UTILITY".into()),
                body_parameters: 1,
                ..RemoteTemplate::named("pedido_enviado", "es_CO")
            },
            1,
        )
        .await
        .unwrap();
    let send = |to: &str| json!({"to": to, "template": "pedido_enviado", "parameters": ["Ana"]});
    assert_eq!(
        language_of(&s, send("+52 1 55 1234 5678")).await.unwrap(),
        "es_MX"
    );
    assert_eq!(
        language_of(&s, send("+55 11 91234-5678")).await.unwrap(),
        "pt_BR"
    );
    assert_eq!(
        language_of(&s, send("+54 9 11 2345-6789")).await.unwrap(),
        "es_AR"
    );
    // Colombia's es_CO is pending and en_US unknown: refused, naming what is approved.
    let (status, code, message) = language_of(&s, send("+57 310 123 4567")).await.unwrap_err();
    assert_eq!((status, code), (422, "template_language_unavailable"));
    assert!(
        message.contains("(es_CO, en_US)") && message.contains("approved: es_AR, es_MX, pt_BR"),
        "{message}"
    );
    // An explicit language always wins, even one the map would not pick.
    let explicit = json!({"to": "+55 11 91234-5678", "template": "pedido_enviado", "language": "es_MX", "parameters": ["Ana"]});
    assert_eq!(language_of(&s, explicit).await.unwrap(), "es_MX");
}

#[tokio::test]
async fn a_template_approved_only_in_es_mx_is_refused_for_brazil() {
    let s = setup().await;
    approve(&s, "aviso_pago", &["es_MX"]).await;
    let (status, code, message) = language_of(
        &s,
        json!({"to": "+5511912345678", "template": "aviso_pago", "parameters": ["Ana"]}),
    )
    .await
    .unwrap_err();
    assert_eq!((status, code), (422, "template_language_unavailable"));
    assert!(message.ends_with("approved: es_MX."), "{message}");
    // A template the registry does not know at all: nothing is approved yet.
    let (_, code, message) = language_of(&s, json!({"to": "+5511912345678", "template": "nuevo"}))
        .await
        .unwrap_err();
    assert_eq!(code, "template_language_unavailable");
    assert!(message.contains("none is known"), "{message}");
}

#[tokio::test]
async fn a_configured_map_with_fallbacks_and_the_choice_reaches_the_crm() {
    let mut s = setup().await;
    s.sends = s
        .sends
        .clone()
        .with_languages(LanguageMap::parse("AR=es_AR|es_MX,*=es_MX").unwrap());
    approve(&s, "pedido_enviado", &["es_MX"]).await;
    let record = s
        .sends
        .submit(
            br#"{"to": "+54 9 11 2345 6789", "template": "pedido_enviado", "parameters": ["Ana"]}"#,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        record.request["language"], "es_MX",
        "AR falls back to es_MX"
    );
    // A BSUID has no country: the `*` languages.
    let record = s
        .sends
        .submit(br#"{"recipient": "AR.13491208655302741918", "template": "pedido_enviado", "parameters": ["Ana"]}"#, None)
        .await
        .unwrap();
    assert_eq!(record.request["language"], "es_MX");
    // The send's report (what the CRM's activity is made of) names the language.
    let item = finished_item(&record);
    assert_eq!(item.language.as_deref(), Some("es_MX"));
    assert_eq!(item.template.as_deref(), Some("pedido_enviado"));
}
