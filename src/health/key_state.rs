//! `KeyState`: one key's health as a pure state machine (no actix, no I/O).

use super::window::{DayCounter, MinuteWindow};
use chrono::NaiveDate;
use std::time::{Duration, Instant};

/// Consecutive failures at which a key is unhealthy and skipped.
pub const UNHEALTHY_AFTER: u32 = 3;
/// Consecutive authentication failures at which a key is disabled.
pub const DISABLE_AFTER_AUTH_FAILURES: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }

    pub fn from_failures(failures: u32) -> Self {
        match failures {
            0 => HealthStatus::Healthy,
            n if n < UNHEALTHY_AFTER => HealthStatus::Degraded,
            _ => HealthStatus::Unhealthy,
        }
    }
}

/// What an upstream call did to the key that served it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Success,
    Failure { kind: FailureKind, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FailureKind {
    /// Connect error, timeout, 5xx.
    Transient,
    /// 429: also rest the key until the provider's `Retry-After`.
    RateLimited { retry_after: Duration },
    /// 401/403: the key itself is bad.
    Auth,
}

/// Why a key cannot take a request right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Disabled,
    Unhealthy,
    Resting,
    MinuteLimit,
    DailyLimit,
}

/// What a failure led to, for the actor to act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Consequence {
    None,
    /// Third consecutive authentication failure: take the key out of service.
    Disable,
}

#[derive(Debug, Default)]
pub struct KeyState {
    failures: u32,
    auth_failures: u32,
    disabled: bool,
    cooldown_until: Option<Instant>,
    probe_in_flight: bool,
    rest_until: Option<Instant>,
    minute: MinuteWindow,
    day: DayCounter,
    pub last_used: Option<chrono::DateTime<chrono::Utc>>,
    pub last_error: Option<String>,
}

impl KeyState {
    pub fn with_failures(failures: u32) -> Self {
        KeyState {
            failures,
            ..KeyState::default()
        }
    }

    pub fn status(&self) -> HealthStatus {
        HealthStatus::from_failures(self.failures)
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn counts(&mut self, now: Instant, today: NaiveDate) -> (u32, u32) {
        (self.minute.count(now), self.day.count(today))
    }

    /// Whether the key may take a request now, given its limits.
    pub fn check(
        &mut self,
        limits: (Option<u32>, Option<u32>),
        now: Instant,
        today: NaiveDate,
    ) -> Result<(), Skip> {
        if self.disabled {
            return Err(Skip::Disabled);
        }
        if self.rest_until.is_some_and(|t| now < t) {
            return Err(Skip::Resting);
        }
        if self.status() == HealthStatus::Unhealthy
            && (self.probe_in_flight || self.cooldown_until.is_some_and(|t| now < t))
        {
            return Err(Skip::Unhealthy);
        }
        if limits
            .0
            .is_some_and(|limit| self.minute.count(now) >= limit)
        {
            return Err(Skip::MinuteLimit);
        }
        if limits.1.is_some_and(|limit| self.day.count(today) >= limit) {
            return Err(Skip::DailyLimit);
        }
        Ok(())
    }

    /// Counts a request against the key. An unhealthy key past its cool-down takes this as its probe.
    pub fn take(&mut self, now: Instant, today: NaiveDate, wall: chrono::DateTime<chrono::Utc>) {
        if self.status() == HealthStatus::Unhealthy {
            self.probe_in_flight = true;
        }
        self.minute.record(now);
        self.day.record(today);
        self.last_used = Some(wall);
    }

    pub fn succeed(&mut self) {
        self.failures = 0;
        self.auth_failures = 0;
        self.probe_in_flight = false;
        self.cooldown_until = None;
    }

    pub fn fail(
        &mut self,
        kind: FailureKind,
        message: String,
        now: Instant,
        cooldown: Duration,
    ) -> Consequence {
        self.failures = self.failures.saturating_add(1);
        self.probe_in_flight = false;
        self.last_error = Some(message);
        if self.status() == HealthStatus::Unhealthy {
            self.cooldown_until = Some(now + cooldown);
        }
        match kind {
            FailureKind::RateLimited { retry_after } => self.rest_until = Some(now + retry_after),
            FailureKind::Auth => {
                self.auth_failures += 1;
                if self.auth_failures >= DISABLE_AFTER_AUTH_FAILURES && !self.disabled {
                    self.disabled = true;
                    return Consequence::Disable;
                }
                return Consequence::None;
            }
            FailureKind::Transient => {}
        }
        self.auth_failures = 0;
        Consequence::None
    }

    /// `reset-health`, or a key re-enabled by its owner: a clean slate, counters kept.
    pub fn reset(&mut self) {
        self.succeed();
        self.disabled = false;
        self.rest_until = None;
        self.last_error = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(60);

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).expect("date")
    }

