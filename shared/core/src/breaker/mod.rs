//! A circuit breaker per downstream service (the CRM, the Graph API): while every call fails,
//! consumers stop hammering it with their full concurrency and probe it with one call per
//! period instead; the first probe that succeeds closes the circuit and the backlog drains at
//! full speed.
//!
//! - **Closed**: calls go through. [`OPEN_AFTER`] transient failures in a row (no success in
//!   between, across every delivery of the process) open it. 20, not 5: a CRM that fails 30 %
//!   of calls is up, and with 64 calls in flight five failures in a row happen every few hundred
//!   calls; twenty in a row at 30 % is a one-in-10^10 event, and a real outage makes them in
//!   well under a second.
//! - **Open**: calls wait ([`Admit::Wait`]) until the period ends; then one call is the probe
//!   ([`Admit::Probe`]; others keep waiting while it runs, for at most [`PROBE_LEASE`]). A failed
//!   probe opens the next period, twice as long (1 s, 2 s ... up to [`MAX_PERIOD`], with
//!   jitter); a successful one closes the circuit.
//!
//! The local worker also reads [`CircuitBreaker::gate`] to receive one delivery at a time while
//! the circuit is open, and [`CircuitBreaker::closings`] to release the deliveries that were
//! waiting out a retry delay once it closes. Lambda instances share no memory: each instance has
//! its breaker, and the event source's maximum concurrency bounds how many probe at once (see
//! the template).

use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Clock;
use crate::retry::describe;

/// Transient failures in a row that open the circuit.
pub const OPEN_AFTER: u32 = 20;
/// Longest open period between two probes.
pub const MAX_PERIOD: Duration = Duration::from_secs(5 * 60);
/// How long one probe holds the circuit (longer than any call's timeout): a probe whose caller
/// vanished (a crash) lets another probe after this.
pub const PROBE_LEASE: Duration = Duration::from_secs(60);

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// The circuit is closed: call.
    Go,
    /// The circuit is open and this call is its probe: call once, then report.
    Probe,
    /// The circuit is open: do not call; try again after this long.
    Wait(Duration),
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed {
        failures: u32,
    },
    Open {
        /// Unix ms when the next probe may start.
        until_ms: i64,
        /// How many periods it has been open (the next period's exponent).
        periods: u32,
        /// Unix ms until which a probe is running, 0 when none.
        probe_until_ms: i64,
        since_ms: i64,
    },
}

#[derive(Debug)]
struct State {
    phase: Phase,
    closings: u64,
    openings: u64,
    probes: u64,
}

/// One downstream service's breaker, shared by every delivery of a process.
#[derive(Debug)]
pub struct CircuitBreaker {
    name: &'static str,
    clock: Clock,
    state: Mutex<State>,
}

/// Counters, for tests, `wabridge stats` and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerStats {
    pub open: bool,
    /// Times the circuit opened.
    pub openings: u64,
    /// Probes started.
    pub probes: u64,
    /// Times it closed again.
    pub closings: u64,
}

