//! `KeyState`: one key's health as a pure state machine (no actix, no I/O).

use super::shared::SharedState;
use super::window::{DayCounter, MinuteWindow};
use crate::money::Money;
use chrono::{Datelike, NaiveDate};
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
    /// The key served the request, which cost `cost`.
    Served {
        cost: Money,
    },
    Failure {
        kind: FailureKind,
        message: String,
    },
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
    SpendLimit,
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
    spend: SpendCounter,
    /// The key's spend limit as its last request saw it, for the alert when spend reaches it.
    pub spend_limit: Option<SpendBlock>,
}

/// A key's spend today and this calendar month (UTC), for `spend_limit_*`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SpendCounter {
    day: Option<NaiveDate>,
    today: Money,
    month: Option<(i32, u32)>,
    this_month: Money,
}

impl SpendCounter {
    pub fn seeded(today: Money, this_month: Money, now: NaiveDate) -> Self {
        SpendCounter {
            day: Some(now),
            today,
            month: Some((now.year(), now.month())),
            this_month,
        }
    }

    pub fn add(&mut self, cost: Money, now: NaiveDate) {
        let (today, month) = self.read(now);
        self.day = Some(now);
        self.month = Some((now.year(), now.month()));
        self.today = Money::from_nanos(today.nanos() + cost.nanos());
        self.this_month = Money::from_nanos(month.nanos() + cost.nanos());
    }

    /// (today, this month) as of `now`: a new day or month reads as zero.
    pub fn read(&self, now: NaiveDate) -> (Money, Money) {
        let today = if self.day == Some(now) {
            self.today
        } else {
            Money::ZERO
        };
        let month = if self.month == Some((now.year(), now.month())) {
            self.this_month
        } else {
            Money::ZERO
        };
        (today, month)
    }
}

/// A key's own limits, as its owner configured them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct KeyLimits {
    pub per_minute: Option<u32>,
    pub per_day: Option<u32>,
    /// Set when `spend_limit_action` is `block`.
    pub block: Option<SpendBlock>,
    /// The spend limit whatever its action: reaching it raises an alert.
    pub spend: Option<SpendBlock>,
}

/// A key's spend limit when its action is `block`: the amount, and whether it is daily.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpendBlock {
    pub limit: Money,
    pub daily: bool,
}

impl KeyState {
    /// A key as the database left it: failures, spend, and today's served requests.
    pub fn restored(failures: u32, spend: SpendCounter, day: DayCounter) -> Self {
        KeyState {
            failures,
            spend,
            day,
            ..KeyState::default()
        }
    }

    pub fn add_spend(&mut self, cost: Money, today: NaiveDate) {
        self.spend.add(cost, today);
    }

    pub fn spend(&self, today: NaiveDate) -> (Money, Money) {
        self.spend.read(today)
    }

    /// Whether spend has reached a key's block limit for its period.
    pub fn over_spend(&self, block: SpendBlock, today: NaiveDate) -> bool {
        let (day, month) = self.spend.read(today);
        let spent = if block.daily { day } else { month };
        spent >= block.limit
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
        limits: &KeyLimits,
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
            .per_minute
            .is_some_and(|limit| self.minute.count(now) >= limit)
        {
            return Err(Skip::MinuteLimit);
        }
        if limits
            .per_day
            .is_some_and(|limit| self.day.count(today) >= limit)
        {
            return Err(Skip::DailyLimit);
        }
        if limits.block.is_some_and(|b| self.over_spend(b, today)) {
            return Err(Skip::SpendLimit);
        }
        Ok(())
    }

    /// Counts a request against the key. An unhealthy key past its cool-down takes this as its
    /// probe (then `true`).
    pub fn take(
        &mut self,
        now: Instant,
        today: NaiveDate,
        wall: chrono::DateTime<chrono::Utc>,
    ) -> bool {
        let probe = self.status() == HealthStatus::Unhealthy;
        self.probe_in_flight |= probe;
        self.minute.record(now);
        self.day.record(today);
        self.last_used = Some(wall);
        probe
    }

    /// Takes back a `take` the other replicas refused: the key is at its shared limit, or
    /// another replica sends the probe (so this one waits out a cool-down, as if it had failed).
    pub fn untake(&mut self, probe: bool, now: Instant, today: NaiveDate, cooldown: Duration) {
        self.minute.unrecord();
        self.day.unrecord(today);
        if probe {
            self.probe_in_flight = false;
            self.cooldown_until = Some(now + cooldown);
        }
    }

    /// This key's log of requests, as (wall-clock ms of the last minute's, today's count), to
    /// replay into shared windows that lost theirs.
    pub fn shadow(&self, now: Instant, now_ms: i64, today: NaiveDate) -> (Vec<i64>, u32) {
        let minute = self
            .minute
            .ages(now)
            .map(|age| now_ms - age.as_millis() as i64)
            .collect();
        (minute, self.day.count(today))
    }

    /// Takes the replicas' shared view of failures, cool-down and rest. Returns whether the key's
    /// status changed.
    pub fn adopt(&mut self, shared: SharedState, now: Instant) -> bool {
        let before = self.status();
        self.failures = shared.failures;
        let until = |left: Duration| (!left.is_zero()).then(|| now + left);
        self.rest_until = until(shared.rest_left);
        if shared.failures == 0 {
            self.probe_in_flight = false;
            self.cooldown_until = None;
        } else if !self.probe_in_flight {
            self.cooldown_until = until(shared.cooldown_left);
        }
        before != self.status()
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
    const NONE: KeyLimits = KeyLimits {
        per_minute: None,
        per_day: None,
        block: None,
        spend: None,
    };

    fn wall() -> chrono::DateTime<chrono::Utc> {
        "2026-11-22T10:00:00Z".parse().expect("time")
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).expect("date")
    }

