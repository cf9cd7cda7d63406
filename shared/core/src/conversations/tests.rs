//! The ordering rules over a scripted thread, in every order that matters.

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;
use crate::records::Direction;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const IDLE: i64 = 24 * HOUR;

/// The fold's store contract in memory (the SQLite and DynamoDB stores are tested with their
/// engines): conditions on revisions, the head and new marks.
#[derive(Default)]
pub(super) struct Memory {
    state: Mutex<Tables>,
}

/// Conversations by id, heads by thread, marks by message id.
type Tables = (
    HashMap<String, ConversationState>,
    HashMap<String, String>,
    HashMap<String, MessageMark>,
);

#[async_trait]
impl ConversationStore for Memory {
    async fn load(&self, thread: &str, message_id: &str) -> Result<Loaded, StoreError> {
        let (convs, heads, marks) = &*self.state.lock().unwrap();
        let mark = marks.get(message_id).cloned();
        let head = heads.get(thread).cloned();
        let id = mark.as_ref().map(|m| &m.conversation_id).or(head.as_ref());
        Ok(Loaded {
            conversation: id.and_then(|id| convs.get(id)).cloned(),
            mark,
            head,
        })
    }
    async fn save(&self, write: &Write) -> Result<bool, StoreError> {
        let (convs, heads, marks) = &mut *self.state.lock().unwrap();
        for (expected, state) in &write.conversations {
            if convs.get(&state.record.id).map(|s| s.record.revision) != *expected {
                return Ok(false);
            }
        }
        if let Some((expected, _)) = &write.head {
            if heads.get(&write.thread) != expected.as_ref() {
                return Ok(false);
            }
        }
        for (_, state) in &write.conversations {
            convs.insert(state.record.id.clone(), state.clone());
        }
        if let Some((_, new)) = &write.head {
            heads.insert(write.thread.clone(), new.clone());
        }
        if let Some(mark) = &write.mark {
            marks.insert(mark.message_id.clone(), mark.clone());
        }
        Ok(true)
    }
    async fn get(&self, id: &str) -> Result<Option<ConversationState>, StoreError> {
        Ok(self.state.lock().unwrap().0.get(id).cloned())
    }
    async fn open(&self) -> Result<Vec<ConversationState>, StoreError> {
        let convs = &self.state.lock().unwrap().0;
        Ok(convs
            .values()
            .filter(|s| s.record.is_open())
            .cloned()
            .collect())
    }
    async fn opened_since(&self, since: i64) -> Result<Vec<ConversationRecord>, StoreError> {
        let convs = &self.state.lock().unwrap().0;
        Ok(convs
            .values()
            .filter(|s| s.record.opened_at >= since)
            .map(|s| s.record.clone())
            .collect())
    }
    async fn latest(
        &self,
        contact_id: &str,
        number: Option<&str>,
    ) -> Result<Option<ConversationState>, StoreError> {
        let (convs, heads, _) = &*self.state.lock().unwrap();
        Ok(match number {
            Some(n) => heads
                .get(&thread_key(contact_id, n))
                .and_then(|id| convs.get(id))
                .cloned(),
            None => convs
                .values()
                .filter(|s| s.record.contact_id == contact_id)
                .max_by_key(|s| s.record.opened_at)
                .cloned(),
        })
    }
}

pub(super) fn msg(id: &str, direction: Direction, at: i64) -> Observation {
    Observation {
        event_key: format!("m:{id}:{at}"),
        contact_id: "c1".into(),
        number: "pn1".into(),
        display_number: None,
        message_id: id.into(),
        direction,
        at,
        agent: None,
        origin: match direction {
            Direction::Inbound => Origin::Organic,
            Direction::Outbound => Origin::Template,
        },
        meta_conversation_id: None,
        pricing_category: None,
        pricing_type: None,
        tags: Vec::new(),
    }
}

pub(super) fn inbound(id: &str, at: i64) -> Observation {
    msg(id, Direction::Inbound, at)
}

