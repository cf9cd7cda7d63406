//! Business alerts: the facts operations must hear about at once, beyond queues and Lambdas. A
//! number's quality dropping, a template paused, disabled, rejected or recategorised, an account
//! restricted, SLA breaches and the backlog, and the share of sends that fail.
//!
//! Pure: [`detect`] finds the [`Signal`]s of an event (and of the SLA sweep's figures),
//! [`emf`] describes a signal as a CloudWatch Embedded Metric Format line, and [`log`] writes
//! its warn line. Emitting is the engines' part, behind [`AlertSink`]: on AWS an EMF line on
//! stdout (wabridge-aws `EmfAlerts`), locally the warn line plus the latest state in SQLite
//! for `wabridge report health` (wabridge-sqlite `SqliteAlerts`). crm-sync emits the
//! signals of webhook events once per event through the effects ledger; the sender emits a
//! send's outcome when the sends store records the transition (once per send).

pub mod detect;
pub mod emf;
pub mod health;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::redact;

/// One business fact worth an alert (or, for [`Signal::NumberQuality`] and
/// [`Signal::SendOutcome`], a fact that moves the state an alert is computed from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "signal", rename_all = "snake_case")]
pub enum Signal {
    /// A `phone_number_quality_update`: every one updates the number's state; `drop` marks a
    /// drop (YELLOW, RED, FLAGGED, DOWNGRADE or a lower messaging limit), `red` RED or FLAGGED.
    NumberQuality {
        /// The business number as Meta names it here: display digits (never a customer's).
        number: String,
        event: Option<String>,
        /// GREEN, YELLOW or RED when known (FLAGGED means RED; see [`detect`]).
        rating: Option<String>,
        limit: Option<String>,
        old_limit: Option<String>,
        drop: bool,
        red: bool,
    },
    /// A template PAUSED, DISABLED or REJECTED (sends of it are refused from now on).
    TemplateBlocked {
        name: String,
        language: String,
        status: String,
        reason: Option<String>,
    },
    /// A `template_category_update` that took effect (not the 24-hour notice).
    TemplateCategory {
        name: String,
        language: String,
        from: Option<String>,
        to: String,
    },
    /// An `account_update` that restricts the account, reports a violation or a ban.
    AccountRestriction {
        waba_id: String,
        event: Option<String>,
        restrictions: Vec<String>,
        violation: Option<String>,
        ban_state: Option<String>,
    },
    /// Conversations whose first response is past the SLA, found by one sweep.
    SlaBreach { count: u64 },
    /// Open conversations awaiting a response, and how long the oldest has waited.
    Backlog { count: u64, oldest_wait_ms: i64 },
    /// A send the sender ended (`failed: false`: Meta accepted it), or a `failed` status from
    /// Meta on a message it had accepted (`attempted: false`: counted once already).
    SendOutcome {
        attempted: bool,
        failed: bool,
        /// wabridge's error code (`meta_131026`, `retry_horizon`, …) of a failure.
        code: Option<String>,
    },
}

impl Signal {
    /// Its name in logs, stores and EMF lines.
    pub fn name(&self) -> &'static str {
        match self {
            Signal::NumberQuality { .. } => "number_quality",
            Signal::TemplateBlocked { .. } => "template_blocked",
            Signal::TemplateCategory { .. } => "template_category",
            Signal::AccountRestriction { .. } => "account_restriction",
            Signal::SlaBreach { .. } => "sla_breach",
            Signal::Backlog { .. } => "backlog",
            Signal::SendOutcome { .. } => "send_outcome",
        }
    }

    /// Whether someone must look: a warn line rather than an info one.
    pub fn is_alert(&self) -> bool {
        match self {
            Signal::NumberQuality { drop, red, .. } => *drop || *red,
            Signal::SlaBreach { count } => *count > 0,
            Signal::Backlog { count, .. } => *count > 0,
            Signal::SendOutcome { failed, .. } => *failed,
            _ => true,
        }
    }
}

/// Where signals go. Implementations must not fail the caller for a log write; a store error
/// retries the delivery (the ledger keeps the emission once).
#[async_trait]
pub trait AlertSink: Send + Sync {
    /// One signal seen at `at_ms` (Unix ms).
    async fn record(&self, signal: &Signal, at_ms: i64) -> Result<(), StoreError>;
}

/// The log line only: the default of crm-sync and the sender.
pub struct LogAlerts;

#[async_trait]
impl AlertSink for LogAlerts {
    async fn record(&self, signal: &Signal, _at_ms: i64) -> Result<(), StoreError> {
        log(signal);
        Ok(())
    }
}

/// The signal's log line: warn for an alert, info (or nothing, for a successful send) else.
/// Business numbers are masked like every phone number in logs.
pub fn log(signal: &Signal) {
    let name = signal.name();
    match signal {
        Signal::SendOutcome { failed: false, .. } => {}
        Signal::NumberQuality {
            number,
            event,
            rating,
            limit,
            ..
        } => {
            let number = redact::mask(number);
            if signal.is_alert() {
                tracing::warn!(alert = name, number = %number, event = ?event, rating = ?rating, limit = ?limit, "business alert: the number's quality dropped");
            } else {
                tracing::info!(alert = name, number = %number, event = ?event, rating = ?rating, limit = ?limit, "number quality update");
            }
        }
        Signal::TemplateBlocked {
            name: template,
            language,
            status,
            reason,
        } => {
            tracing::warn!(alert = name, template = %template, language = %language, status = %status, reason = ?reason, "business alert: template {status}: its sends are refused");
        }
        Signal::TemplateCategory {
            name: template,
            language,
            from,
            to,
        } => {
            tracing::warn!(alert = name, template = %template, language = %language, from = ?from, to = %to, "business alert: template recategorised");
        }
        Signal::AccountRestriction {
            event,
            restrictions,
            violation,
            ban_state,
            ..
        } => {
            tracing::warn!(alert = name, event = ?event, restrictions = ?restrictions, violation = ?violation, ban_state = ?ban_state, "business alert: account restriction or violation");
        }
        Signal::SlaBreach { count } => {
            if *count > 0 {
                tracing::warn!(
                    alert = name,
                    count,
                    "business alert: conversations past their first-response SLA"
                );
            }
        }
        Signal::Backlog {
            count,
            oldest_wait_ms,
        } => {
            if *count > 0 {
                tracing::warn!(
                    alert = name,
                    count,
                    oldest_wait_ms,
                    "business alert: conversations awaiting a response"
                );
            }
        }
        Signal::SendOutcome { code, .. } => {
            tracing::warn!(alert = name, code = ?code, "business alert: a send failed");
        }
    }
}
