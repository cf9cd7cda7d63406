//! [`SyncHooks`]: what crm-sync tells the sending side after an event's CRM effects succeeded.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::event::Event;
use crate::identity::IdentityKey;
use crate::records::ConsentRecord;
use crate::webhook::model::{Status, TemplateStatusUpdate};

/// What a hook knows about the event it is called for.
#[derive(Debug, Clone, Copy)]
pub struct HookContext<'a> {
    pub event: &'a Event,
    /// The CRM contact of the event, when it names a person.
    pub contact_id: Option<&'a str>,
    /// Every identity key the event names for the person (phone and BSUID; after a number
    /// change, the new one), so the sending side can record under each.
    pub keys: &'a [IdentityKey],
}

/// Hooks for the sending side (consent history, 24-hour window, delivery tracking, template
/// registry), called after the CRM effects of an event succeeded. Implementations must be
/// idempotent (a redelivery calls them again); an error retries the delivery. Default: nothing.
///
/// crm-sync calls the `on_*` methods; their defaults forward to the simpler
/// [`SyncHooks::consent_changed`] / [`SyncHooks::inbound_message`] (contact id only).
#[async_trait]
pub trait SyncHooks: Send + Sync {
    /// A consent change (keyword or `user_preferences`).
    async fn consent_changed(
        &self,
        _contact_id: &str,
        _consent: &ConsentRecord,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    /// An inbound message from the contact at `at_ms` (when ingest received it).
    async fn inbound_message(&self, _contact_id: &str, _at_ms: i64) -> Result<(), StoreError> {
        Ok(())
    }
    /// A consent change (keyword, `user_preferences`, or Meta's 131050 reported by the sender).
    async fn on_consent(
        &self,
        ctx: &HookContext<'_>,
        consent: &ConsentRecord,
    ) -> Result<(), StoreError> {
        match ctx.contact_id {
            Some(id) => self.consent_changed(id, consent).await,
            None => Ok(()),
        }
    }
    /// An inbound message; `message_at_ms` is the message's own `timestamp` (ingest's receive
    /// time when it has none). Opens the 24-hour window.
    async fn on_inbound(
        &self,
        ctx: &HookContext<'_>,
        _message_at_ms: i64,
    ) -> Result<(), StoreError> {
        match ctx.contact_id {
            Some(id) => self.inbound_message(id, ctx.event.received_at).await,
            None => Ok(()),
        }
    }
    /// A `statuses[]` item (delivery tracking of our sends).
    async fn on_status(&self, _ctx: &HookContext<'_>, _status: &Status) -> Result<(), StoreError> {
        Ok(())
    }
    /// The agent named on the send a status is about (`POST /sends` `agent`), if it is one of
    /// wabridge's sends and named one. Read before the CRM effects: the status's activity and
    /// its conversation carry it.
    async fn agent_of(
        &self,
        _ctx: &HookContext<'_>,
        _status: &Status,
    ) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    /// A `message_template_status_update` value (the template registry).
    async fn on_template_status(
        &self,
        _ctx: &HookContext<'_>,
        _update: &TemplateStatusUpdate,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

/// No sending side.
pub struct NoHooks;
impl SyncHooks for NoHooks {}
