//! First and last touch per contact, conversation credit and lead creation: what one inbound
//! message changes.
//!
//! Rules (all times are the message's own timestamp, so redeliveries and late deliveries give
//! the same answer):
//! - a message carries a touch when it has Meta's `referral` (an ad or post click) or a known,
//!   unexpired reference code (a tracked link or QR code); a referral wins over a code;
//! - **first touch** is set by the first touch of a contact, and replaced by the next touch once
//!   it is older than the attribution window (the contact is acquired again);
//! - **last touch** is the latest touch (a late-delivered older touch never replaces a newer one);
//! - a message **starts a conversation** when the contact was silent for
//!   `conversation_gap_hours`, or when it carries a touch (a new click is a new conversation);
//! - a conversation is **credited** to its own touch, else to the last touch when within the
//!   window (last non-direct touch), else to nobody;
//! - a **lead** is created at a conversation start per [`LeadPolicy`], at most one per contact
//!   per window.
//!
//! Everything one message changes is committed at once with the event id, so processing the same
//! event again returns the same records and changes nothing.

use super::code::{self, Found};
use super::records::{AttributionOutput, AttributionRecord, LeadRecord, TouchKind};
use super::referral::Referral;
use super::store::{AttributionStore, CodeStatus, Commit, ContactState, Credit, LogEntry};
use super::utm::{Touch, TouchOrigin};
use super::{AttributionConfig, LeadPolicy};
use crate::error::StoreError;
use crate::webhook::model::{Message, MessageContent, MessageType};

/// An inbound message, as attribution needs it.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The event key (stable across redeliveries).
    pub event_id: &'a str,
    /// The resolved contact.
    pub contact_id: &'a str,
    /// The message's timestamp (Unix ms).
    pub at: i64,
    /// Text body or caption, where a reference code may be.
    pub text: Option<&'a str>,
    /// Meta's `referral` object.
    pub referral: Option<&'a Referral>,
}

impl<'a> Inbound<'a> {
    /// Reads text (or caption), timestamp and referral from a typed `messages[]` item.
    /// `fallback_at` is used when the message has no timestamp.
    pub fn from_message(
        event_id: &'a str,
        contact_id: &'a str,
        message: &'a Message,
        fallback_at: i64,
    ) -> Inbound<'a> {
        let text = match message.content() {
            MessageContent::Text(t) => Some(t.body.as_str()),
            MessageContent::Image(m)
            | MessageContent::Video(m)
            | MessageContent::Document(m)
            | MessageContent::Sticker(m)
            | MessageContent::Audio(m) => m.caption.as_deref(),
            _ => None,
        };
        Inbound {
            event_id,
            contact_id,
            at: message
                .timestamp
                .map_or(fallback_at, |secs| secs.saturating_mul(1000)),
            text,
            referral: message.referral.as_ref(),
        }
    }
}

/// What one inbound message gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Attributed {
    /// Records for the CRM (attribution first/last, lead), in this order.
    pub records: Vec<AttributionOutput>,
    /// The reference code found in the text, if any (record it on the activity).
    pub ref_code: Option<String>,
    pub code_status: Option<CodeStatus>,
    /// The customer's text without the code token (`None` when the message had no text or
    /// nothing but the token); equal to the text when there was no token.
    pub customer_text: Option<String>,
    pub conversation_start: bool,
    /// Who the conversation is credited to.
    pub credit: Credit,
}

/// The pure part: the contact's new state and the log entry of `msg`.
pub fn decide(
    config: &AttributionConfig,
    state: Option<&ContactState>,
    msg: &Inbound<'_>,
    touch: Option<Touch>,
    code: Option<(&str, CodeStatus)>,
) -> (ContactState, LogEntry) {
    let mut next = state.cloned().unwrap_or_else(|| ContactState {
        contact_id: msg.contact_id.to_string(),
        ..Default::default()
    });
    next.version += 1;
    let window = config.window_ms();
    let mut outputs = Vec::new();

    let conversation_start = touch.is_some()
        || next
            .last_inbound_at
            .is_none_or(|last| msg.at - last >= config.conversation_gap_ms());

    if let Some(t) = &touch {
        let first_lapsed = next.first.as_ref().is_none_or(|f| t.at - f.at > window);
        if first_lapsed {
            next.first = Some(t.clone());
            outputs.push(AttributionOutput::Attribution(AttributionRecord::new(
                msg.event_id,
                msg.contact_id,
                TouchKind::First,
                t,
            )));
        }
        if next.last.as_ref().is_none_or(|l| t.at >= l.at) {
            next.last = Some(t.clone());
            outputs.push(AttributionOutput::Attribution(AttributionRecord::new(
                msg.event_id,
                msg.contact_id,
                TouchKind::Last,
                t,
            )));
        }
    }

    let credited: Option<&Touch> = match &touch {
        Some(t) => Some(t),
        None => next
            .last
            .as_ref()
            .filter(|l| msg.at >= l.at && msg.at - l.at <= window),
    };
    let credit = Credit::of(credited);

    let mut lead = false;
    if conversation_start {
        let lead_due = next.last_lead_at.is_none_or(|at| msg.at - at > window);
        let reason = match config.lead_policy {
            LeadPolicy::FirstConversation => Some("first_conversation"),
            LeadPolicy::Attributed if credited.is_some() => Some("attributed"),
            _ => None,
        };
        if let (true, Some(reason)) = (lead_due, reason) {
            lead = true;
            next.last_lead_at = Some(msg.at);
            let c = credited;
            outputs.push(AttributionOutput::Lead(LeadRecord {
                v: Default::default(),
                event_id: msg.event_id.to_string(),
                contact_id: msg.contact_id.to_string(),
                reason: reason.to_string(),
                utm_source: c.and_then(|t| t.utm.utm_source.clone()),
                utm_medium: c.and_then(|t| t.utm.utm_medium.clone()),
                utm_campaign: c.and_then(|t| t.utm.utm_campaign.clone()),
                utm_content: c.and_then(|t| t.utm.utm_content.clone()),
                utm_term: c.and_then(|t| t.utm.utm_term.clone()),
                ctwa_clid: c.and_then(|t| t.ctwa_clid.clone()),
                ref_code: c.and_then(|t| t.ref_code.clone()),
                touch_in_conversation: touch.is_some(),
                created_at: msg.at,
            }));
        }
    }

    next.last_inbound_at = Some(next.last_inbound_at.map_or(msg.at, |l| l.max(msg.at)));
    let entry = LogEntry {
        event_id: msg.event_id.to_string(),
        contact_id: msg.contact_id.to_string(),
        at: msg.at,
        conversation_start,
        credit,
        lead,
        ref_code: code.map(|(c, _)| c.to_string()),
        code_status: code.map(|(_, s)| s),
        records: outputs.iter().map(AttributionOutput::to_value).collect(),
    };
    (next, entry)
}

