//! A coalescing batcher: concurrent callers each submit one input; inputs that arrive within a
//! short linger window (or until the batch is full) go out as ONE call, and every caller gets
//! its own result back.
//!
//! Why: crm-sync runs many events at once (32 in `wabridge serve`, 16 per Lambda batch), and
//! each wants one contact upsert and one activity. HubSpot takes up to 100 inputs per batch call
//! and limits calls per 10 s; Salesforce's sObject Collections take 200 and count as one call
//! of the org's daily allocation: one call per effect wastes the latency budget and the limit.
//!
//! Failure mapping: an operation answers per input (`BatchAnswer::Each`: per-input errors go
//! to the right caller) or for the whole call (`BatchAnswer::Whole`: a 429 / 5xx / timeout
//! fails every caller with that class, so the ledger and retry logic see exactly what they
//! would have seen for a single call). A whole-call 4xx cannot say which input was bad: the
//! inputs are then retried one by one, so only the bad one is rejected.
//!
//! The batch call runs on a spawned task: a caller whose future is dropped (timeout, shutdown)
//! never strands the other callers of its batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::oneshot;

use wabridge_core::crm::CrmError;

/// What a batch call answered.
pub(crate) enum BatchAnswer<O> {
    /// One result per input, in input order.
    Each(Vec<Result<O, CrmError>>),
    /// The call as a whole failed (429, 5xx, timeout, or a 4xx naming no input).
    Whole(CrmError),
}

#[async_trait]
pub(crate) trait BatchOp: Send + Sync + 'static {
    type Input: Send + Sync + 'static;
    type Output: Send + 'static;
    /// Makes one call for all `inputs` (never more than the batcher's maximum).
    async fn run(&self, inputs: &[Self::Input]) -> BatchAnswer<Self::Output>;
    /// Waits, after the linger, until a call could leave (a rate pacer's next turn), so the
    /// batch taken then holds everything that arrived while the CRM's rate held it back.
    async fn gate(&self) {}
}

/// Counters of one batcher (for tests, benchmarks and logs).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchStats {
    /// Calls made (including one-by-one retries after a whole-call 4xx).
    pub calls: u64,
    /// Inputs submitted.
    pub inputs: u64,
    /// Largest batch sent.
    pub largest: u64,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    inputs: AtomicU64,
    largest: AtomicU64,
}

type Waiter<Op> = (
    <Op as BatchOp>::Input,
    oneshot::Sender<Result<<Op as BatchOp>::Output, CrmError>>,
);

struct Pending<Op: BatchOp> {
    items: Vec<Waiter<Op>>,
    /// Bumped whenever the pending batch is taken, so a stale linger timer flushes nothing.
    generation: u64,
}

struct Shared<Op: BatchOp> {
    op: Op,
    max: usize,
    linger: Duration,
    pending: Mutex<Pending<Op>>,
    counters: Counters,
}

pub(crate) struct Batcher<Op: BatchOp> {
    shared: Arc<Shared<Op>>,
}

impl<Op: BatchOp> Batcher<Op> {
    /// `max` inputs per call (HubSpot: 100, Kommo: 250); a batch leaves when full or `linger` after its
    /// first input arrived.
    pub fn new(op: Op, max: usize, linger: Duration) -> Self {
        Batcher {
            shared: Arc::new(Shared {
                op,
                max: max.max(1),
                linger,
                pending: Mutex::new(Pending {
                    items: Vec::new(),
                    generation: 0,
                }),
                counters: Counters::default(),
            }),
        }
    }

    #[cfg(test)]
    pub fn op(&self) -> &Op {
        &self.shared.op
    }

    pub fn stats(&self) -> BatchStats {
        let c = &self.shared.counters;
        BatchStats {
            calls: c.calls.load(Ordering::Relaxed),
            inputs: c.inputs.load(Ordering::Relaxed),
            largest: c.largest.load(Ordering::Relaxed),
        }
    }

    /// Adds `input` to the next batch and waits for its own result.
    pub async fn submit(&self, input: Op::Input) -> Result<Op::Output, CrmError> {
        let (tx, rx) = oneshot::channel();
        let full = {
            let mut p = self.shared.pending.lock().unwrap();
            p.items.push((input, tx));
            if p.items.len() >= self.shared.max {
                p.generation += 1;
                Some(std::mem::take(&mut p.items))
            } else {
                if p.items.len() == 1 {
                    let generation = p.generation;
                    let shared = self.shared.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(shared.linger).await;
                        shared.op.gate().await;
                        let items = {
                            let mut p = shared.pending.lock().unwrap();
                            if p.generation != generation || p.items.is_empty() {
                                return;
                            }
                            p.generation += 1;
                            std::mem::take(&mut p.items)
                        };
                        run(&shared, items).await;
                    });
                }
                None
            }
        };
        if let Some(items) = full {
            let shared = self.shared.clone();
            tokio::spawn(async move { run(&shared, items).await });
        }
        rx.await.unwrap_or_else(|_| {
            Err(CrmError::Transient(
                "batch call ended without an answer".into(),
            ))
        })
    }
}

