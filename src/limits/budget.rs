//! `TokenBudget`: one token's windows, spend and holds, as a pure state machine.

use super::hold::{Estimate, Grant};
use super::lease::{Exchanged, Snapshot, Want};
use super::period::BudgetPeriod;
use super::window::SlidingWindow;
use crate::error::{ApiError, ErrorCode, RateHeaders};
use crate::money::Money;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// The limits a request is checked against (sent with every reservation, so edits apply at once).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub rpm: Option<u32>,
    pub rpd: Option<u32>,
    pub monthly_budget: Option<Money>,
    pub hard_budget: bool,
    pub anchor_day: Option<u32>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum LimitError {
    #[error("rate limit of {limit} requests per minute reached")]
    PerMinute { limit: u32, retry_after: Duration },
    #[error("daily limit of {limit} requests reached")]
    PerDay { limit: u32, retry_after: Duration },
    #[error(
        "monthly budget exhausted: ${spent:.4} spent (plus ${held:.4} held by requests in flight) of a ${cap:.2} hard cap; this request costs at least ${estimate:.4}"
    )]
    BudgetExhausted {
        spent: f64,
        held: f64,
        cap: f64,
        estimate: f64,
    },
    /// This replica's lease of a hard budget cannot pay for the request (or is being renewed):
    /// renew it, then try again. Never reaches a client unless renewing keeps failing.
    #[error("the hard budget's lease is being renewed; try again")]
    LeaseShort,
}

