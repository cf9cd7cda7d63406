//! [`SendingHooks`]: what crm-sync tells the sending side about each webhook event, so the
//! policy guards see real WhatsApp data:
//!
//! - an inbound message → [`WindowService::record_inbound`] at the message's own time (opens the
//!   24-hour window for free-form sends);
//! - a STOP / BAJA (opt-out keyword) text → [`ConsentService::record_stop_keyword`]; an opt-in
//!   keyword (START, ALTA, ...) → a marketing opt-in with source `keyword`; a `user_preferences`
//!   stop / resume → [`ConsentService::record_user_preference`];
//! - a `statuses[]` item → [`Sends::apply_status`] (the send's state moves forward only); a
//!   `failed` with 131050 records a marketing opt-out, also for a message we did not send;
//! - a template update → [`crate::templates::TemplateRegistry::apply_update`] of its WABA: a status (PAUSED, REJECTED,
//!   DISABLED templates are refused; APPROVED again resumes them), a quality score, a new
//!   category (MARKETING is guarded as marketing at once), a new body (its parameter count).
//!
//! **Every key.** Consent and the window are recorded under EVERY identity key the event names
//! for the person (its phone and its BSUID), so a send addressed by either `to` or `recipient`
//! finds them.
//!
//! **Idempotent.** crm-sync calls hooks after the CRM effects and retries the delivery when one
//! fails, so each may run again: consent entry ids derive from the event key and the contact
//! key (a redelivery appends nothing), the window keeps the latest time, send states and
//! template statuses only move forward (an older event never replaces a newer one).

use std::sync::Arc;

use async_trait::async_trait;

use crate::consent::{
    ConsentAction, ConsentCategory, ConsentEntry, ConsentService, ConsentSource, ContactRef,
    META_STOPPED_MARKETING,
};
use crate::error::StoreError;
use crate::identity::IdentityKey;
use crate::records::{ConsentRecord, ConsentStatus};
use crate::sends::service::Sends;
use crate::sync::{HookContext, SyncHooks};
use crate::templates::TemplateRegistries;
use crate::webhook::model::{Status, StatusKind, TemplateStatusUpdate};
use crate::window::WindowService;

/// [`SyncHooks`] over the sending side's stores.
pub struct SendingHooks {
    /// Delivery tracking ([`Sends::apply_status`]); `None` where no send store is wired.
    pub sends: Option<Arc<Sends>>,
    /// Per WABA with a numbers registry: a template webhook updates its `entry[].id`'s.
    pub templates: TemplateRegistries,
    pub consent: ConsentService,
    pub window: WindowService,
}

impl SendingHooks {
    /// Hooks over a sends service (its policy holds the consent, template and window services).
    pub fn new(sends: Arc<Sends>) -> SendingHooks {
        SendingHooks {
            templates: sends.policy.templates.clone(),
            consent: sends.policy.consent.clone(),
            window: sends.policy.window.clone(),
            sends: Some(sends),
        }
    }
}

/// The contact of an identity key, for the consent and window stores.
pub fn contact_of_key(key: &IdentityKey) -> ContactRef {
    ContactRef {
        key: key.as_string(),
        display: match key {
            IdentityKey::Phone(k) => format!("+{k}"),
            IdentityKey::Bsuid(b) => b.clone(),
        },
    }
}

/// A consent entry id unique per event and contact key: stable under redelivery, and distinct
/// for the phone and the BSUID of one event (consent ids are unique store-wide).
fn per_key(event_key: &str, contact: &ContactRef) -> String {
    format!("{event_key}|{}", contact.key)
}

#[async_trait]
impl SyncHooks for SendingHooks {
    async fn on_consent(
        &self,
        ctx: &HookContext<'_>,
        consent: &ConsentRecord,
    ) -> Result<(), StoreError> {
        use crate::records::ConsentSource as From;
        let at = consent.at.unwrap_or(ctx.event.received_at);
        // Written to (or reported by) this business number.
        let number = ctx.event.phone_number_id.as_deref();
        for key in ctx.keys {
            let contact = contact_of_key(key);
            let id = per_key(&ctx.event.key, &contact);
            match (consent.source, consent.status) {
                (From::Keyword, ConsentStatus::OptOut) => {
                    let keyword = consent.evidence["keyword"].as_str().unwrap_or("STOP");
                    self.consent
                        .record_stop_keyword(&contact, number, &id, keyword, at)
                        .await?;
                }
                (From::Keyword, ConsentStatus::OptIn) => {
                    let keyword = consent.evidence["keyword"].as_str().unwrap_or("START");
                    self.consent
                        .record(&ConsentEntry {
                            id: format!("keyword:{id}"),
                            contact: contact.key.clone(),
                            to: contact.display.clone(),
                            category: ConsentCategory::Marketing,
                            action: ConsentAction::OptIn,
                            source: ConsentSource::Keyword,
                            evidence: Some(format!("wrote {keyword:?} on WhatsApp")),
                            at,
                            recorded_at: crate::clock::now_ms(),
                            number: number.map(str::to_string),
                        })
                        .await?;
                }
                (From::UserPreferences, status) => {
                    let value = match status {
                        ConsentStatus::OptOut => "stop",
                        ConsentStatus::OptIn => "resume",
                    };
                    self.consent
                        .record_user_preference(&contact, number, &id, value, at)
                        .await?;
                }
                // Recorded by the sender (or `apply_status`) where the send was addressed,
                // or by `POST /consents`, before the event was emitted.
                (
                    From::MetaError | From::WebForm | From::Checkout | From::Store | From::Agent,
                    _,
                ) => {}
            }
        }
        Ok(())
    }