    fn fail(key: &mut KeyState, now: Instant) -> Consequence {
        key.fail(FailureKind::Transient, "500".into(), now, COOLDOWN)
    }

    #[test]
    fn failures_degrade_then_disable_routing_until_one_probe_after_the_cooldown() {
        let t0 = Instant::now();
        let mut key = KeyState::default();
        fail(&mut key, t0);
        assert_eq!(key.status(), HealthStatus::Degraded);
        assert!(
            key.check((None, None), t0, today()).is_ok(),
            "degraded keys still serve"
        );
        fail(&mut key, t0);
        fail(&mut key, t0);
        assert_eq!(key.status(), HealthStatus::Unhealthy);
        assert_eq!(
            key.check((None, None), t0 + Duration::from_secs(59), today()),
            Err(Skip::Unhealthy)
        );

        let after = t0 + COOLDOWN;
        assert!(key.check((None, None), after, today()).is_ok());
        key.take(after, today(), chrono::Utc::now());
        assert_eq!(
            key.check((None, None), after, today()),
            Err(Skip::Unhealthy),
            "one probe at a time"
        );
        key.succeed();
        assert_eq!(key.status(), HealthStatus::Healthy);
    }

    #[test]
    fn a_failed_probe_restarts_the_cooldown() {
        let t0 = Instant::now();
        let mut key = KeyState::with_failures(3);
        key.take(t0, today(), chrono::Utc::now());
        fail(&mut key, t0);
        assert_eq!(
            key.check((None, None), t0 + Duration::from_secs(30), today()),
            Err(Skip::Unhealthy)
        );
        assert!(key.check((None, None), t0 + COOLDOWN, today()).is_ok());
    }

    #[test]
    fn a_429_rests_the_key_for_retry_after() {
        let t0 = Instant::now();
        let mut key = KeyState::default();
        key.fail(
            FailureKind::RateLimited {
                retry_after: Duration::from_secs(7),
            },
            "429".into(),
            t0,
            COOLDOWN,
        );
        assert_eq!(
            key.check((None, None), t0 + Duration::from_secs(6), today()),
            Err(Skip::Resting)
        );
        assert!(
            key.check((None, None), t0 + Duration::from_secs(7), today())
                .is_ok()
        );
    }

    #[test]
    fn three_auth_failures_in_a_row_disable_the_key_once() {
        let t0 = Instant::now();
        let mut key = KeyState::default();
        let auth = |key: &mut KeyState| key.fail(FailureKind::Auth, "401".into(), t0, COOLDOWN);
        assert_eq!(auth(&mut key), Consequence::None);
        fail(&mut key, t0);
        assert_eq!(
            auth(&mut key),
            Consequence::None,
            "a transient failure broke the run"
        );
        assert_eq!(auth(&mut key), Consequence::None);
        assert_eq!(auth(&mut key), Consequence::Disable);
        assert_eq!(auth(&mut key), Consequence::None, "disabled only once");
        assert_eq!(
            key.check((None, None), t0 + COOLDOWN * 10, today()),
            Err(Skip::Disabled)
        );
        key.reset();
        assert!(key.check((None, None), t0, today()).is_ok());
    }

    #[test]
    fn minute_and_daily_limits_are_never_exceeded() {
        let t0 = Instant::now();
        let mut key = KeyState::default();
        for _ in 0..2 {
            assert!(key.check((Some(2), Some(3)), t0, today()).is_ok());
            key.take(t0, today(), chrono::Utc::now());
        }
        assert_eq!(
            key.check((Some(2), Some(3)), t0, today()),
            Err(Skip::MinuteLimit)
        );
        let later = t0 + Duration::from_secs(61);
        key.take(later, today(), chrono::Utc::now());
        assert_eq!(
            key.check((Some(2), Some(3)), later, today()),
            Err(Skip::DailyLimit)
        );
    }
}