impl From<LimitError> for ApiError {
    fn from(err: LimitError) -> ApiError {
        let message = err.to_string();
        match err {
            LimitError::PerMinute { limit, retry_after } => {
                ApiError::new(ErrorCode::RateLimitExceeded, message)
                    .with_retry_after(retry_after)
                    .with_rate_limit(RateHeaders {
                        limit,
                        remaining: 0,
                        reset: retry_after,
                    })
            }
            LimitError::PerDay { limit, retry_after } => {
                ApiError::new(ErrorCode::DailyRateLimitExceeded, message)
                    .with_retry_after(retry_after)
                    .with_rate_limit(RateHeaders {
                        limit,
                        remaining: 0,
                        reset: retry_after,
                    })
            }
            LimitError::BudgetExhausted { .. } => ApiError::new(ErrorCode::BudgetExceeded, message),
            LimitError::LeaseShort => ApiError::new(ErrorCode::ServiceUnavailable, message)
                .with_retry_after(Duration::from_secs(1)),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    pub hold_id: u64,
    /// The tighter rate window after admission, for the `X-RateLimit-*` headers.
    pub rate: Option<RateHeaders>,
    /// `(spent, cap)` when a soft budget is at 80 % or more.
    pub budget_warning: Option<(Money, Money)>,
    /// What is held, and the completion limits a hard budget imposes.
    pub grant: Grant,
}

#[derive(Debug)]
struct Hold {
    amount: Money,
    expires_ms: i64,
    /// Reserved from the lease, so its cost is spent from it.
    leased: bool,
}

/// This replica's lease of a hard budget the replicas share (see `lease.rs`).
#[derive(Debug, Default)]
struct Lease {
    granted: Money,
    /// Spent from it since the last exchange.
    used: Money,
    /// The cap it was granted under: a changed cap takes an exchange first.
    cap: Option<Money>,
    /// An exchange that gives part of the lease back is under way: nothing is reserved from it
    /// until that ends. (An exchange that only adds keeps the whole lease, so requests go on.)
    busy: bool,
}

impl Lease {
    fn room(&self, held: Money) -> i64 {
        self.granted.nanos() - self.used.nanos() - held.nanos()
    }

    fn is_empty(&self) -> bool {
        self.granted == Money::ZERO && self.used == Money::ZERO && !self.busy
    }
}

#[derive(Debug)]
pub struct TokenBudget {
    period: BudgetPeriod,
    spent: Money,
    holds: HashMap<u64, Hold>,
    next_hold: u64,
    minute: SlidingWindow,
    day: SlidingWindow,
    /// Replicas share the database: a hard cap is spent from this lease, not from the cap.
    lease: Option<Lease>,
}

impl TokenBudget {
    pub fn new(period: BudgetPeriod, spent: Money) -> Self {
        TokenBudget {
            period,
            spent,
            holds: HashMap::new(),
            next_hold: 1,
            minute: SlidingWindow::new(MINUTE_MS, 1),
            day: SlidingWindow::new(DAY_MS, 1_000),
            lease: None,
        }
    }

    /// Spends hard caps from a lease of the shared budget (PostgreSQL replicas).
    pub fn leased(mut self) -> Self {
        self.lease.get_or_insert_default();
        self
    }

    /// Seeds the daily window with requests made before a restart (counted at `at_ms`).
    pub fn seed_day(&mut self, at_ms: i64, requests: u32) {
        self.day.record(at_ms, requests);
    }

    fn held(&self) -> Money {
        Money::from_nanos(self.holds.values().map(|h| h.amount.nanos()).sum())
    }

    /// Checks the windows, then the budget, and if all pass counts the request and holds what
    /// the budget grants of `estimate` (under a hard cap: only what the room left can pay for).
    /// With a lease, `LeaseShort` asks for a renewal first unless `renewed` says it happened.
    pub fn admit(
        &mut self,
        limits: &Limits,
        estimate: &Estimate,
        now: DateTime<Utc>,
        hold_ttl: Duration,
        renewed: bool,
    ) -> Result<Admission, LimitError> {
        self.roll(now, limits.anchor_day);
        let now_ms = now.timestamp_millis();
        if let Some(limit) = limits.rpm
            && self.minute.count(now_ms) >= limit
        {
            return Err(LimitError::PerMinute {
                limit,
                retry_after: ms(self.minute.frees_in(now_ms, limit)),
            });
        }
        if let Some(limit) = limits.rpd
            && self.day.count(now_ms) >= limit
        {
            return Err(LimitError::PerDay {
                limit,
                retry_after: ms(self.day.frees_in(now_ms, limit)),
            });
        }
        let held = self.held();
        let hard_cap = limits.monthly_budget.filter(|_| limits.hard_budget);
        let room = match hard_cap {
            Some(cap) => Some(self.room_under(cap, held, estimate, renewed)?),
            None => None,
        };
        let Some(grant) = estimate.grant(room) else {
            let usd = Money::as_usd;
            return Err(LimitError::BudgetExhausted {
                spent: usd(self.spent),
                held: usd(held),
                cap: hard_cap.map_or(0.0, usd),
                estimate: usd(estimate.minimum()),
            });
        };
        self.minute.record(now_ms, 1);
        self.day.record(now_ms, 1);
        let hold_id = self.next_hold;
        self.next_hold += 1;
        let ttl_ms = hold_ttl.as_millis() as i64;
        self.holds.insert(
            hold_id,
            Hold {
                amount: if hard_cap.is_some() {
                    grant.hold
                } else {
                    Money::ZERO
                },
                expires_ms: now_ms + ttl_ms,
                leased: hard_cap.is_some() && self.lease.is_some(),
            },
        );
        Ok(Admission {
            hold_id,
            rate: self.rate_view(limits, now_ms),
            budget_warning: self.warning(limits),
            grant,
        })
    }

    /// What a hard cap leaves for this request: of the cap, or of this replica's lease.
    fn room_under(
        &self,
        cap: Money,
        held: Money,
        estimate: &Estimate,
        renewed: bool,
    ) -> Result<i64, LimitError> {
        let Some(lease) = &self.lease else {
            return Ok(cap.nanos() - self.spent.nanos() - held.nanos());
        };
        let room = lease.room(held);
        let current = !lease.busy && lease.cap == Some(cap);
        if !current || (!renewed && room < estimate.worst_case().nanos()) {
            return Err(LimitError::LeaseShort);
        }
        Ok(room)
    }

    /// Replaces the hold with what the request really cost.
    pub fn settle(&mut self, hold_id: u64, cost: Money) {
        let hold = self.holds.remove(&hold_id);
        self.spent = Money::from_nanos(self.spent.nanos() + cost.nanos());
        // A hold that expired first is charged to the lease too: counting it twice is safe.
        if let Some(lease) = &mut self.lease
            && hold.is_none_or(|h| h.leased)
        {
            lease.used = Money::from_nanos(lease.used.nanos() + cost.nanos());
        }
    }

    /// Says what an exchange reports and keeps, freezing the lease when it gives some back;
    /// `None` when there is nothing to do (the room is there already; or, giving back, requests
    /// are in flight).
    pub fn begin_exchange(&mut self, want: Option<&Want>) -> Option<Snapshot> {
        let held = self.held();
        let idle = self.holds.is_empty();
        let lease = self.lease.as_mut()?;
        if lease.busy {
            return None;
        }
        let same_cap = want.is_some_and(|w| lease.cap == Some(w.cap));
        match want {
            Some(w) if same_cap && lease.room(held) >= w.worst.nanos() => return None,
            None if !idle || lease.is_empty() => return None,
            _ => {}
        }
        // Adding under the same cap keeps all that is unspent, so what is reserved meanwhile
        // stays covered; otherwise only what is held is kept, and the rest waits.
        let keep = if same_cap {
            (lease.granted.nanos() - lease.used.nanos()).max(held.nanos())
        } else {
            lease.busy = true;
            held.nanos()
        };
        Some(Snapshot {
            period_start: self.period.start.timestamp(),
            spent: lease.used,
            keep: Money::from_nanos(keep),
            held,
        })
    }

    /// Takes the exchange's answer. Without one (it failed, or timed out and may still have
    /// committed) the lease shrinks to what is safe either way: at most what it was, and at most
    /// what was kept plus the spend reported (which stays unreported, so it is reported again:
    /// counted twice at worst, which refuses early, never late).
    pub fn end_exchange(
        &mut self,
        snapshot: &Snapshot,
        cap: Option<Money>,
        answered: Option<Exchanged>,
    ) {
        if self.period.start.timestamp() != snapshot.period_start {
            return;
        }
        let Some(lease) = self.lease.as_mut() else {
            return;
        };
        lease.busy = false;
        let reported = snapshot.spent;
        let Some(answer) = answered else {
            let safe = snapshot.keep.nanos() + reported.nanos();
            lease.granted = Money::from_nanos(lease.granted.nanos().min(safe));
            return;
        };
        // Kept was what was unspent when the exchange began; spent since is still unreported.
        lease.granted = answer.granted;
        lease.used = if answer.forfeited {
            Money::ZERO
        } else {
            Money::from_nanos((lease.used.nanos() - reported.nanos()).max(0))
        };
        if cap.is_some() {
            lease.cap = cap;
        }
    }

    /// A lease nothing holds, to give back.
    pub fn lease_to_give_back(&self) -> bool {
        self.holds.is_empty()
            && self
                .lease
                .as_ref()
                .is_some_and(|l| !l.is_empty() && !l.busy)
    }

    pub fn release(&mut self, hold_id: u64) {
        self.holds.remove(&hold_id);
    }

    /// Drops holds whose settle never arrived (a last resort; guards settle or release).
    pub fn expire(&mut self, now: DateTime<Utc>) -> usize {
        let now_ms = now.timestamp_millis();
        let before = self.holds.len();
        self.holds.retain(|_, h| h.expires_ms > now_ms);
        before - self.holds.len()
    }

    /// This token's log of admitted requests (minute timestamps, day granules), to replay into
    /// shared windows that lost theirs.
    pub fn shadow(&self, now: DateTime<Utc>) -> (Vec<i64>, Vec<(i64, u32)>) {
        let now_ms = now.timestamp_millis();
        let minute = self
            .minute
            .entries(now_ms)
            .flat_map(|(at, n)| std::iter::repeat_n(at, n as usize))
            .collect();
        (minute, self.day.entries(now_ms).collect())
    }

    pub fn is_idle(&self) -> bool {
        self.holds.is_empty() && self.lease.as_ref().is_none_or(Lease::is_empty)
    }

    pub fn spent(&self, now: DateTime<Utc>, anchor_day: Option<u32>) -> Money {
        if BudgetPeriod::containing(now, anchor_day) == self.period {
            self.spent
        } else {
            Money::ZERO
        }
    }

    /// Remaining requests in the minute and day windows (`None` = unlimited).
    pub fn remaining(&mut self, limits: &Limits, now: DateTime<Utc>) -> (Option<u32>, Option<u32>) {
        let now_ms = now.timestamp_millis();
        let minute = limits
            .rpm
            .map(|l| l.saturating_sub(self.minute.count(now_ms)));
        let day = limits.rpd.map(|l| l.saturating_sub(self.day.count(now_ms)));
        (minute, day)
    }

    /// A new budget month starts from zero.
    fn roll(&mut self, now: DateTime<Utc>, anchor_day: Option<u32>) {
        let period = BudgetPeriod::containing(now, anchor_day);
        if period != self.period {
            self.period = period;
            self.spent = Money::ZERO;
            // The old month's lease stays in its row; the new month's starts empty.
            if let Some(lease) = &mut self.lease {
                *lease = Lease::default();
            }
        }
    }

    fn rate_view(&mut self, limits: &Limits, now_ms: i64) -> Option<RateHeaders> {
        let minute = limits
            .rpm
            .map(|limit| view(&mut self.minute, limit, now_ms));
        let day = limits.rpd.map(|limit| view(&mut self.day, limit, now_ms));
        match (minute, day) {
            (Some(m), Some(d)) => Some(if d.remaining < m.remaining { d } else { m }),
            (m, d) => m.or(d),
        }
    }

    fn warning(&self, limits: &Limits) -> Option<(Money, Money)> {
        let cap = limits.monthly_budget?;
        let soft = !limits.hard_budget;
        (soft && self.spent.nanos() * 5 >= cap.nanos() * 4).then_some((self.spent, cap))
    }
}

/// `remaining` in the window, and how long until its oldest request leaves it (frees a slot).
fn view(window: &mut SlidingWindow, limit: u32, now_ms: i64) -> RateHeaders {
    let used = window.count(now_ms);
    let reset = if used == 0 {
        0
    } else {
        window.frees_in(now_ms, used)
    };
    RateHeaders {
        limit,
        remaining: limit.saturating_sub(used),
        reset: ms(reset),
    }
}

fn ms(millis: i64) -> Duration {
    Duration::from_millis(millis.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rpm: Option<u32>, budget: Option<f64>, hard: bool) -> Limits {
        Limits {
            rpm,
            rpd: None,
            monthly_budget: budget.and_then(Money::from_usd),
            hard_budget: hard,
            anchor_day: None,
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-22T10:00:00Z".parse().expect("time")
    }

    fn budget() -> TokenBudget {
        TokenBudget::new(BudgetPeriod::containing(now(), None), Money::ZERO)
    }

    const TTL: Duration = Duration::from_secs(600);

    fn fixed(cost: Money) -> Estimate {
        Estimate::Fixed(cost)
    }

    #[test]
    fn holds_count_against_a_hard_cap_until_settled_or_released() {
        let (mut b, l) = (budget(), limits(None, Some(1.0), true));
        let usd = |v| Money::from_usd(v).expect("usd");
        let first = b
            .admit(&l, &fixed(usd(0.6)), now(), TTL, false)
            .expect("fits");
        let err = b
            .admit(&l, &fixed(usd(0.6)), now(), TTL, false)
            .expect_err("0.6 held + 0.6 > 1.0");
        assert!(matches!(err, LimitError::BudgetExhausted { .. }));
        b.settle(first.hold_id, usd(0.1));
        let second = b
            .admit(&l, &fixed(usd(0.6)), now(), TTL, false)
            .expect("0.1 spent + 0.6 fits");
        b.release(second.hold_id);
        assert_eq!(b.spent(now(), None), usd(0.1));
    }

    #[test]
    fn rpm_is_exact_and_tells_when_to_retry() {
        let (mut b, l) = (budget(), limits(Some(2), None, true));
        b.admit(&l, &fixed(Money::ZERO), now(), TTL, false)
            .expect("1");
        let second = b
            .admit(&l, &fixed(Money::ZERO), now(), TTL, false)
            .expect("2");
        assert_eq!(
            second.rate,
            Some(RateHeaders {
                limit: 2,
                remaining: 0,
                reset: Duration::from_secs(60)
            })
        );
        let err = b
            .admit(
                &l,
                &fixed(Money::ZERO),
                now() + chrono::Duration::seconds(10),
                TTL,
                false,
            )
            .expect_err("3rd");
        assert_eq!(
            err,
            LimitError::PerMinute {
                limit: 2,
                retry_after: Duration::from_secs(50)
            }
        );
        assert!(
            b.admit(
                &l,
                &fixed(Money::ZERO),
                now() + chrono::Duration::seconds(60),
                TTL,
                false
            )
            .is_ok()
        );
    }

    #[test]
    fn soft_budgets_pass_with_a_warning_from_80_percent() {
        let (mut b, l) = (budget(), limits(None, Some(10.0), false));
        let a = b
            .admit(&l, &fixed(Money::ZERO), now(), TTL, false)
            .expect("ok");
        b.settle(a.hold_id, Money::from_usd(7.9).expect("usd"));
        assert_eq!(
            b.admit(&l, &fixed(Money::ZERO), now(), TTL, false)
                .expect("ok")
                .budget_warning,
            None
        );
        b.settle(2, Money::from_usd(4.0).expect("usd"));
        let warned = b
            .admit(&l, &fixed(Money::ZERO), now(), TTL, false)
            .expect("soft never blocks");
        assert_eq!(warned.budget_warning.map(|(s, _)| s.as_usd()), Some(11.9));
    }

    #[test]
    fn a_new_month_starts_from_zero_and_stale_holds_expire() {
        let (mut b, l) = (budget(), limits(None, Some(1.0), true));
        let a = b
            .admit(
                &l,
                &fixed(Money::from_usd(0.9).expect("usd")),
                now(),
                TTL,
                false,
            )
            .expect("fits");
        b.settle(a.hold_id, Money::from_usd(0.9).expect("usd"));
        b.admit(
            &l,
            &fixed(Money::from_usd(0.05).expect("usd")),
            now(),
            TTL,
            false,
        )
        .expect("fits");
        assert_eq!(b.expire(now() + chrono::Duration::seconds(601)), 1);
        let december: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().expect("time");
        assert!(
            b.admit(
                &l,
                &fixed(Money::from_usd(0.9).expect("usd")),
                december,
                TTL,
                false
            )
            .is_ok()
        );
    }

    #[test]
    fn a_lease_spends_only_what_was_granted_and_shrinks_when_an_exchange_fails() {
        let usd = |v| Money::from_usd(v).expect("usd");
        let (mut b, l) = (budget().leased(), limits(None, Some(1.0), true));
        let cost = fixed(usd(0.1));
        let short = b
            .admit(&l, &cost, now(), TTL, false)
            .expect_err("no lease yet");
        assert_eq!(short, LimitError::LeaseShort);
        let want = Want {
            worst: usd(0.1),
            least: usd(0.1),
            cap: usd(1.0),
        };
        let snapshot = b.begin_exchange(Some(&want)).expect("an exchange");
        let granted = Exchanged {
            granted: usd(0.3),
            forfeited: false,
            spent: Money::ZERO,
            leased: usd(0.3),
        };
        b.end_exchange(&snapshot, Some(want.cap), Some(granted));
        let held: Vec<_> = (0..3)
            .map(|_| {
                b.admit(&l, &cost, now(), TTL, false)
                    .expect("within the lease")
            })
            .collect();
        assert_eq!(
            b.admit(&l, &cost, now(), TTL, false),
            Err(LimitError::LeaseShort),
            "the lease is held: renew first"
        );
        b.settle(held[0].hold_id, usd(0.1));
        b.release(held[1].hold_id);
        b.release(held[2].hold_id);
        // Giving the unspent 0.2 back fails, and may have committed: none of it is spent here.
        let give_back = b.begin_exchange(None).expect("an idle lease goes back");
        b.end_exchange(&give_back, None, None);
        let err = b
            .admit(&l, &fixed(usd(0.0001)), now(), TTL, true)
            .expect_err("nothing is left to spend without the database");
        assert!(matches!(err, LimitError::BudgetExhausted { .. }), "{err:?}");
    }
}
