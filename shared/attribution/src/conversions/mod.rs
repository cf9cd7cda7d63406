//! Conversions back to Meta: when a CRM workflow reports a won deal (`POST /conversions`), send
//! a conversion event for the contact's click-to-WhatsApp click id (`ctwa_clid`) to Meta's
//! Conversions API for business messaging.
//!
//! Request to Meta (documented shape):
//! `POST {base}/{version}/{dataset_id}/events`, `Authorization: Bearer <token>`, body
//! `{"data":[{"event_name":"Purchase","event_time":<unix s>,"event_id":"<id>",
//! "action_source":"business_messaging","messaging_channel":"whatsapp",
//! "user_data":{"whatsapp_business_account_id":"<waba>","ctwa_clid":"<clid>"},
//! "custom_data":{"currency":"MXN","value":1200.0}}]}`.
//!
//! Nothing twice: the caller's `event_id` is claimed in the conversions ledger before anything is
//! sent; a repeated request with the same id answers what the first did (and a different body
//! under the same id is a conflict). `event_id` is also Meta's dedupe key, so a retry after a
//! crash between Meta's 200 and our bookkeeping is deduplicated by Meta.
//! Retries: 429, 5xx and transport errors are retried with exponential backoff and full jitter,
//! honouring `Retry-After`; other 4xx are Meta refusing the event (terminal, recorded).

mod meta;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use wabridge_core::attribution::store::{AttributionStore, Claim, ConversionRow, Credit};
use wabridge_core::attribution::AttributionConfig;
use wabridge_core::config;
use wabridge_core::error::StoreError;

pub use meta::{MetaConversions, RetryPolicy, SendOutcome};

/// Event names Meta accepts with `action_source = business_messaging`.
pub const EVENT_NAMES: &[&str] = &[
    "Purchase",
    "LeadSubmitted",
    "AddToCart",
    "InitiateCheckout",
    "ViewContent",
];
/// Longest `event_id` / `contact_id` accepted.
pub const MAX_ID_LEN: usize = 128;

/// `POST /conversions` body, unvalidated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversionRequest {
    pub contact_id: Option<String>,
    pub value: Option<f64>,
    pub currency: Option<String>,
    /// Idempotency key (the deal id, an order number...).
    pub event_id: Option<String>,
    /// Default `Purchase`.
    pub event_name: Option<String>,
    /// When the conversion happened, Unix seconds (default: now).
    pub event_time: Option<i64>,
    /// The conversation it converts (`cnv_…`, a lead's `conversation_id`); default: the
    /// contact's latest conversation on `number`, else the one they opened last.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// The business number's `phone_number_id`.
    #[serde(default)]
    pub number: Option<String>,
}

/// The first problem of a conversion request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ConversionError {
    pub field: &'static str,
    pub problem: String,
}

fn bad(field: &'static str, problem: impl Into<String>) -> ConversionError {
    ConversionError {
        field,
        problem: problem.into(),
    }
}

/// A validated conversion.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    pub contact_id: String,
    pub value: f64,
    pub currency: String,
    pub event_id: String,
    pub event_name: String,
    /// Unix seconds.
    pub event_time: i64,
    pub conversation_id: Option<String>,
    pub number: Option<String>,
}

fn id_field(field: &'static str, value: Option<&str>) -> Result<String, ConversionError> {
    let v = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad(field, "is required"))?;
    if v.len() > MAX_ID_LEN {
        return Err(bad(field, format!("longer than {MAX_ID_LEN} bytes")));
    }
    if !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(field, "must be printable ASCII without spaces"));
    }
    Ok(v.to_string())
}

impl ConversionRequest {
    pub fn validate(&self, now_ms: i64) -> Result<Conversion, ConversionError> {
        let contact_id = id_field("contact_id", self.contact_id.as_deref())?;
        let event_id = id_field("event_id", self.event_id.as_deref())?;
        let value = self.value.ok_or_else(|| bad("value", "is required"))?;
        if !(0.0..=1e12).contains(&value) {
            return Err(bad("value", "must be a number from 0 to 1e12"));
        }
        let currency = self
            .currency
            .as_deref()
            .map(str::trim)
            .ok_or_else(|| bad("currency", "is required"))?;
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(bad(
                "currency",
                "must be an ISO 4217 code such as MXN, BRL, USD",
            ));
        }
        let event_name = self
            .event_name
            .as_deref()
            .map(str::trim)
            .unwrap_or("Purchase");
        let Some(event_name) = EVENT_NAMES
            .iter()
            .find(|n| n.eq_ignore_ascii_case(event_name))
        else {
            return Err(bad(
                "event_name",
                format!("must be one of {}", EVENT_NAMES.join(", ")),
            ));
        };
        let now_s = now_ms / 1000;
        let event_time = self.event_time.unwrap_or(now_s);
        // Meta refuses events older than 7 days or in the future.
        if event_time > now_s + 300 || event_time < now_s - 7 * 86_400 {
            return Err(bad(
                "event_time",
                "must be within the last 7 days (Unix seconds)",
            ));
        }
        let optional = |field, v: Option<&str>| {
            v.filter(|v| !v.trim().is_empty())
                .map(|v| id_field(field, Some(v)))
                .transpose()
        };
        Ok(Conversion {
            conversation_id: optional("conversation_id", self.conversation_id.as_deref())?,
            number: optional("number", self.number.as_deref())?,
            contact_id,
            value,
            currency: currency.to_ascii_uppercase(),
            event_id,
            event_name: event_name.to_string(),
            event_time,
        })
    }
}

