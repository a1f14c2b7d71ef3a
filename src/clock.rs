//! `Clock`: the one source of "now", wall and monotonic, so tests can move time forward.
//!
//! Decisions that depend on time (expiry, budget periods, rate windows, key cool-downs and daily
//! limits) read it; clippy's `disallowed-methods` keeps `Utc::now` and `Instant::now` out of the
//! rest of the tree. Measuring how long something took (latency, spans) is the one exception,
//! and says so where it happens.

use chrono::{DateTime, NaiveDate, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A real-time reading for measuring how long something takes (latency, spans). Never for
/// deciding anything: that is what [`Clock`] is for.
pub fn stopwatch() -> Instant {
    #[expect(clippy::disallowed_methods, reason = "measuring, not deciding")]
    let now = Instant::now();
    now
}

/// Unix seconds of real time, for stamping a translated answer's `created`; never for deciding
/// anything.
pub fn unix_now() -> i64 {
    #[expect(
        clippy::disallowed_methods,
        reason = "a display timestamp, not a decision"
    )]
    let now = Utc::now();
    now.timestamp()
}

/// Whole seconds of real time since the first call, for "at most every N seconds" throttles.
pub fn stopwatch_secs() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(stopwatch).elapsed().as_secs()
}

/// Real time plus an offset that only tests change. Cloning shares the offset.
#[derive(Clone, Default, Debug)]
pub struct Clock {
    offset_ms: Arc<AtomicU64>,
}

impl Clock {
    fn offset(&self) -> Duration {
        Duration::from_millis(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Wall-clock time.
    pub fn now(&self) -> DateTime<Utc> {
        #[expect(clippy::disallowed_methods, reason = "the clock itself")]
        let real = Utc::now();
        real + self.offset()
    }

    /// The UTC calendar day (keys' daily limits and spend).
    pub fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }

    /// Monotonic time, moved by the same offset (cool-downs, rate windows, idleness).
    pub fn instant(&self) -> Instant {
        #[expect(clippy::disallowed_methods, reason = "the clock itself")]
        let real = Instant::now();
        real + self.offset()
    }

    /// Moves this clock (and every clone) forward, wall and monotonic alike. For tests.
    pub fn advance(&self, by: chrono::Duration) {
        let ms = u64::try_from(by.num_milliseconds()).unwrap_or(0);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_clone_wall_and_monotonic() {
        let clock = Clock::default();
        let clone = clock.clone();
        let (wall, mono) = (clone.now(), clone.instant());
        clock.advance(chrono::Duration::hours(2));
        assert!(clone.now() - wall >= chrono::Duration::minutes(119));
        assert!(clone.instant() - mono >= Duration::from_secs(119 * 60));
    }
}
