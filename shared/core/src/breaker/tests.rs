use super::*;

fn breaker() -> (CircuitBreaker, Clock) {
    let clock = Clock::manual(1_000_000);
    (CircuitBreaker::new("crm").with_clock(clock.clone()), clock)
}

fn open(b: &CircuitBreaker) {
    for _ in 0..OPEN_AFTER {
        assert_eq!(b.admit(), Admit::Go);
        b.failure(false);
    }
}

#[test]
fn it_opens_after_failures_in_a_row_and_a_success_resets_the_count() {
    let (b, _) = breaker();
    for _ in 0..OPEN_AFTER - 1 {
        b.failure(false);
    }
    b.success(false);
    for _ in 0..OPEN_AFTER - 1 {
        b.failure(false);
    }
    assert_eq!(
        b.admit(),
        Admit::Go,
        "a success in between resets the count"
    );
    assert_eq!(b.gate(), None);
    b.failure(false);
    assert!(matches!(b.admit(), Admit::Wait(d) if d <= Duration::from_secs(1)));
    assert!(b.gate().is_some());
    assert_eq!(b.stats().openings, 1);
}

#[test]
fn one_probe_per_period_and_periods_double_up_to_the_cap() {
    let (b, clock) = breaker();
    open(&b);
    for n in 1..=14u32 {
        let Admit::Wait(wait) = b.admit() else {
            panic!("period {n}: open circuit admitted a call before its period ended")
        };
        let full = Duration::from_secs(1 << (n - 1)).min(MAX_PERIOD);
        assert!(wait <= full && wait >= full * 3 / 4, "period {n}: {wait:?}");
        clock.advance(wait);
        assert_eq!(b.admit(), Admit::Probe, "period {n}");
        // While the probe runs, nobody else calls.
        assert!(matches!(b.admit(), Admit::Wait(_)));
        assert_eq!(b.gate(), Some(PROBE_LEASE));
        b.failure(true);
    }
    assert_eq!(b.stats().probes, 14);
    assert_eq!(b.stats().openings, 1);
}

#[test]
fn a_probe_that_succeeds_closes_the_circuit_and_counts_a_closing() {
    let (b, clock) = breaker();
    open(&b);
    clock.advance(Duration::from_secs(1));
    assert_eq!(b.admit(), Admit::Probe);
    assert_eq!(b.closings(), 0);
    b.success(true);
    assert_eq!(b.admit(), Admit::Go);
    assert_eq!(b.gate(), None);
    assert_eq!(b.closings(), 1);
    // Closed again: it takes another run of failures to open it.
    b.failure(false);
    assert_eq!(b.admit(), Admit::Go);
}

#[test]
fn a_vanished_probe_lets_another_probe_after_its_lease() {
    let (b, clock) = breaker();
    open(&b);
    clock.advance(Duration::from_secs(1));
    assert_eq!(b.admit(), Admit::Probe);
    clock.advance(PROBE_LEASE - Duration::from_millis(1));
    assert!(matches!(b.admit(), Admit::Wait(_)));
    clock.advance(Duration::from_millis(1));
    assert_eq!(b.admit(), Admit::Probe);
}

#[test]
fn late_failures_of_calls_admitted_before_it_opened_do_not_extend_the_period() {
    let (b, clock) = breaker();
    open(&b);
    let Admit::Wait(wait) = b.admit() else {
        panic!("open")
    };
    for _ in 0..10 {
        b.failure(false);
    }
    clock.advance(wait);
    assert_eq!(b.admit(), Admit::Probe);
}
