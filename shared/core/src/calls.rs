//! WhatsApp calls on the contact's timeline: the `call` record, one per call, built from each
//! of its events (connect, status, terminate) and merged whatever their order.
//!
//! # Merge rule
//! Each event says what it knows; [`CallRecord::merge`] joins two views of the same call so
//! that the result does not depend on the order or on redeliveries (it is commutative,
//! associative and idempotent):
//! - `outcome`: answered > rejected > missed (a call someone answered was answered, whatever
//!   a late `FAILED` says; a refusal beats the absence of an answer);
//! - `placed_at` and `started_at`: the earliest known; `ended_at`, `duration_s`: the largest;
//! - `ended`: once a terminate was seen; `direction`, `callback_data`: the first known.

use serde::{Deserialize, Serialize};

use crate::records::{Direction, Version};
use crate::webhook::model::CallEvent;

/// The agent of messages the business sends from the WhatsApp Business app (echoes).
pub const BUSINESS_APP_AGENT: &str = "whatsapp_business_app";

/// How a call ended for the CRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// Ended without being answered (a terminate with no duration, or `FAILED`).
    Missed,
    /// The user declined a business call (status `REJECTED`).
    Rejected,
    /// Someone answered (status `ACCEPTED`, or a terminate with a start time or a duration).
    Answered,
}

/// One WhatsApp call of a contact.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CallRecord {
    #[serde(default)]
    pub v: Version,
    /// `call:<wacid>`: the same for every event of the call.
    pub event_id: String,
    pub contact_id: String,
    /// Meta's call id (`wacid.…`).
    pub call_id: String,
    /// `inbound` when the user called, `outbound` when the business did.
    pub direction: Option<Direction>,
    /// When the call was placed (its earliest event, Unix ms).
    pub placed_at: Option<i64>,
    /// When it was answered (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<i64>,
    /// Absent while the call is ringing or in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<CallOutcome>,
    /// Whether the call's terminate event was seen.
    #[serde(default)]
    pub ended: bool,
    /// The step this record was made from: `connect`, `terminate`, or a status (`RINGING`,
    /// `ACCEPTED`, `REJECTED`) — informative; merged records keep the terminal one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_data: Option<String>,
    /// The thread's current conversation when the event came (conversations on); a call is
    /// not a message, so it opens none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
}

impl CallRecord {
    /// What one event says about its call (`contact_id` filled in later).
    pub fn of_event(call: &CallEvent) -> Option<CallRecord> {
        let id = call.id.as_deref().filter(|s| !s.is_empty())?;
        let ms = |s: Option<i64>| s.map(|t| t.saturating_mul(1000));
        let upper = |s: &Option<String>| s.as_deref().map(str::to_ascii_uppercase);
        let mut r = CallRecord {
            event_id: format!("call:{id}"),
            call_id: id.to_string(),
            direction: call.user_initiated().map(|user| {
                if user {
                    Direction::Inbound
                } else {
                    Direction::Outbound
                }
            }),
            placed_at: ms(call.timestamp),
            callback_data: call.biz_opaque_callback_data.clone(),
            ..Default::default()
        };
        if call.is_status() {
            // Statuses only exist for business-initiated calls.
            r.direction = Some(Direction::Outbound);
            let status = upper(&call.status);
            match status.as_deref() {
                Some("ACCEPTED") => {
                    r.outcome = Some(CallOutcome::Answered);
                    r.started_at = ms(call.timestamp);
                }
                Some("REJECTED") => r.outcome = Some(CallOutcome::Rejected),
                _ => {}
            }
            r.last_event = status;
            return Some(r);
        }
        let event = call.event.as_deref().map(str::to_ascii_lowercase);
        if event.as_deref() == Some("terminate") {
            r.ended = true;
            r.started_at = ms(call.start_time);
            r.ended_at = ms(call.end_time).or(ms(call.timestamp));
            r.duration_s = call
                .duration
                .or_else(|| match (call.start_time, call.end_time) {
                    (Some(s), Some(e)) if e >= s => Some(e - s),
                    _ => None,
                });
            // The terminate's timestamp is when it ended: the call was placed no later than
            // its start (the earliest event of the call wins in the merge).
            r.placed_at = ms(call.start_time).or(ms(call.timestamp));
            let answered = call.start_time.is_some() || call.duration.is_some_and(|d| d > 0);
            r.outcome = Some(if answered {
                CallOutcome::Answered
            } else {
                CallOutcome::Missed
            });
        }
        r.last_event = event;
        Some(r)
    }