fn attributed_from(
    entry: &LogEntry,
    customer_text: Option<String>,
) -> Result<Attributed, StoreError> {
    let records = entry
        .records
        .iter()
        .map(|v| serde_json::from_value(v.clone()).map_err(StoreError::corrupt))
        .collect::<Result<Vec<AttributionOutput>, _>>()?;
    Ok(Attributed {
        records,
        ref_code: entry.ref_code.clone(),
        code_status: entry.code_status,
        customer_text,
        conversation_start: entry.conversation_start,
        credit: entry.credit.clone(),
    })
}

/// How many times a commit that lost to a concurrent one for the same contact is recomputed
/// (with a short jittered pause, so a burst of one contact's messages serialises quickly).
const COMMIT_ATTEMPTS: u32 = 64;

/// Attribution of one inbound message: resolves a reference code, applies the rules above,
/// commits, and returns the records for the CRM. Idempotent per `msg.event_id`. Never fails on
/// what the message contains (unknown and expired codes are reported, malformed referrals are
/// read as far as they go); fails only when the store does (retry the event then).
pub async fn on_inbound_message(
    store: &dyn AttributionStore,
    config: &AttributionConfig,
    msg: &Inbound<'_>,
) -> Result<Attributed, StoreError> {
    let found: Option<Found> = msg.text.and_then(code::find);
    let customer_text = match &found {
        Some(f) => f.text.clone(),
        None => msg.text.map(str::to_string),
    };
    if let Some(done) = store.processed(msg.event_id).await? {
        return attributed_from(&done, customer_text);
    }

    let mut link_touch = None;
    let mut code_seen = None;
    if let Some(f) = &found {
        let link = if code::is_well_formed(&f.code) {
            store.link(&f.code).await?
        } else {
            None
        };
        let status = match &link {
            None => CodeStatus::Unknown,
            Some(l) if msg.at >= l.expires_at => CodeStatus::Expired,
            Some(_) => CodeStatus::Known,
        };
        if status != CodeStatus::Known {
            tracing::info!(code = %f.code, ?status, "reference code not attributable");
        }
        if let (CodeStatus::Known, Some(l)) = (status, link) {
            link_touch = Some(Touch {
                origin: TouchOrigin::Link,
                utm: l.utm,
                ctwa_clid: None,
                ref_code: Some(l.code),
                gclid: l.gclid,
                fbclid: l.fbclid,
                landing_page: l.landing_page,
                referral: None,
                at: msg.at,
            });
        }
        code_seen = Some((f.code.clone(), status));
    }
    let touch = match msg.referral.map(|r| config.referral.touch(r, msg.at)) {
        Some(mut ad) => {
            // Both an ad click and a code: the ad is the touch, the code is kept on it.
            ad.ref_code = link_touch.and_then(|l| l.ref_code);
            Some(ad)
        }
        None => link_touch,
    };

    for attempt in 0..COMMIT_ATTEMPTS {
        if attempt > 0 {
            let cap = u64::from(attempt.min(20));
            tokio::time::sleep(std::time::Duration::from_millis(rand::random_range(
                0..=cap,
            )))
            .await;
        }
        let state = store.contact(msg.contact_id).await?;
        let (next, entry) = decide(
            config,
            state.as_ref(),
            msg,
            touch.clone(),
            code_seen.as_ref().map(|(c, s)| (c.as_str(), *s)),
        );
        match store.commit(&next, &entry).await? {
            Commit::Done => return attributed_from(&entry, customer_text),
            Commit::AlreadyProcessed(done) => return attributed_from(&done, customer_text),
            Commit::VersionConflict => continue,
        }
    }
    Err(StoreError::Unavailable(format!(
        "contact state kept moving for {COMMIT_ATTEMPTS} attempts"
    )))
}

/// [`on_inbound_message`] for a typed message of a queue [`crate::event::Event`]: `None` for a
/// `system` message (a number change is not a touch). This is the one call crm-sync needs after
/// identity resolution.
pub async fn on_event(
    store: &dyn AttributionStore,
    config: &AttributionConfig,
    event: &crate::event::Event,
    message: &Message,
    contact_id: &str,
) -> Result<Option<Attributed>, StoreError> {
    if message.kind() == MessageType::System {
        return Ok(None);
    }
    let msg = Inbound::from_message(&event.key, contact_id, message, event.received_at);
    on_inbound_message(store, config, &msg).await.map(Some)
}

#[cfg(test)]
mod tests {
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
}