pub(super) fn outbound(id: &str, at: i64, agent: Option<&str>) -> Observation {
    Observation {
        agent: agent.map(str::to_string),
        ..msg(id, Direction::Outbound, at)
    }
}

/// The thread's latest conversation after folding `events` in order.
async fn run(events: &[Observation]) -> ConversationRecord {
    let conversations = Conversations::new(std::sync::Arc::new(Memory::default()), IDLE);
    for e in events {
        conversations.observe(e).await.unwrap();
    }
    let loaded = conversations.store.load("c1|pn1", "").await.unwrap();
    loaded.conversation.expect("a conversation").record
}

mod sweep;

#[tokio::test]
async fn a_customer_opens_and_an_agent_answers() {
    let t0 = 1_000 * HOUR;
    let events = [
        inbound("in1", t0),
        inbound("in2", t0 + MIN),
        outbound("out1", t0 + 7 * MIN, Some("ana")),
        outbound("out2", t0 + 9 * MIN, Some("bruno")),
    ];
    let c = &run(&events).await;
    assert_eq!(c.opened_at, t0);
    assert_eq!(c.opened_by, Some(Party::Customer));
    assert_eq!(c.origin, Some(Origin::Organic));
    assert_eq!(c.first_response_ms, Some(7 * MIN));
    assert_eq!(c.agent.as_deref(), Some("ana"));
    assert_eq!((c.inbound_count, c.outbound_count), (2, 2));
    assert_eq!(c.last_outbound_at, Some(t0 + 9 * MIN));
}

#[tokio::test]
async fn the_same_thread_in_any_order_and_twice_gives_the_same_conversation() {
    let t0 = 2_000 * HOUR;
    // A template opens, the customer answers 30 min later, an agent 4 min after that.
    let events = [
        outbound("tpl", t0, None),
        inbound("in1", t0 + 30 * MIN),
        outbound("out1", t0 + 34 * MIN, Some("ana")),
        inbound("in2", t0 + 40 * MIN),
    ];
    let c = &run(&events).await;
    assert_eq!(c.opened_by, Some(Party::Business));
    assert_eq!(c.origin, Some(Origin::Template));
    assert_eq!(c.first_inbound_at, Some(t0 + 30 * MIN));
    assert_eq!(c.first_response_ms, Some(4 * MIN));
    let orders: [&[usize]; 4] = [
        &[3, 2, 1, 0],
        &[2, 0, 3, 1],
        &[0, 0, 2, 2, 1, 3, 1],
        &[1, 2, 0, 3, 3, 0],
    ];
    for order in orders {
        let shuffled: Vec<_> = order.iter().map(|&i| events[i].clone()).collect();
        let c2 = &run(&shuffled).await;
        assert_eq!(
            (
                c2.opened_at,
                c2.opened_by,
                c2.origin,
                c2.first_response_ms,
                c2.inbound_count,
                c2.outbound_count,
                c2.agent.clone(),
                c2.last_inbound_at,
            ),
            (
                c.opened_at,
                c.opened_by,
                c.origin,
                c.first_response_ms,
                c.inbound_count,
                c.outbound_count,
                c.agent.clone(),
                c.last_inbound_at,
            ),
            "order {order:?}"
        );
    }
}

#[tokio::test]
async fn a_late_sent_status_moves_the_response_earlier_never_later() {
    let t0 = 3_000 * HOUR;
    let events = [
        inbound("in1", t0),
        // `delivered` first, then the `sent` of the same message.
        outbound("out1", t0 + 5 * MIN, Some("ana")),
        outbound("out1", t0 + 3 * MIN, Some("ana")),
        // A `read` later changes nothing.
        outbound("out1", t0 + 20 * MIN, Some("ana")),
    ];
    let c = &run(&events).await;
    assert_eq!(c.first_response_ms, Some(3 * MIN));
    assert_eq!(c.outbound_count, 1);
}