    /// Joins another view of the same call into this one (see the module's merge rule).
    pub fn merge(&mut self, other: &CallRecord) {
        fn min(a: Option<i64>, b: Option<i64>) -> Option<i64> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        self.outcome = self.outcome.max(other.outcome);
        self.placed_at = min(self.placed_at, other.placed_at);
        self.started_at = min(self.started_at, other.started_at);
        self.ended_at = self.ended_at.max(other.ended_at);
        self.duration_s = self.duration_s.max(other.duration_s);
        if other.ended && !self.ended {
            self.last_event = other.last_event.clone();
        } else if !self.ended && !other.ended {
            self.last_event = self.last_event.clone().max(other.last_event.clone());
        }
        self.ended |= other.ended;
        self.direction = self.direction.or(other.direction);
        if self.callback_data.is_none() {
            self.callback_data = other.callback_data.clone();
        }
        if self.contact_id.is_empty() {
            self.contact_id = other.contact_id.clone();
        }
        if self.conversation_id.is_none() {
            self.conversation_id = other.conversation_id.clone();
        }
    }
}

/// A user's answer to a call permission request, kept on their contact.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CallPermission {
    /// `accept` or `reject`, as Meta sent it.
    pub response: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permanent: Option<bool>,
    /// Accept only: until when the business may call (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// When the user answered (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> CallRecord {
        CallRecord::of_event(&serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn every_order_of_a_business_call_merges_to_one_answer() {
        let views = [
            event(
                r#"{"id":"wacid.1","status":"RINGING","type":"call","timestamp":"100","recipient_id":"5215512345678"}"#,
            ),
            event(r#"{"id":"wacid.1","status":"ACCEPTED","type":"call","timestamp":"105"}"#),
            event(
                r#"{"id":"wacid.1","event":"terminate","direction":"BUSINESS_INITIATED","timestamp":"170","status":"COMPLETED","start_time":"105","end_time":"170","duration":65}"#,
            ),
        ];
        let orders = [
            [0, 1, 2],
            [2, 1, 0],
            [1, 2, 0],
            [2, 0, 1],
            [0, 2, 1],
            [1, 0, 2],
        ];
        let mut results = Vec::new();
        for order in orders {
            let mut r = views[order[0]].clone();
            for i in order {
                r.merge(&views[i]);
                r.merge(&views[i]); // a redelivery changes nothing
            }
            results.push(r);
        }
        for r in &results {
            assert_eq!(r, &results[0]);
        }
        let r = &results[0];
        assert_eq!(r.outcome, Some(CallOutcome::Answered));
        assert_eq!(r.direction, Some(Direction::Outbound));
        assert_eq!(
            (r.placed_at, r.started_at, r.ended_at, r.duration_s),
            (Some(100_000), Some(105_000), Some(170_000), Some(65))
        );
        assert!(r.ended);
        assert_eq!(r.last_event.as_deref(), Some("terminate"));
    }

    #[test]
    fn outcomes_of_missed_and_rejected_calls() {
        let missed = event(
            r#"{"id":"wacid.2","event":"terminate","direction":"USER_INITIATED","timestamp":"200","status":"FAILED"}"#,
        );
        assert_eq!(missed.outcome, Some(CallOutcome::Missed));
        assert_eq!(missed.direction, Some(Direction::Inbound));
        let mut rejected =
            event(r#"{"id":"wacid.3","status":"REJECTED","type":"call","timestamp":"300"}"#);
        let end = event(
            r#"{"id":"wacid.3","event":"terminate","direction":"BUSINESS_INITIATED","timestamp":"301","status":"FAILED"}"#,
        );
        rejected.merge(&end);
        assert_eq!(
            rejected.outcome,
            Some(CallOutcome::Rejected),
            "a refusal beats no answer"
        );
        let connect = event(
            r#"{"id":"wacid.2","event":"connect","direction":"USER_INITIATED","timestamp":"190","session":{"sdp_type":"offer","sdp":"v=0"}}"#,
        );
        assert_eq!(connect.outcome, None, "ringing: no outcome yet");
        let mut m = missed.clone();
        m.merge(&connect);
        assert_eq!(m.placed_at, Some(190_000));
        assert!(
            CallRecord::of_event(&serde_json::from_str(r#"{"event":"connect"}"#).unwrap())
                .is_none()
        );
    }
}
