//! The sweep's writes: one breach, one idle close, whatever races them.

use std::sync::Arc;

use super::{inbound, outbound, Memory, HOUR, IDLE, MIN};
use crate::conversations::sweep::backlog;
use crate::conversations::{CloseReason, Conversations};

fn service() -> Conversations {
    Conversations::new(Arc::new(Memory::default()), IDLE)
}

#[tokio::test]
async fn a_breach_is_written_once_and_not_after_a_timely_response() {
    let c = service();
    let t0 = 100 * HOUR;
    let id = c
        .observe(&inbound("in1", t0))
        .await
        .unwrap()
        .conversation_id
        .unwrap();
    let due = t0 + 15 * MIN;
    let (first, breached) = c.breach(&id, due, due + MIN).await.unwrap().unwrap();
    assert!(breached);
    assert_eq!(first.record.sla_breached_at, Some(due + MIN));
    // Again (a second sweeper, a redelivery): breached, unchanged.
    let (again, breached) = c.breach(&id, due, due + 2 * MIN).await.unwrap().unwrap();
    assert!(breached);
    assert_eq!(again, first, "no second write");
    // A late response still sets the first response.
    c.observe(&outbound("out1", t0 + 20 * MIN, None))
        .await
        .unwrap();
    let r = c.store().get(&id).await.unwrap().unwrap().record;
    assert_eq!(r.first_response_ms, Some(20 * MIN));
    assert_eq!(r.sla_breached_at, Some(due + MIN));

    // A response folded before the breach is applied (a fold racing the sweep): no breach.
    let other = Conversations::new(Arc::new(Memory::default()), IDLE);
    let id = other
        .observe(&inbound("in2", t0))
        .await
        .unwrap()
        .conversation_id
        .unwrap();
    other
        .observe(&outbound("out2", t0 + 14 * MIN, None))
        .await
        .unwrap();
    let (state, breached) = other.breach(&id, due, due + MIN).await.unwrap().unwrap();
    assert!(!breached);
    assert_eq!(state.record.sla_breached_at, None);
    assert!(c.breach("cnv_none", due, due).await.unwrap().is_none());
}

#[tokio::test]
async fn an_idle_close_never_doubles_the_lazy_close() {
    let c = service();
    let t0 = 200 * HOUR;
    let id = c
        .observe(&inbound("in1", t0))
        .await
        .unwrap()
        .conversation_id
        .unwrap();
    // Not idle yet.
    let (_, closed) = c
        .close_idle(&id, t0 + IDLE, "idle:x")
        .await
        .unwrap()
        .unwrap();
    assert!(!closed);
    let (state, closed) = c
        .close_idle(&id, t0 + IDLE + 1, "idle:x")
        .await
        .unwrap()
        .unwrap();
    assert!(closed);
    assert_eq!(state.record.closed_at, Some(t0 + IDLE));
    assert_eq!(state.record.close_reason, Some(CloseReason::Idle));
    // Its redelivery: still this event's close (effects are re-derived, the ledger dedupes).
    let (again, closed) = c
        .close_idle(&id, t0 + IDLE + 5, "idle:x")
        .await
        .unwrap()
        .unwrap();
    assert!(closed);
    assert_eq!(again, state);
    // The thread's next message opens a new conversation and closes nothing again.
    let folded = c.observe(&inbound("in2", t0 + 2 * IDLE)).await.unwrap();
    assert_eq!(folded.changes.len(), 1, "only the new conversation");
    assert_ne!(folded.conversation_id.as_deref(), Some(id.as_str()));

    // The other way round: the lazy path closed first, the sweep's close changes nothing.
    let c = service();
    let id = c
        .observe(&inbound("in1", t0))
        .await
        .unwrap()
        .conversation_id
        .unwrap();
    let folded = c.observe(&inbound("in2", t0 + 2 * IDLE)).await.unwrap();
    assert_eq!(folded.changes.len(), 2, "closed and opened");
    let (state, closed) = c
        .close_idle(&id, t0 + 3 * IDLE, "idle:y")
        .await
        .unwrap()
        .unwrap();
    assert!(!closed, "the lazy path closed it");
    assert_eq!(state.record.closed_at, Some(t0 + IDLE));
}

#[tokio::test]
async fn the_backlog_counts_open_conversations_awaiting_a_response() {
    let c = service();
    let t0 = 300 * HOUR;
    c.observe(&inbound("a1", t0)).await.unwrap();
    let mut b = super::msg("b1", crate::records::Direction::Inbound, t0 + MIN);
    b.contact_id = "c2".into();
    c.observe(&b).await.unwrap();
    let mut b2 = super::msg("b2", crate::records::Direction::Outbound, t0 + 2 * MIN);
    b2.contact_id = "c2".into();
    c.observe(&b2).await.unwrap();
    let mut other = super::msg("x1", crate::records::Direction::Inbound, t0 + 3 * MIN);
    other.contact_id = "c3".into();
    other.number = "pn2".into();
    c.observe(&other).await.unwrap();
    let now = t0 + 10 * MIN;
    let all = c.backlog(None, now).await.unwrap();
    assert_eq!(all.count, 2, "c1 waits, c2 was answered, c3 waits on pn2");
    assert_eq!(all.oldest_wait_ms, Some(10 * MIN));
    let pn2 = c.backlog(Some("pn2"), now).await.unwrap();
    assert_eq!((pn2.count, pn2.oldest_wait_ms), (1, Some(7 * MIN)));
    // Answered again by the business: no longer waiting.
    let mut answer = super::msg("x2", crate::records::Direction::Outbound, t0 + 11 * MIN);
    answer.contact_id = "c3".into();
    answer.number = "pn2".into();
    c.observe(&answer).await.unwrap();
    let open = c.store().open().await.unwrap();
    assert_eq!(backlog(&open, Some("pn2"), now).count, 0);
    assert_eq!(backlog(&open, None, now).count, 1);
}
