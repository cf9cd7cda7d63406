//! First and last touch, conversation credit, leads: the rules on scenarios.

use super::*;
use crate::attribution::utm::Utm;
use serde_json::{json, Value};

const DAY: i64 = 86_400_000;

fn touch(source: &str, at: i64) -> Touch {
    Touch {
        origin: TouchOrigin::Link,
        utm: Utm {
            utm_source: Some(source.into()),
            utm_medium: Some("email".into()),
            utm_campaign: Some(format!("{source}_c")),
            ..Default::default()
        },
        ctwa_clid: None,
        ref_code: Some("AB23CD".into()),
        gclid: None,
        fbclid: None,
        landing_page: None,
        referral: None,
        at,
    }
}

fn msg(event_id: &'static str, at: i64) -> Inbound<'static> {
    Inbound {
        event_id,
        contact_id: "c1",
        at,
        text: None,
        referral: None,
    }
}

fn kinds(e: &LogEntry) -> Vec<String> {
    e.records
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["kind"].as_str().unwrap(),
                r["touch"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn first_touch_sets_first_and_last_and_a_lead() {
    let c = AttributionConfig::default();
    let (s, e) = decide(&c, None, &msg("e1", DAY), Some(touch("news", DAY)), None);
    assert_eq!(
        kinds(&e),
        ["attribution:first", "attribution:last", "lead:"]
    );
    assert!(e.conversation_start && e.lead);
    assert_eq!(s.version, 1);
    assert_eq!(e.credit.utm_source.as_deref(), Some("news"));
    assert_eq!(e.records[2]["utm_campaign"], "news_c");
}

#[test]
fn a_second_touch_in_the_window_moves_only_last() {
    let c = AttributionConfig::default();
    let (s1, _) = decide(&c, None, &msg("e1", DAY), Some(touch("news", DAY)), None);
    let (s2, e2) = decide(
        &c,
        Some(&s1),
        &msg("e2", 5 * DAY),
        Some(touch("facebook", 5 * DAY)),
        None,
    );
    assert_eq!(
        kinds(&e2),
        ["attribution:last"],
        "no new first touch, no second lead in the window"
    );
    assert_eq!(
        s2.first.as_ref().unwrap().utm.utm_source.as_deref(),
        Some("news")
    );
    assert_eq!(
        s2.last.as_ref().unwrap().utm.utm_source.as_deref(),
        Some("facebook")
    );
    assert_eq!(e2.credit.utm_source.as_deref(), Some("facebook"));
}

#[test]
fn after_the_window_a_touch_is_a_new_first_touch_and_a_new_lead() {
    let c = AttributionConfig {
        window_days: 30,
        ..Default::default()
    };
    let (s1, _) = decide(&c, None, &msg("e1", DAY), Some(touch("news", DAY)), None);
    let (s2, e2) = decide(
        &c,
        Some(&s1),
        &msg("e2", 40 * DAY),
        Some(touch("google", 40 * DAY)),
        None,
    );
    assert_eq!(
        kinds(&e2),
        ["attribution:first", "attribution:last", "lead:"]
    );
    assert_eq!(s2.first.unwrap().utm.utm_source.as_deref(), Some("google"));
}

#[test]
fn an_untouched_conversation_is_credited_to_the_last_touch_only_within_the_window() {
    let c = AttributionConfig {
        window_days: 30,
        ..Default::default()
    };
    let (s1, _) = decide(&c, None, &msg("e1", DAY), Some(touch("news", DAY)), None);
    let (s2, e2) = decide(&c, Some(&s1), &msg("e2", 3 * DAY), None, None);
    assert!(e2.conversation_start);
    assert_eq!(e2.credit.utm_source.as_deref(), Some("news"));
    assert!(e2.records.is_empty());
    let (_, e3) = decide(&c, Some(&s2), &msg("e3", 45 * DAY), None, None);
    assert!(e3.conversation_start);
    assert_eq!(e3.credit, Credit::default());
}

#[test]
fn messages_within_the_gap_continue_the_conversation() {
    let c = AttributionConfig::default();
    let (s1, e1) = decide(&c, None, &msg("e1", DAY), None, None);
    assert!(e1.conversation_start);
    let (_, e2) = decide(&c, Some(&s1), &msg("e2", DAY + 3_600_000), None, None);
    assert!(!e2.conversation_start);
    assert!(!e2.lead);
}

#[test]
fn a_late_older_touch_never_replaces_a_newer_last_touch() {
    let c = AttributionConfig::default();
    let (s1, _) = decide(
        &c,
        None,
        &msg("e2", 5 * DAY),
        Some(touch("facebook", 5 * DAY)),
        None,
    );
    let (s2, e) = decide(
        &c,
        Some(&s1),
        &msg("e1", 4 * DAY),
        Some(touch("news", 4 * DAY)),
        None,
    );
    assert!(!kinds(&e).contains(&"attribution:last".to_string()));
    assert_eq!(s2.last.unwrap().utm.utm_source.as_deref(), Some("facebook"));
}

#[test]
fn lead_policies() {
    let first = AttributionConfig {
        lead_policy: LeadPolicy::FirstConversation,
        ..Default::default()
    };
    let attributed = AttributionConfig {
        lead_policy: LeadPolicy::Attributed,
        ..Default::default()
    };
    let never = AttributionConfig {
        lead_policy: LeadPolicy::Never,
        ..Default::default()
    };

    // Unattributed first conversation: a lead only under first_conversation.
    let (_, e) = decide(&first, None, &msg("e1", DAY), None, None);
    assert!(e.lead);
    assert_eq!(e.records[0]["reason"], "first_conversation");
    assert_eq!(e.records[0]["utm_source"], Value::Null);
    let (s, e) = decide(&attributed, None, &msg("e1", DAY), None, None);
    assert!(!e.lead);
    // ... then an attributed one creates it.
    let (_, e) = decide(
        &attributed,
        Some(&s),
        &msg("e2", 2 * DAY),
        Some(touch("news", 2 * DAY)),
        None,
    );
    assert!(e.lead);
    assert_eq!(e.records.last().unwrap()["reason"], "attributed");
    assert_eq!(e.records.last().unwrap()["ref_code"], "AB23CD");
    let (_, e) = decide(
        &never,
        None,
        &msg("e1", DAY),
        Some(touch("news", DAY)),
        None,
    );
    assert!(!e.lead);
    assert_eq!(kinds(&e), ["attribution:first", "attribution:last"]);
}

#[test]
fn codes_are_logged_with_their_status() {
    let c = AttributionConfig::default();
    let (_, e) = decide(
        &c,
        None,
        &msg("e1", DAY),
        None,
        Some(("ZZZZZZ", CodeStatus::Unknown)),
    );
    assert_eq!(e.ref_code.as_deref(), Some("ZZZZZZ"));
    assert_eq!(e.code_status, Some(CodeStatus::Unknown));
}

#[test]
fn reads_text_caption_timestamp_and_referral_from_messages() {
    let parse = |v: Value| serde_json::from_value::<Message>(v).unwrap();
    let m = parse(
        json!({"from": "1", "id": "wamid.x", "timestamp": "1750275992", "type": "text",
        "text": {"body": "hola [ref:AB23CD]"}, "referral": {"source_type": "ad"}}),
    );
    let i = Inbound::from_message("k", "c", &m, 7);
    assert_eq!(i.at, 1_750_275_992_000);
    assert_eq!(i.text, Some("hola [ref:AB23CD]"));
    assert!(i.referral.is_some());
    let m = parse(json!({"type": "image", "image": {"id": "1", "caption": "[ref:AB23CD]"}}));
    let i = Inbound::from_message("k", "c", &m, 7);
    assert_eq!(i.text, Some("[ref:AB23CD]"));
    assert_eq!(i.at, 7);
    assert!(i.referral.is_none());
}