/// What `POST /conversions` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConversionResult {
    pub event_id: String,
    /// `sent`, `not_attributable` (no click id for the contact), `not_configured` (no dataset),
    /// `refused` (Meta said no), `pending` (Meta unreachable: call again with the same event id).
    pub status: String,
    /// This event id was handled before; nothing was sent again.
    pub duplicate: bool,
    pub ctwa_clid: Option<String>,
    #[serde(flatten)]
    pub credit: Credit,
    pub detail: Option<String>,
}

/// Why a conversion could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Invalid(#[from] ConversionError),
    /// The event id was used before with a different contact, value, currency or name.
    #[error("event_id {0} was already used for a different conversion")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn same(a: &ConversionRow, c: &Conversion) -> bool {
    a.contact_id == c.contact_id
        && a.currency == c.currency
        && (a.value - c.value).abs() < 1e-9
        && a.event_name == c.event_name
}

/// Records a conversion and sends it to Meta when the contact has a click id: idempotent per
/// `event_id`. The credit (for the report) is the contact's last touch within the attribution
/// window at `event_time`; the click id is the latest one the contact has (last touch, else
/// first touch).
pub async fn record(
    store: &dyn AttributionStore,
    config: &AttributionConfig,
    meta: Option<&MetaConversions>,
    c: &Conversion,
) -> Result<ConversionResult, RecordError> {
    let state = store.contact(&c.contact_id).await?;
    let row = pending_row(state.as_ref(), config, c);
    let (row, duplicate) = match store.claim_conversion(&row).await? {
        Claim::New => (row, false),
        Claim::Existing(existing) if !same(&existing, c) => {
            return Err(RecordError::Conflict(c.event_id.clone()))
        }
        // A previous call gave up on Meta (or died mid-send): this call sends again; Meta
        // dedupes on event_id should the earlier attempt have landed after all.
        Claim::Existing(existing) if existing.status == "pending" => (*existing, false),
        Claim::Existing(existing) => {
            return Ok(ConversionResult {
                event_id: existing.event_id,
                status: existing.status,
                duplicate: true,
                ctwa_clid: existing.ctwa_clid,
                credit: existing.credit,
                detail: existing.detail,
            });
        }
    };
    let (status, detail, attempts) = deliver(meta, c, &row).await;
    store
        .finish_conversion(
            &row.event_id,
            status,
            detail.as_deref(),
            row.attempts + attempts,
        )
        .await?;
    Ok(ConversionResult {
        event_id: row.event_id,
        status: status.into(),
        duplicate,
        ctwa_clid: row.ctwa_clid,
        credit: row.credit,
        detail,
    })
}

/// The conversion as a `pending` row: credited to the contact's last touch within the window,
/// with the click id of its last (else first) ad touch.
fn pending_row(
    state: Option<&wabridge_core::attribution::ContactState>,
    config: &AttributionConfig,
    c: &Conversion,
) -> ConversionRow {
    let at_ms = c.event_time * 1000;
    let credited = state
        .and_then(|s| s.last.as_ref())
        .filter(|l| at_ms >= l.at && at_ms - l.at <= config.window_ms());
    let ctwa_clid = state.and_then(|s| {
        s.last
            .as_ref()
            .and_then(|t| t.ctwa_clid.clone())
            .or_else(|| s.first.as_ref().and_then(|t| t.ctwa_clid.clone()))
    });
    ConversionRow {
        event_id: c.event_id.clone(),
        contact_id: c.contact_id.clone(),
        event_name: c.event_name.clone(),
        value: c.value,
        currency: c.currency.clone(),
        event_time: at_ms,
        ctwa_clid,
        credit: Credit::of(credited),
        status: "pending".into(),
        detail: None,
        attempts: 0,
    }
}

/// Sends a claimed conversion to Meta when it can be: its final status, detail and the attempts
/// it took (`pending` when Meta could not be reached: the next call sends again).
async fn deliver(
    meta: Option<&MetaConversions>,
    c: &Conversion,
    row: &ConversionRow,
) -> (&'static str, Option<String>, u32) {
    let Some(clid) = row.ctwa_clid.as_deref() else {
        return (
            "not_attributable",
            Some("no ctwa_clid for this contact".into()),
            0,
        );
    };
    let Some(meta) = meta else {
        return (
            "not_configured",
            Some(format!("{} is not set", config::META_DATASET_ID)),
            0,
        );
    };
    match meta.send(c, clid).await {
        SendOutcome::Sent { attempts, response } => {
            let detail = response
                .get("fbtrace_id")
                .and_then(Value::as_str)
                .map(|t| format!("fbtrace_id {t}"));
            ("sent", detail, attempts)
        }
        SendOutcome::Refused {
            attempts,
            status,
            message,
        } => (
            "refused",
            Some(format!("HTTP {status}: {message}")),
            attempts,
        ),
        SendOutcome::GaveUp { attempts, reason } => ("pending", Some(reason), attempts),
    }
}