    fn fail(key: &mut KeyState, now: Instant) -> Consequence {
        key.fail(FailureKind::Transient, "500".into(), now, COOLDOWN)
    }

    #[test]
    fn failures_degrade_then_disable_routing_until_one_probe_after_the_cooldown() {
        let t0 = crate::clock::Clock::default().instant();
        let mut key = KeyState::default();
        fail(&mut key, t0);
        assert_eq!(key.status(), HealthStatus::Degraded);
        assert!(
            key.check(&NONE, t0, today()).is_ok(),
            "degraded keys still serve"
        );
        fail(&mut key, t0);
        fail(&mut key, t0);
        assert_eq!(key.status(), HealthStatus::Unhealthy);
        assert_eq!(
            key.check(&NONE, t0 + Duration::from_secs(59), today()),
            Err(Skip::Unhealthy)
        );

        let after = t0 + COOLDOWN;
        assert!(key.check(&NONE, after, today()).is_ok());
        key.take(after, today(), wall());
        assert_eq!(
            key.check(&NONE, after, today()),
            Err(Skip::Unhealthy),
            "one probe at a time"
        );
        key.succeed();
        assert_eq!(key.status(), HealthStatus::Healthy);
    }

    #[test]
    fn a_failed_probe_restarts_the_cooldown() {
        let t0 = crate::clock::Clock::default().instant();
        let mut key = KeyState::restored(3, SpendCounter::default(), DayCounter::default());
        key.take(t0, today(), wall());
        fail(&mut key, t0);
        assert_eq!(
            key.check(&NONE, t0 + Duration::from_secs(30), today()),
            Err(Skip::Unhealthy)
        );
        assert!(key.check(&NONE, t0 + COOLDOWN, today()).is_ok());
    }

    #[test]
    fn a_429_rests_the_key_for_retry_after() {
        let t0 = crate::clock::Clock::default().instant();
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
            key.check(&NONE, t0 + Duration::from_secs(6), today()),
            Err(Skip::Resting)
        );
        assert!(
            key.check(&NONE, t0 + Duration::from_secs(7), today())
                .is_ok()
        );
    }

    #[test]
    fn three_auth_failures_in_a_row_disable_the_key_once() {
        let t0 = crate::clock::Clock::default().instant();
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
            key.check(&NONE, t0 + COOLDOWN * 10, today()),
            Err(Skip::Disabled)
        );
        key.reset();
        assert!(key.check(&NONE, t0, today()).is_ok());
    }

    #[test]
    fn a_block_spend_limit_takes_the_key_out_until_the_period_turns() {
        let (t0, today) = (crate::clock::Clock::default().instant(), today());
        let mut key = KeyState::default();
        let block = SpendBlock {
            limit: Money::from_usd(1.0).expect("usd"),
            daily: true,
        };
        let limits = KeyLimits {
            block: Some(block),
            ..NONE
        };
        key.add_spend(Money::from_usd(0.6).expect("usd"), today);
        assert!(key.check(&limits, t0, today).is_ok());
        key.add_spend(Money::from_usd(0.4).expect("usd"), today);
        assert_eq!(key.check(&limits, t0, today), Err(Skip::SpendLimit));
        assert!(
            key.check(&limits, t0, today.succ_opt().expect("tomorrow"))
                .is_ok()
        );
    }

    #[test]
    fn minute_and_daily_limits_are_never_exceeded() {
        let t0 = crate::clock::Clock::default().instant();
        let mut key = KeyState::default();
        for _ in 0..2 {
            assert!(
                key.check(
                    &KeyLimits {
                        per_minute: Some(2),
                        per_day: Some(3),
                        ..NONE
                    },
                    t0,
                    today()
                )
                .is_ok()
            );
            key.take(t0, today(), wall());
        }
        assert_eq!(
            key.check(
                &KeyLimits {
                    per_minute: Some(2),
                    per_day: Some(3),
                    ..NONE
                },
                t0,
                today()
            ),
            Err(Skip::MinuteLimit)
        );
        let later = t0 + Duration::from_secs(61);
        key.take(later, today(), wall());
        assert_eq!(
            key.check(
                &KeyLimits {
                    per_minute: Some(2),
                    per_day: Some(3),
                    ..NONE
                },
                later,
                today()
            ),
            Err(Skip::DailyLimit)
        );
    }

    #[test]
    fn the_replicas_view_is_adopted_and_a_refused_take_is_taken_back() {
        let t0 = crate::clock::Clock::default().instant();
        let minute = Duration::from_secs(60);
        let mut key = KeyState::default();
        let shared = SharedState {
            failures: UNHEALTHY_AFTER,
            rest_left: Duration::ZERO,
            cooldown_left: minute,
        };
        assert!(key.adopt(shared, t0), "healthy → unhealthy is a change");
        assert_eq!(
            key.check(&NONE, t0 + minute / 2, today()),
            Err(Skip::Unhealthy)
        );
        let after = t0 + minute;
        assert!(
            key.take(after, today(), wall()),
            "past the cool-down: the probe"
        );
        // Another replica won the probe: this one takes the request back and waits again.
        key.untake(true, after, today(), COOLDOWN);
        assert_eq!(key.counts(after, today()), (0, 0));
        assert_eq!(key.check(&NONE, after, today()), Err(Skip::Unhealthy));
        assert!(key.adopt(SharedState::default(), after), "a clean slate");
        assert!(key.check(&NONE, after, today()).is_ok());
        assert!(!key.adopt(SharedState::default(), after), "nothing changed");
    }
}