#[tokio::test]
async fn idle_closes_on_the_next_message_and_late_ones_never_reopen() {
    let t0 = 4_000 * HOUR;
    let store = std::sync::Arc::new(Memory::default());
    let conversations = Conversations::new(store.clone(), IDLE);
    let first = conversations.observe(&inbound("a", t0)).await.unwrap();
    let first_id = first.conversation_id.clone().unwrap();
    // 25 hours later: the first closes at its last message + 24 h, a new one opens.
    let next = conversations
        .observe(&inbound("b", t0 + 25 * HOUR))
        .await
        .unwrap();
    assert_eq!(next.changes.len(), 2);
    let closed = &next.changes[0].1.record;
    assert_eq!(closed.id, first_id);
    assert_eq!(closed.closed_at, Some(t0 + IDLE));
    assert_eq!(closed.close_reason, Some(CloseReason::Idle));
    let second_id = next.conversation_id.clone().unwrap();
    assert_ne!(second_id, first_id);
    // Explicitly closed, then a late message from before the close: counted, not reopened.
    let closed = conversations
        .close(&second_id, t0 + 26 * HOUR)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(closed.record.close_reason, Some(CloseReason::Explicit));
    let late = conversations
        .observe(&outbound("c", t0 + 25 * HOUR + 2 * MIN, Some("ana")))
        .await
        .unwrap();
    assert_eq!(late.conversation_id.as_deref(), Some(second_id.as_str()));
    let r = &late.changes[0].1.record;
    assert_eq!(r.closed_at, Some(t0 + 26 * HOUR));
    assert_eq!(r.first_response_ms, Some(2 * MIN));
    // A message after the close opens a third.
    let third = conversations
        .observe(&inbound("d", t0 + 27 * HOUR))
        .await
        .unwrap();
    assert_ne!(third.conversation_id.as_deref(), Some(second_id.as_str()));
    assert_eq!(third.changes.len(), 1);
    // Far older than the thread's conversation: counted nowhere.
    let ancient = conversations.observe(&inbound("e", t0)).await.unwrap();
    assert_eq!(ancient, Folded::default());
}

#[tokio::test]
async fn a_redelivery_changes_nothing_and_returns_the_conversation() {
    let conversations = Conversations::new(std::sync::Arc::new(Memory::default()), IDLE);
    let once = conversations.observe(&inbound("a", HOUR)).await.unwrap();
    let twice = conversations.observe(&inbound("a", HOUR)).await.unwrap();
    assert_eq!(twice.conversation_id, once.conversation_id);
    assert_eq!(twice.mark, None);
    assert_eq!(twice.changes[0].1, once.changes[0].1);
    // Another event about the same message (a later status) that changes nothing sends nothing.
    let other = Observation {
        event_key: "s:a:read".into(),
        ..inbound("a", HOUR)
    };
    let later = conversations.observe(&other).await.unwrap();
    assert_eq!(later.conversation_id, once.conversation_id);
    assert!(later.changes.is_empty());
}

#[test]
fn the_idle_hours_are_validated() {
    let with = |v: &'static str| idle_ms(move |_| Some(v.to_string()));
    assert_eq!(idle_ms(|_| None).unwrap(), 24 * HOUR);
    assert_eq!(with("2").unwrap(), 2 * HOUR);
    for bad in ["0", "1.5", "abc", "721"] {
        let err = with(bad).unwrap_err().to_string();
        assert!(err.contains(WABRIDGE_CONVERSATION_IDLE_HOURS), "{err}");
    }
}

