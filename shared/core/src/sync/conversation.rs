//! crm-sync's part of conversations ([`crate::conversations`]): which events are messages of a
//! thread, folding them in, and the `conversation` records that become effects of the event.
//!
//! Messages of a thread: the customer's new messages (not edits, revokes nor `system`
//! notices), echoes (agent `whatsapp_business_app`), and the statuses of the business's
//! messages (a status is how a message sent through the Cloud API shows up; `failed` ones
//! delivered nothing and count as no response). wabridge's own events name no number and are
//! not messages.

use crate::attribution::CodeStatus;
use crate::calls::BUSINESS_APP_AGENT;
use crate::conversations::sla::SlaBreachRecord;
use crate::conversations::sweep::SweepItem;
use crate::conversations::tags::TagInput;
use crate::conversations::{Conversations, Observation, Origin};
use crate::error::StoreError;
use crate::event::Event;
use crate::records::{Direction, Record};
use crate::webhook::model::{Item, Message, MessageContent, MessageType, StatusKind};

use super::plan::Plan;
use super::{CrmSync, HookContext};

impl CrmSync {
    /// Folds the event's message into its conversation (with the tags the mapping's rules give
    /// an inbound message; `campaign`: its tracked link's); returns the changed conversations
    /// as effects (`conversation_closed` for one an idle gap closed, `conversation` for the
    /// message's own) and the message's conversation, and sets `conversation_id` on the
    /// message's activity.
    pub(super) async fn converse(
        &self,
        event: &Event,
        plan: &Plan,
        contact: Option<&Record>,
        contact_id: &str,
        campaign: Option<String>,
        records: &mut [(&'static str, Record)],
    ) -> Result<(Vec<(&'static str, Record)>, Option<String>), StoreError> {
        let Some(conversations) = &self.conversations else {
            return Ok((Vec::new(), None));
        };
        if let Item::Status(status) = &plan.item {
            let keys = plan.identity.keys();
            let ctx = HookContext {
                event,
                contact_id: Some(contact_id),
                keys: &keys,
            };
            if let Some(agent) = self.hooks.agent_of(&ctx, status).await? {
                for (_, r) in records.iter_mut() {
                    if let Record::Activity(a) = r {
                        a.agent = Some(agent.clone());
                    }
                }
            }
        }
        name_conversation(conversations, event, contact_id, records).await?;
        let Some(mut obs) = observation(event, plan, contact, contact_id, records) else {
            return Ok((Vec::new(), None));
        };
        if let Item::Message(m) = &plan.item {
            obs.tags = self
                .mapping
                .tags
                .tags_for(&tag_input(m, campaign.as_deref()));
        }
        let folded = conversations.observe(&obs).await?;
        let Some(id) = folded.conversation_id.clone() else {
            tracing::warn!(
                event = %crate::redact::key(&event.key),
                metric = "conversation_late_message",
                "a message older than its thread's conversation by more than the idle time: counted in no conversation"
            );
            return Ok((Vec::new(), None));
        };
        for (_, r) in records.iter_mut() {
            if let Record::Activity(a) = r {
                if a.message_id.as_deref() == Some(obs.message_id.as_str()) {
                    a.conversation_id = Some(id.clone());
                }
            }
        }
        let changed = folded
            .changes
            .into_iter()
            .map(|(_, state)| {
                let name = if state.record.id == id {
                    "conversation"
                } else {
                    "conversation_closed"
                };
                (name, Record::Conversation(state.record))
            })
            .collect();
        Ok((changed, Some(id)))
    }
}

/// What the mapping's tag rules look at in a customer's message.
fn tag_input<'a>(m: &'a Message, campaign: Option<&'a str>) -> TagInput<'a> {
    let text = match m.content() {
        MessageContent::Text(t) => Some(t.body.as_str()),
        MessageContent::Image(x)
        | MessageContent::Video(x)
        | MessageContent::Document(x)
        | MessageContent::Sticker(x)
        | MessageContent::Audio(x) => x.caption.as_deref(),
        _ => None,
    };
    let interactive = m.interactive.as_ref();
    TagInput {
        text,
        button_payload: m.button.as_ref().and_then(|b| b.payload.as_deref()),
        list_reply_id: interactive
            .and_then(|i| i.list_reply.as_ref())
            .and_then(|l| l.id.as_deref()),
        ad_source_id: m.referral.as_ref().and_then(|r| r.source_id.as_deref()),
        campaign,
    }
}

/// Calls, edits and revokes are no messages of the thread (they fold nothing): they only name
/// the conversation they belong to. An edit or revoke, its original message's; a call, the
/// thread's current one.
async fn name_conversation(
    conversations: &Conversations,
    event: &Event,
    contact_id: &str,
    records: &mut [(&'static str, Record)],
) -> Result<(), StoreError> {
    let Some(number) = event.phone_number_id.as_deref().filter(|n| !n.is_empty()) else {
        return Ok(());
    };
    for (_, r) in records.iter_mut() {
        match r {
            Record::MessageChange(c) => {
                let at = c.at.unwrap_or(event.received_at);
                c.conversation_id = conversations
                    .conversation_at(contact_id, number, &c.message_id, at)
                    .await?;
            }
            Record::Call(c) => {
                let at = c
                    .placed_at
                    .or(c.started_at)
                    .or(c.ended_at)
                    .unwrap_or(event.received_at);
                // A call id is never a message's mark: this reads the thread's latest.
                c.conversation_id = conversations
                    .conversation_at(contact_id, number, &c.call_id, at)
                    .await?;
            }
            _ => {}
        }
    }
    Ok(())
}

impl CrmSync {
    /// Applies a finding of the sweep ([`crate::conversations::sweep`]) to the store; returns
    /// the records it makes effects of its event: `sla_breach` and the conversation for a
    /// breach, `conversation_closed` for an idle close that this event made. Under redelivery
    /// (or the same finding queued twice: one key) the store says it happened and the same
    /// records come back; the ledger sends them once.
    pub(super) async fn swept(
        &self,
        item: &SweepItem,
    ) -> Result<Vec<(&'static str, Record)>, StoreError> {
        let Some(conversations) = &self.conversations else {
            return Ok(Vec::new());
        };
        let key = |kind: &str| format!("{kind}:{}", item.conversation_id());
        Ok(match item {
            SweepItem::SlaBreach {
                conversation_id,
                due_at,
                at,
            } => match conversations.breach(conversation_id, *due_at, *at).await? {
                Some((state, true)) => {
                    let r = state.record;
                    let breach = SlaBreachRecord {
                        conversation_id: r.id.clone(),
                        contact_id: r.contact_id.clone(),
                        number: r.number.clone(),
                        first_inbound_at: r.first_inbound_at.unwrap_or(r.opened_at),
                        due_at: *due_at,
                        breached_at: r.sla_breached_at.unwrap_or(*at),
                        agent: r.agent.clone(),
                        ..SlaBreachRecord::default()
                    };
                    vec![
                        ("sla_breach", Record::SlaBreach(breach)),
                        ("conversation", Record::Conversation(r)),
                    ]
                }
                _ => Vec::new(),
            },
            SweepItem::IdleClose {
                conversation_id,
                at,
            } => match conversations
                .close_idle(conversation_id, *at, &key("idle"))
                .await?
            {
                Some((state, true)) => {
                    vec![("conversation_closed", Record::Conversation(state.record))]
                }
                _ => Vec::new(),
            },
        })
    }
}

/// The event as a message of its thread, when it is one.
fn observation(
    event: &Event,
    plan: &Plan,
    contact: Option<&Record>,
    contact_id: &str,
    records: &[(&'static str, Record)],
) -> Option<Observation> {
    let number = event.phone_number_id.clone().filter(|n| !n.is_empty())?;
    let activity = records.iter().find_map(|(_, r)| match r {
        Record::Activity(a) => Some(a),
        _ => None,
    });
    let at = |seconds: Option<i64>| seconds.map_or(event.received_at, |t| t.saturating_mul(1000));
    let base = |message_id: &str, direction, at| Observation {
        event_key: event.key.clone(),
        contact_id: contact_id.to_string(),
        number: number.clone(),
        display_number: event.display_phone_number.clone(),
        message_id: message_id.to_string(),
        direction,
        at,
        agent: None,
        origin: Origin::Organic,
        meta_conversation_id: None,
        pricing_category: None,
        pricing_type: None,
        tags: Vec::new(),
    };
    match &plan.item {
        Item::Message(m)
            if m.original_message_id().is_none() && m.kind() != MessageType::System =>
        {
            let id = m.id.as_deref().filter(|id| !id.is_empty())?;
            let referral = matches!(contact, Some(Record::Contact(c)) if c.referral.is_some());
            let tracked = activity.is_some_and(|a| a.ref_code_status == Some(CodeStatus::Known));
            Some(Observation {
                origin: if referral {
                    Origin::CtwaAd
                } else if tracked {
                    Origin::TrackedLink
                } else {
                    Origin::Organic
                },
                ..base(id, Direction::Inbound, at(m.timestamp))
            })
        }
        Item::Echo(m) if m.original_message_id().is_none() => {
            let id = m.id.as_deref().filter(|id| !id.is_empty())?;
            Some(Observation {
                agent: Some(BUSINESS_APP_AGENT.to_string()),
                ..base(id, Direction::Outbound, at(m.timestamp))
            })
        }
        Item::Status(s) if s.status != Some(StatusKind::Failed) && !s.is_group() => {
            let id = s.id.as_deref().filter(|id| !id.is_empty())?;
            let conversation = s.conversation.as_ref();
            let pricing = s.pricing.as_ref();
            Some(Observation {
                origin: Origin::Template,
                agent: activity.and_then(|a| a.agent.clone()),
                meta_conversation_id: conversation.and_then(|c| c.id.clone()),
                pricing_category: pricing.and_then(|p| p.category.clone()),
                pricing_type: pricing.and_then(|p| p.pricing_type.clone()),
                ..base(id, Direction::Outbound, at(s.timestamp))
            })
        }
        _ => None,
    }
}
