//! Status webhooks applied to sends: delivery tracking, forward only (see
//! [`Sends::apply_status`]).

use serde_json::Value;

use crate::clock::now_ms;
use crate::consent::ContactRef;
use crate::error::StoreError;
use crate::sends::store::{SendError, SendRecord, SendState};
use crate::webhook::model::{Status, StatusKind};

use super::service::Sends;

impl Sends {
    /// Applies a status webhook item (`statuses[]`) to its send, forward only. Returns the
    /// send id and whether its state moved; `Ok(None)` when the status is not about one of our
    /// sends. Idempotent: a redelivered or late status changes nothing.
    pub async fn apply_status(
        &self,
        status: &Status,
    ) -> Result<Option<(String, bool)>, StoreError> {
        let to = match status.status {
            Some(StatusKind::Sent) => SendState::Sent,
            Some(StatusKind::Delivered) => SendState::Delivered,
            Some(StatusKind::Read | StatusKind::Played) => SendState::Read,
            Some(StatusKind::Failed) => SendState::Failed,
            Some(StatusKind::Unknown) | None => return Ok(None),
        };
        let wamid = status.id.as_deref().filter(|s| !s.is_empty());
        let by_callback = status
            .biz_opaque_callback_data
            .as_deref()
            .filter(|d| d.starts_with("snd_"));
        let id = match (by_callback, wamid) {
            (Some(id), _) => id.to_string(),
            (None, Some(wamid)) => match self.store.find_by_wamid(wamid).await? {
                Some(id) => id,
                None => return Ok(None),
            },
            (None, None) => return Ok(None),
        };
        let error = (to == SendState::Failed).then(|| send_error(status));
        let at = status
            .timestamp
            .map_or_else(now_ms, |s| s.saturating_mul(1000));
        let Some((record, moved)) = self
            .store
            .transition(&id, to, error.as_ref(), wamid, at)
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
            // The number the send went from (the stored request's resolved `from`).
            let from = record.request.get("from").and_then(|f| f.as_str());
            self.policy
                .consent
                .record_meta_opt_out(&contact, from, &record.id, at)
                .await?;
            if by_callback.is_some() {
                self.events.opted_out(&record).await?;
            }
        }
        Ok(Some((id, moved)))
    }
}

/// A failed status's first error as the send's stable code (`meta_<code>`) and sentence.
fn send_error(status: &Status) -> SendError {
    let e = status.errors.first();
    let title = e
        .and_then(|e| e.title.as_deref().or(e.message.as_deref()))
        .unwrap_or("failed");
    let details = e
        .and_then(|e| e.error_data.as_ref())
        .and_then(|d| d.details.as_deref());
    SendError {
        code: e
            .and_then(|e| e.code)
            .map_or_else(|| "meta_failed".to_string(), |c| format!("meta_{c}")),
        message: details.map_or_else(|| title.to_string(), |d| format!("{title}: {d}")),
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