impl CircuitBreaker {
    /// A closed breaker for the service `name` (`crm`, `graph`), on the system clock.
    pub fn new(name: &'static str) -> Self {
        CircuitBreaker {
            name,
            clock: Clock::System,
            state: Mutex::new(State {
                phase: Phase::Closed { failures: 0 },
                closings: 0,
                openings: 0,
                probes: 0,
            }),
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-written (plain copies).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a call may go now; a [`Admit::Probe`] must be followed by
    /// [`CircuitBreaker::success`] or [`CircuitBreaker::failure`] with `probe: true`.
    pub fn admit(&self) -> Admit {
        let now = self.clock.now_ms();
        let mut s = self.lock();
        match &mut s.phase {
            Phase::Closed { .. } => Admit::Go,
            Phase::Open {
                until_ms,
                probe_until_ms,
                ..
            } => {
                if now < *until_ms {
                    return Admit::Wait(ms(*until_ms - now));
                }
                if now < *probe_until_ms {
                    return Admit::Wait(ms(*probe_until_ms - now));
                }
                *probe_until_ms = now + PROBE_LEASE.as_millis() as i64;
                s.probes += 1;
                Admit::Probe
            }
        }
    }

    /// What the worker may receive now: `None` = as many as it likes (closed); `Some(wait)` =
    /// nothing before `wait` has passed (open; zero when a probe may start).
    pub fn gate(&self) -> Option<Duration> {
        let now = self.clock.now_ms();
        match self.lock().phase {
            Phase::Closed { .. } => None,
            Phase::Open {
                until_ms,
                probe_until_ms,
                ..
            } => Some(ms(until_ms.max(probe_until_ms) - now)),
        }
    }

    /// A call went through (the service answered, even with a refusal of the record).
    pub fn success(&self, probe: bool) {
        let now = self.clock.now_ms();
        let mut s = self.lock();
        match s.phase {
            Phase::Closed { .. } => s.phase = Phase::Closed { failures: 0 },
            // Usually the probe's success; a call admitted before the circuit opened that
            // succeeds late proves the service is back just as well.
            Phase::Open { since_ms, .. } => {
                s.phase = Phase::Closed { failures: 0 };
                s.closings += 1;
                tracing::warn!(
                    service = self.name,
                    probe,
                    unavailable_for = %describe(ms(now - since_ms)),
                    metric = "circuit_closed",
                    "{} available again: circuit closed", self.name
                );
            }
        }
    }

    /// A call failed in a way that says the service is unavailable (5xx, timeout, refused
    /// connection, 429, broken credentials).
    pub fn failure(&self, probe: bool) {
        let now = self.clock.now_ms();
        let mut s = self.lock();
        match s.phase {
            Phase::Closed { failures } if failures + 1 >= OPEN_AFTER => {
                let period = period(1);
                s.phase = Phase::Open {
                    until_ms: now + period.as_millis() as i64,
                    periods: 1,
                    probe_until_ms: 0,
                    since_ms: now,
                };
                s.openings += 1;
                tracing::error!(
                    service = self.name,
                    failures = failures + 1,
                    metric = "circuit_open",
                    "{} unavailable: circuit open, probing with one call every {} or more",
                    self.name,
                    describe(period)
                );
            }
            Phase::Closed { failures } => {
                s.phase = Phase::Closed {
                    failures: failures + 1,
                }
            }
            Phase::Open {
                periods, since_ms, ..
            } if probe => {
                let period = period(periods + 1);
                s.phase = Phase::Open {
                    until_ms: now + period.as_millis() as i64,
                    periods: periods + 1,
                    probe_until_ms: 0,
                    since_ms,
                };
                tracing::warn!(
                    service = self.name,
                    unavailable_for = %describe(ms(now - since_ms)),
                    next_probe_in = %describe(period),
                    metric = "circuit_open",
                    "{} still unavailable", self.name
                );
            }
            // A call admitted before the circuit opened: the period already counts it.
            Phase::Open { .. } => {}
        }
    }

    /// Times the circuit closed after being open: the worker releases waiting deliveries when
    /// this moves.
    pub fn closings(&self) -> u64 {
        self.lock().closings
    }

    pub fn stats(&self) -> BreakerStats {
        let s = self.lock();
        BreakerStats {
            open: matches!(s.phase, Phase::Open { .. }),
            openings: s.openings,
            probes: s.probes,
            closings: s.closings,
        }
    }
}

fn ms(v: i64) -> Duration {
    Duration::from_millis(v.max(0) as u64)
}

/// The `n`th open period: 1 s doubling up to [`MAX_PERIOD`], drawn in `[3/4, 1]` of it.
fn period(n: u32) -> Duration {
    let full = (1000u64 << n.saturating_sub(1).min(20)).min(MAX_PERIOD.as_millis() as u64);
    Duration::from_millis(rand::random_range(full - full / 4..=full))
}

#[cfg(test)]
mod tests;