    async fn on_inbound(
        &self,
        ctx: &HookContext<'_>,
        message_at_ms: i64,
    ) -> Result<(), StoreError> {
        // The window is the (business number, customer) pair's.
        let number = ctx.event.phone_number_id.as_deref();
        for key in ctx.keys {
            self.window
                .record_inbound(&contact_of_key(key), number, message_at_ms)
                .await?;
        }
        Ok(())
    }

    async fn on_status(&self, ctx: &HookContext<'_>, status: &Status) -> Result<(), StoreError> {
        let ours = match &self.sends {
            Some(sends) => sends.apply_status(status).await?,
            None => None,
        };
        let code = status.errors.first().and_then(|e| e.code);
        if status.status != Some(StatusKind::Failed) || code != Some(META_STOPPED_MARKETING) {
            return Ok(());
        }
        // 131050. For one of our sends `apply_status` recorded the opt-out where the send was
        // addressed: record it under the person's other keys too (their BSUID when it went by
        // phone, or back). For a message we did not send (another tool on the same number) it is
        // still the person's word on marketing: record it under every key, named by the message.
        let (reference, addressed) = match (&ours, &self.sends) {
            (Some((send_id, _)), Some(sends)) => (
                send_id.clone(),
                sends.store.get(send_id).await?.map(|r| r.contact),
            ),
            _ => match status.id.as_deref() {
                Some(wamid) if !wamid.is_empty() => (wamid.to_string(), None),
                _ => (ctx.event.key.clone(), None),
            },
        };
        let at = status
            .timestamp
            .map_or(ctx.event.received_at, |t| t.saturating_mul(1000));
        let what = if ours.is_some() { "send" } else { "message" };
        for key in ctx.keys {
            let contact = contact_of_key(key);
            if addressed.as_deref() == Some(contact.key.as_str()) {
                continue;
            }
            self.consent
                .record(&ConsentEntry {
                    id: format!("meta_131050:{reference}|{}", contact.key),
                    contact: contact.key.clone(),
                    to: contact.display.clone(),
                    category: ConsentCategory::Marketing,
                    action: ConsentAction::OptOut,
                    source: ConsentSource::MetaError,
                    evidence: Some(format!(
                        "{what} {reference} failed at Meta with 131050 (user stopped marketing messages)"
                    )),
                    at,
                    recorded_at: crate::clock::now_ms(),
                    number: ctx.event.phone_number_id.clone(),
                })
                .await?;
        }
        Ok(())
    }

    async fn agent_of(
        &self,
        _ctx: &HookContext<'_>,
        status: &Status,
    ) -> Result<Option<String>, StoreError> {
        // Our sends carry their id as callback data (see `sends::request`).
        let (Some(sends), Some(id)) = (&self.sends, status.biz_opaque_callback_data.as_deref())
        else {
            return Ok(None);
        };
        if !id.starts_with("snd_") {
            return Ok(None);
        }
        Ok(sends.store.get(id).await?.and_then(|record| {
            let agent = record.request.get("agent")?.as_str()?;
            Some(agent.to_string())
        }))
    }

    async fn on_template_status(
        &self,
        ctx: &HookContext<'_>,
        update: &TemplateStatusUpdate,
    ) -> Result<(), StoreError> {
        let at = ctx
            .event
            .entry_time
            .map_or(ctx.event.received_at, |t| t * 1000);
        let applied = self
            .templates
            .of(&ctx.event.waba_id)
            .apply_update(&ctx.event.field, update, at)
            .await?;
        if let Err(missing) = applied {
            // Nothing to apply (the CRM record was still written): say so, do not retry forever.
            tracing::warn!(event = %crate::redact::key(&ctx.event.key), "template registry: {missing}");
        }
        Ok(())
    }
}