#[tokio::test]
async fn tags_of_new_messages_join_once_and_the_api_changes_keep_a_closed_conversation_closed() {
    let t0 = 5_000 * HOUR;
    let conversations = Conversations::new(std::sync::Arc::new(Memory::default()), IDLE);
    let tagged = |id: &str, at: i64, tags: &[&str]| Observation {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..inbound(id, at)
    };
    let first = conversations
        .observe(&tagged("a", t0, &["support"]))
        .await
        .unwrap();
    let id = first.conversation_id.unwrap();
    conversations
        .observe(&tagged("b", t0 + MIN, &["pricing", "support"]))
        .await
        .unwrap();
    let state = conversations.store().get(&id).await.unwrap().unwrap();
    assert_eq!(state.record.tags, ["pricing", "support"]);
    // A redelivery, even carrying a tag the message did not first have, adds nothing: it only
    // hands back the conversation as it is.
    let again = conversations
        .observe(&tagged("b", t0 + MIN, &["vip"]))
        .await
        .unwrap();
    assert_eq!(again.mark, None);
    assert_eq!(again.changes[0].1, state);
    assert_eq!(
        conversations.store().get(&id).await.unwrap(),
        Some(state.clone())
    );

    // Close, then outcome, agent and tags: taken, and it stays closed.
    let closed = conversations
        .close(&id, t0 + 2 * MIN)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(closed.record.closed_at, Some(t0 + 2 * MIN));
    let change = update::Change {
        outcome: Some("resolved".into()),
        agent: Some("ana".into()),
        tags: Some(vec!["vip".into(), "pricing".into()]),
        ..update::Change::default()
    };
    let (after, changed) = conversations
        .update(&id, &change, t0 + HOUR)
        .await
        .unwrap()
        .unwrap();
    assert!(changed);
    assert_eq!(after.record.tags, ["pricing", "vip"]);
    assert_eq!(after.record.agent.as_deref(), Some("ana"));
    assert_eq!(after.record.outcome_at, Some(t0 + HOUR));
    assert_eq!(after.record.closed_at, Some(t0 + 2 * MIN));
    assert_eq!(after.record.revision, closed.record.revision + 1);
    // The same change again changes nothing.
    let (_, changed) = conversations
        .update(&id, &change, t0 + 2 * HOUR)
        .await
        .unwrap()
        .unwrap();
    assert!(!changed);
    // An agent set through the API is kept over an earlier message's.
    let late = conversations
        .observe(&outbound("c", t0 + 30 * 1000, Some("bruno")))
        .await
        .unwrap();
    assert_eq!(late.changes[0].1.record.agent.as_deref(), Some("ana"));
    assert!(conversations
        .update("cnv_missing", &change, t0)
        .await
        .unwrap()
        .is_none());
}

#[test]
fn a_conversion_converts_once_and_a_new_outcome_drops_its_value() {
    let mut state = ConversationState::default();
    state.record.id = "cnv_1".into();
    state.record.revision = 3;
    let conversion = |event_id: &str, value: f64| update::Change {
        conversion: Some(update::Converted {
            event_id: event_id.into(),
            value,
            currency: "MXN".into(),
            at: 1_000,
        }),
        ..update::Change::default()
    };
    let converted = update::apply(&state, &conversion("deal-1", 1499.9), 5).unwrap();
    let r = &converted.record;
    assert_eq!(r.outcome.as_deref(), Some("converted"));
    assert_eq!(
        (r.outcome_value, r.outcome_currency.as_deref()),
        (Some(1499.9), Some("MXN"))
    );
    assert_eq!(r.outcome_at, Some(1_000));
    assert_eq!(r.revision, 4);
    assert_eq!(converted.last_event.as_deref(), Some("conversion:deal-1"));
    // The same conversion again: nothing, whatever it says.
    assert_eq!(
        update::apply(&converted, &conversion("deal-1", 1.0), 6),
        None
    );
    // Another conversion replaces the value.
    let second = update::apply(&converted, &conversion("deal-2", 10.0), 7).unwrap();
    assert_eq!(second.record.outcome_value, Some(10.0));
    // A different outcome drops the value.
    let lost = update::Change {
        outcome: Some("lost".into()),
        ..update::Change::default()
    };
    let lost = update::apply(&second, &lost, 8).unwrap();
    assert_eq!(lost.record.outcome_value, None);
    assert_eq!(lost.record.outcome_currency, None);
}
