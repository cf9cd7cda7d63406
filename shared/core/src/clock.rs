//! The wall clock, read in one place: Unix time in milliseconds. Services that need a test
//! clock take a `fn() -> i64` (or the engine's `Clock`) defaulting to [`now_ms`].

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch (TTL attributes, signature timestamps).
pub fn now_secs() -> i64 {
    now_ms() / 1000
}
