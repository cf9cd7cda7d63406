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
                conversation_id: None,
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
mod tests;