async fn run<Op: BatchOp>(shared: &Shared<Op>, items: Vec<Waiter<Op>>) {
    let n = items.len();
    let (inputs, waiters): (Vec<Op::Input>, Vec<_>) = items.into_iter().unzip();
    let c = &shared.counters;
    c.calls.fetch_add(1, Ordering::Relaxed);
    c.inputs.fetch_add(n as u64, Ordering::Relaxed);
    c.largest.fetch_max(n as u64, Ordering::Relaxed);
    let results = match shared.op.run(&inputs).await {
        BatchAnswer::Each(results) if results.len() == n => results,
        BatchAnswer::Each(results) => {
            let e = CrmError::Transient(format!(
                "batch answered {} results for {n} inputs",
                results.len()
            ));
            (0..n).map(|_| Err(e.clone())).collect()
        }
        BatchAnswer::Whole(CrmError::Rejected(why)) if n > 1 => {
            // A 4xx for the whole call: find the culprit(s) by sending each input alone.
            tracing::warn!(inputs = n, error = %why, "crm: batch rejected; retrying its inputs one by one");
            c.calls.fetch_add(n as u64, Ordering::Relaxed);
            let alone = inputs
                .chunks(1)
                .map(|one| async move { shared.op.run(one).await });
            futures::future::join_all(alone)
                .await
                .into_iter()
                .map(|answer| match answer {
                    BatchAnswer::Each(mut v) if v.len() == 1 => v.pop().unwrap(),
                    BatchAnswer::Each(v) => Err(CrmError::Transient(format!(
                        "batch answered {} results for 1 input",
                        v.len()
                    ))),
                    BatchAnswer::Whole(e) => Err(e),
                })
                .collect()
        }
        BatchAnswer::Whole(e) => (0..n).map(|_| Err(e.clone())).collect(),
    };
    for (tx, result) in waiters.into_iter().zip(results) {
        // A caller that gave up dropped its receiver: nothing to tell it.
        let _ = tx.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echoes inputs; odd numbers are rejected per input; `13` makes the whole call a 4xx;
    /// `99` makes it a 503.
    struct Echo {
        calls: Mutex<Vec<Vec<u32>>>,
    }

    #[async_trait]
    impl BatchOp for Echo {
        type Input = u32;
        type Output = u32;
        async fn run(&self, inputs: &[u32]) -> BatchAnswer<u32> {
            self.calls.lock().unwrap().push(inputs.to_vec());
            tokio::time::sleep(Duration::from_millis(5)).await;
            if inputs.contains(&99) {
                return BatchAnswer::Whole(CrmError::Transient("HTTP 503".into()));
            }
            if inputs.contains(&13) {
                return BatchAnswer::Whole(CrmError::Rejected("HTTP 400".into()));
            }
            BatchAnswer::Each(
                inputs
                    .iter()
                    .map(|i| {
                        if i % 2 == 1 {
                            Err(CrmError::Rejected(format!("odd {i}")))
                        } else {
                            Ok(i * 10)
                        }
                    })
                    .collect(),
            )
        }
    }

    fn batcher(max: usize) -> Arc<Batcher<Echo>> {
        Arc::new(Batcher::new(
            Echo {
                calls: Mutex::new(vec![]),
            },
            max,
            Duration::from_millis(20),
        ))
    }

    async fn submit_all(b: &Arc<Batcher<Echo>>, inputs: &[u32]) -> Vec<Result<u32, CrmError>> {
        let handles: Vec<_> = inputs
            .iter()
            .map(|i| {
                let b = b.clone();
                let i = *i;
                tokio::spawn(async move { b.submit(i).await })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn concurrent_callers_share_calls_and_get_their_own_results() {
        let b = batcher(100);
        let inputs: Vec<u32> = (0..250).map(|i| i * 2).collect();
        let results = submit_all(&b, &inputs).await;
        for (i, r) in inputs.iter().zip(results) {
            assert_eq!(r, Ok(i * 10));
        }
        let s = b.stats();
        assert_eq!(s.inputs, 250);
        assert_eq!(s.largest, 100);
        assert!(s.calls <= 4, "{s:?}");
        assert!(b.op().calls.lock().unwrap().iter().all(|c| c.len() <= 100));
    }

    #[tokio::test]
    async fn per_input_and_whole_call_errors_reach_the_right_callers() {
        let b = batcher(100);
        let results = submit_all(&b, &[2, 3, 4]).await;
        assert_eq!(results[0], Ok(20));
        assert_eq!(results[1], Err(CrmError::Rejected("odd 3".into())));
        assert_eq!(results[2], Ok(40));
        // A 5xx fails every caller of the batch with the transient class.
        let results = submit_all(&b, &[2, 99, 4]).await;
        assert!(results
            .iter()
            .all(|r| matches!(r, Err(CrmError::Transient(_)))));
        // A whole-call 4xx: inputs are retried alone, only the culprit is rejected.
        let results = submit_all(&b, &[6, 13, 8]).await;
        assert_eq!(results[0], Ok(60));
        assert!(matches!(&results[1], Err(CrmError::Rejected(m)) if m.contains("400")));
        assert_eq!(results[2], Ok(80));
    }

    #[tokio::test]
    async fn a_lone_input_leaves_after_the_linger() {
        let b = batcher(100);
        let started = std::time::Instant::now();
        assert_eq!(b.submit(2).await, Ok(20));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(20), "{waited:?}");
        assert_eq!(b.stats().calls, 1);
    }
}
