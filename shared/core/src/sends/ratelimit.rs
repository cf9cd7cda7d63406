//! Throughput limits of one business phone number, shared by every worker of a process:
//!
//! - **per number**: at most `per_second` messages a second (Meta's default is 80/s; 20/s for
//!   numbers also used in the Business app; up to 1,000/s after an upgrade). Slots are handed out
//!   on a fixed schedule (GCRA: one slot every `1/per_second`, no burst), so the rate holds
//!   however many workers ask at once;
//! - **per recipient (pair rate)**: at most one message every `pair_interval` (Meta: about one
//!   per 6 s) to the same user. A send that would break it is not delayed in the worker (that
//!   would hold a slot and a worker for seconds): [`RateLimiter::acquire`] answers
//!   [`Acquired::PairLimited`] with the wait, and the caller puts the send back on the queue.
//!
//! The limits are per process. In the Lambda engine each concurrent sender instance has its own
//! limiter: set `WABRIDGE_SENDER_INSTANCES` to the sender's SQS `MaximumConcurrency` so each
//! instance takes `per_second / instances` (see [`RateLimiter::for_instances`]). The pair rate
//! across instances is held by the send store's pair window
//! ([`crate::sends::store::SendStore::reserve_pair`]), which the sender takes after this
//! limiter's slot; the in-memory check here spares that write and a number slot for most
//! pair-limited sends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::sends::classify::PAIR_RATE_DELAY;

/// Meta's default throughput of a business number.
pub const DEFAULT_PER_SECOND: f64 = 80.0;

/// The answer to a request for a send slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// Send at this instant (the caller sleeps until then: [`RateLimiter::wait`] does both).
    At(Instant),
    /// The recipient got a message less than `pair_interval` ago: try again after this long.
    PairLimited(Duration),
}

struct State {
    /// Theoretical arrival time: the earliest instant the next slot may be given.
    next_slot: Instant,
    /// Per recipient, the earliest instant of its next message.
    pair_next: HashMap<String, Instant>,
}

pub struct RateLimiter {
    interval: Duration,
    pair_interval: Duration,
    state: Mutex<State>,
}

impl RateLimiter {
    /// `per_second` messages a second for the number, one message per `pair_interval` per
    /// recipient.
    pub fn new(per_second: f64, pair_interval: Duration) -> RateLimiter {
        let per_second = if per_second.is_finite() && per_second > 0.0 {
            per_second
        } else {
            DEFAULT_PER_SECOND
        };
        RateLimiter {
            interval: Duration::from_secs_f64(1.0 / per_second),
            pair_interval,
            state: Mutex::new(State {
                next_slot: Instant::now(),
                pair_next: HashMap::new(),
            }),
        }
    }

    /// The share of one of `instances` concurrent processes (Lambda instances) of a number's
    /// `per_second`.
    pub fn for_instances(per_second: f64, instances: u32) -> RateLimiter {
        RateLimiter::new(per_second / f64::from(instances.max(1)), PAIR_RATE_DELAY)
    }

    /// The least time between two messages to one recipient.
    pub fn pair_interval(&self) -> Duration {
        self.pair_interval
    }

    /// Messages a second this limiter gives out.
    pub fn per_second(&self) -> f64 {
        1.0 / self.interval.as_secs_f64()
    }

    /// Reserves the next slot of the number for `recipient`, or says how long the pair rate
    /// asks to wait. A pair-limited request takes no number slot.
    pub fn acquire(&self, recipient: &str) -> Acquired {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let slot = state.next_slot.max(now);
        if let Some(&next) = state.pair_next.get(recipient) {
            if next > slot {
                return Acquired::PairLimited(next - now);
            }
        }
        state.next_slot = slot + self.interval;
        if state.pair_next.len() > 10_000 {
            // Forget recipients whose pair window is over; bounded memory under long bursts.
            state.pair_next.retain(|_, next| *next > now);
        }
        state
            .pair_next
            .insert(recipient.to_string(), slot + self.pair_interval);
        Acquired::At(slot)
    }

    /// [`acquire`](Self::acquire), then sleeps until the slot. `Err(wait)` when pair-limited.
    pub async fn wait(&self, recipient: &str) -> Result<(), Duration> {
        match self.acquire(recipient) {
            Acquired::At(at) => {
                tokio::time::sleep_until(at).await;
                Ok(())
            }
            Acquired::PairLimited(wait) => Err(wait),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_follow_the_configured_rate() {
        let limiter = RateLimiter::new(80.0, Duration::from_secs(6));
        let start = Instant::now();
        let mut last = start;
        for i in 0..160 {
            match limiter.acquire(&format!("r{i}")) {
                Acquired::At(at) => last = at,
                other => panic!("{other:?}"),
            }
        }
        // 160 slots at 80/s: the last one 159/80 s after the first.
        let span = last - start;
        assert!(
            (span.as_secs_f64() - 159.0 / 80.0).abs() < 0.001,
            "{span:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pair_limit_refuses_without_taking_a_slot() {
        let limiter = RateLimiter::new(10.0, Duration::from_secs(6));
        assert!(matches!(limiter.acquire("a"), Acquired::At(_)));
        match limiter.acquire("a") {
            Acquired::PairLimited(wait) => {
                assert!(wait <= Duration::from_secs(6) && wait > Duration::from_secs(5))
            }
            other => panic!("{other:?}"),
        }
        // "b" gets the second slot (0.1 s), not the third: the refused request took none.
        let now = Instant::now();
        match limiter.acquire("b") {
            Acquired::At(at) => assert_eq!(at - now, Duration::from_millis(100)),
            other => panic!("{other:?}"),
        }
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(matches!(limiter.acquire("a"), Acquired::At(_)));
    }

    #[test]
    fn instances_share_the_number_rate() {
        let l = RateLimiter::for_instances(80.0, 4);
        assert!((l.per_second() - 20.0).abs() < 1e-9);
        assert!((RateLimiter::new(0.0, PAIR_RATE_DELAY).per_second() - 80.0).abs() < 1e-9);
    }
}
