//! Status webhooks applied to sends: delivery tracking, forward only (see
//! [`Sends::apply_status`]).

use serde_json::Value;

use crate::clock::now_ms;
use crate::consent::ContactRef;
use crate::error::StoreError;
use crate::sends::store::{SendError, SendRecord, SendState};

use super::service::Sends;

impl Sends {
    /// Applies a status webhook item (`statuses[]`: `id`, `status`, `timestamp`,
    /// `biz_opaque_callback_data`, `errors[]`) to its send, forward only. Returns the send id and
    /// whether its state moved; `Ok(None)` when the status is not about one of our sends.
    /// Idempotent: a redelivered or late status changes nothing.
    pub async fn apply_status(&self, status: &Value) -> Result<Option<(String, bool)>, StoreError> {
        let str_of = |k: &str| {
            status
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let to = match str_of("status") {
            Some("sent") => SendState::Sent,
            Some("delivered") => SendState::Delivered,
            Some("read") | Some("played") => SendState::Read,
            Some("failed") => SendState::Failed,
            _ => return Ok(None),
        };
        let by_callback = str_of("biz_opaque_callback_data").filter(|d| d.starts_with("snd_"));
        let id = match by_callback {
            Some(id) => id.to_string(),
            None => match str_of("id") {
                Some(wamid) => match self.store.find_by_wamid(wamid).await? {
                    Some(id) => id,
                    None => return Ok(None),
                },
                None => return Ok(None),
            },
        };
        let error = (to == SendState::Failed).then(|| {
            let e = status.pointer("/errors/0");
            // A number, or a numeric string (the hooks and crm-sync's plan read it the same way).
            let code = e
                .and_then(|e| e.get("code"))
                .and_then(|c| c.as_i64().or_else(|| c.as_str()?.trim().parse().ok()));
            let title = e
                .and_then(|e| e.get("title").or(e.get("message")))
                .and_then(Value::as_str)
                .unwrap_or("failed");
            let details = e
                .and_then(|e| e.pointer("/error_data/details"))
                .and_then(Value::as_str);
            SendError {
                code: code.map_or_else(|| "meta_failed".to_string(), |c| format!("meta_{c}")),
                message: details.map_or_else(|| title.to_string(), |d| format!("{title}: {d}")),
            }
        });
        let at = str_of("timestamp")
            .and_then(|t| t.parse::<i64>().ok())
            .map_or_else(now_ms, |s| s * 1000);
        let Some((record, moved)) = self
            .store
            .transition(&id, to, error.as_ref(), str_of("id"), at)
            .await?
        else {
            return Ok(None);
        };
        // The status webhook itself is the CRM's activity for this send (no `finished`). A
        // 131050 failure is a marketing opt-out: recorded and reported whether or not this
        // delivery moved the send, so a redelivery after a failed report completes it (both are
        // idempotent: the entry id and the event key derive from the send id). Reported only when
        // the callback data names the send: otherwise crm-sync's plan for the status carries the
        // consent record itself (it cannot tell our sends by wamid), and the CRM gets one.
        if to == SendState::Failed
            && record.state == SendState::Failed
            && record
                .error
                .as_ref()
                .is_some_and(|e| e.code == "meta_131050")
        {
            let contact = contact_of_record(&record);
            self.policy
                .consent
                .record_meta_opt_out(&contact, &record.id, at)
                .await?;
            if by_callback.is_some() {
                self.events.opted_out(&contact, &record.id).await?;
            }
        }
        Ok(Some((id, moved)))
    }
}

/// The contact a send was addressed to (its stored key; `to` or `recipient` for display).
pub fn contact_of_record(record: &SendRecord) -> ContactRef {
    let display = ["to", "recipient"]
        .iter()
        .find_map(|k| record.request.get(*k).and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    ContactRef {
        key: record.contact.clone(),
        display,
    }
}
