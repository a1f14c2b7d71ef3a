//! `Budgets`: finds or makes a token's `TokenCell`; `ReservationGuard` settles or releases.

use super::budget::{Admission, LimitError, Limits, TokenBudget};
use super::cell::TokenCell;
use super::hold::Estimate;
use super::lease::{Exchanged, Leases, Want};
use super::period::BudgetPeriod;
use super::shared::{Checked, Scope, Shadow, SharedWindows};
use crate::auth::TokenEntry;
use crate::clock::Clock;
use crate::coherence::Replicas;
use crate::config::OnRedisError;
use crate::error::ApiError;
use crate::error::ErrorCode;
use crate::money::Money;
use crate::usage::TokenSeed;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Token windows kept in Redis for every replica, and what to do while it is away.
#[derive(Clone)]
pub struct Shared {
    pub windows: SharedWindows,
    pub on_error: OnRedisError,
    pub replicas: Replicas,
}

impl Shared {
    /// The limits a replica enforces on its own while Redis cannot be reached: its share of each
    /// (so the replicas together never admit more than the limit), or 503 (`fail_closed`).
    fn without_redis(&self, limits: Limits, err: &redis::RedisError) -> Result<Limits, ApiError> {
        crate::redis_link::warn_unreachable("rate windows enforced per replica share", err);
        match self.on_error {
            OnRedisError::FailClosed => Err(ApiError::new(
                ErrorCode::ServiceUnavailable,
                "rate limits cannot be checked right now (Redis is unreachable)",
            )
            .with_retry_after(Duration::from_secs(1))),
            OnRedisError::Share => Ok(self.share_of(limits)),
        }
    }

    /// This replica's share of each limit (limit ÷ live replicas), checked against its own log.
    fn share_of(&self, limits: Limits) -> Limits {
        let live = self.replicas.live().max(1);
        let share = |limit: u32| limit / live;
        Limits {
            rpm: limits.rpm.map(share),
            rpd: limits.rpd.map(share),
            ..limits
        }
    }
}

/// Tries at reserving before a request is told the budget is busy (503).
const RESERVE_ATTEMPTS: usize = 16;

/// A budget refusal after a lease renewal states the month's spend and the leases of every
/// replica, not only this replica's view.
fn in_every_replica(refused: LimitError, renewal: Option<Exchanged>) -> ApiError {
    match (refused, renewal) {
        (
            LimitError::BudgetExhausted { cap, estimate, .. },
            Some(Exchanged { spent, leased, .. }),
        ) => LimitError::BudgetExhausted {
            spent: spent.as_usd(),
            held: leased.as_usd(),
            cap,
            estimate,
        }
        .into(),
        (refused, _) => refused.into(),
    }
}

/// How often every cell is swept (stale holds expire, idle leases go back).
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// A lease nothing has used for this long goes back to the shared budget.
const LEASE_IDLE: Duration = Duration::from_secs(5);

/// Every agent token's budget, one [`TokenCell`] each (made on first use and kept: a cell is a
/// few counters, and its spend and windows must outlive quiet spells).
#[derive(Clone)]
pub struct Budgets {
    inner: Arc<Inner>,
}

struct Inner {
    cells: DashMap<i32, Arc<TokenCell>>,
    /// Start-up state per token from the hourly counters; consumed when its cell is made.
    seeds: DashMap<i32, TokenSeed>,
    hold_ttl: Duration,
    clock: Clock,
    shared: Option<Shared>,
    /// Replicas share the database: hard caps are spent from leases of it.
    leases: Option<Leases>,
    alerts: crate::alerts::Alerts,
}

/// Holds a reservation until the request's cost is known. Dropping it unsettled releases the hold.
pub struct ReservationGuard {
    held: Option<(Arc<TokenCell>, Budgets)>,
    hold_id: u64,
}

impl ReservationGuard {
    /// For callers without a budget (client credentials): settles nothing.
    pub fn none() -> Self {
        ReservationGuard {
            held: None,
            hold_id: 0,
        }
    }

    /// Charges `cost` and releases the hold, at once and on this thread.
    pub fn settle(mut self, cost: Money) {
        if let Some((cell, budgets)) = self.held.take() {
            budgets.settle(&cell, self.hold_id, cost);
        }
    }
}

impl Drop for ReservationGuard {
    fn drop(&mut self) {
        if let Some((cell, budgets)) = self.held.take() {
            cell.release(self.hold_id, budgets.inner.clock.instant());
        }
    }
}

pub fn limits_of(token: &TokenEntry) -> Limits {
    Limits {
        rpm: token.limits.rpm,
        rpd: token.limits.rpd,
        monthly_budget: token.limits.monthly_budget,
        hard_budget: token.limits.hard_budget,
        anchor_day: token.anchor_day,
    }
}

impl Budgets {
    /// Also starts the sweep, which ends when the last handle is dropped.
    pub fn new(
        seeds: HashMap<i32, TokenSeed>,
        hold_ttl: Duration,
        clock: Clock,
        shared: Option<Shared>,
        leases: Option<Leases>,
        alerts: crate::alerts::Alerts,
    ) -> Budgets {
        let inner = Arc::new(Inner {
            cells: DashMap::new(),
            seeds: seeds.into_iter().collect(),
            hold_ttl,
            clock,
            shared,
            leases,
            alerts,
        });
        let sweeping = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(inner) = sweeping.upgrade() else {
                    return;
                };
                Budgets { inner }.sweep();
            }
        });
        Budgets { inner }
    }

    /// The wall-clock time (windows, periods) and the monotonic one (idleness), read together.
    fn now(&self) -> (DateTime<Utc>, Instant) {
        (self.inner.clock.now(), self.inner.clock.instant())
    }

    /// Expires holds whose requests never settled (a last resort: guards settle or release),
    /// and gives idle leases back.
    fn sweep(&self) {
        let now = self.now();
        for cell in self.inner.cells.iter() {
            let swept = cell.sweep(now, LEASE_IDLE);
            if swept.expired > 0 {
                tracing::warn!(
                    token_id = cell.token_id,
                    expired = swept.expired,
                    "released holds whose requests never settled"
                );
            }
            if swept.give_back
                && let Some(leases) = self.inner.leases.clone()
            {
                let cell = cell.value().clone();
                tokio::spawn(async move { leases.give_back(&cell).await });
            }
        }
    }

    fn settle(&self, cell: &TokenCell, hold_id: u64, cost: Money) {
        let now = self.now();
        let Some(crossed) = cell.settle(hold_id, cost, now) else {
            return;
        };
        let period = BudgetPeriod::containing(now.0, crossed.anchor_day);
        self.inner.alerts.budget_spent(
            cell.token_id,
            cell.brand_id(),
            period.start,
            (crossed.before, crossed.after),
            crossed.cap,
        );
    }

    /// Gives every lease back to the shared budget (at shutdown, after the last request).
    pub async fn return_leases(&self) {
        let Some(leases) = &self.inner.leases else {
            return;
        };
        let cells = self.cells();
        let returns = cells.iter().map(|cell| leases.give_back(cell));
        futures_util::future::join_all(returns).await;
    }

    /// The cells made so far, copied out of the map so no shard stays locked across an await.
    fn cells(&self) -> Vec<Arc<TokenCell>> {
        self.inner
            .cells
            .iter()
            .map(|entry| entry.value().clone())
            .collect()
    }

    /// Every token's log of admitted requests, to replay into Redis.
    pub async fn shadows(&self) -> Vec<Shadow> {
        let now = self.inner.clock.now();
        self.inner
            .cells
            .iter()
            .map(|cell| {
                let (minute, day) = cell.shadow(now);
                Shadow {
                    scope: Scope::Token(cell.token_id),
                    minute,
                    day,
                }
            })
            .collect()
    }

    /// The Redis-backed windows, when replicas share them.
    pub fn shared_windows(&self) -> Option<&SharedWindows> {
        self.inner.shared.as_ref().map(|s| &s.windows)
    }

    /// Checks the token's windows and budget and holds what it grants of `estimate` (429/402 on
    /// refusal). With shared windows, Redis checks and records RPM/RPD first (as `request_id`),
    /// and a request the budget then refuses is taken out of them again.
    pub async fn reserve(
        &self,
        token: &TokenEntry,
        estimate: &Estimate,
        now: DateTime<Utc>,
        request_id: &str,
    ) -> Result<(Admission, ReservationGuard), ApiError> {
        let mut limits = limits_of(token);
        let mut shared_rate = None;
        let mut recorded = None;
        if let Some(shared) = &self.inner.shared
            && (limits.rpm.is_some() || limits.rpd.is_some())
        {
            match shared.windows.admit(token.id, &limits, request_id).await {
                Ok(Checked::Admitted {
                    rate,
                    recorded: r,
                    trusted,
                }) => {
                    (shared_rate, recorded) = (rate, Some(r));
                    // Until every replica has replayed into a Redis that came back empty, the
                    // request must fit this replica's share too.
                    limits = if trusted {
                        Limits {
                            rpm: None,
                            rpd: None,
                            ..limits
                        }
                    } else {
                        shared.share_of(limits)
                    };
                }
                Ok(Checked::Refused(err)) => return Err(err.into()),
                Err(err) => limits = shared.without_redis(limits, &err)?,
            }
        }
        let reserved = self.reserve_locally(token, limits, estimate, now).await;
        match (reserved, recorded, &self.inner.shared) {
            (Err(err), Some(recorded), Some(shared)) => {
                shared.windows.undo(recorded);
                Err(err)
            }
            (Ok((mut admission, guard)), Some(_), _) => {
                admission.rate = shared_rate;
                Ok((admission, guard))
            }
            (reserved, _, _) => reserved,
        }
    }

    /// The token's cell checks what is left of `limits` and holds the budget. A hard cap shared
    /// by replicas may first need the lease renewed (then the cell is asked again).
    async fn reserve_locally(
        &self,
        token: &TokenEntry,
        limits: Limits,
        estimate: &Estimate,
        now: DateTime<Utc>,
    ) -> Result<(Admission, ReservationGuard), ApiError> {
        let cell = self.cell_for(token, now);
        let at = self.inner.clock.instant();
        // `Some` once this request renewed the lease itself: it then takes what the lease has.
        let mut renewed: Option<Option<Exchanged>> = None;
        // A lease another request renewed (and whose room others may have taken first) is tried
        // again.
        for _ in 0..RESERVE_ATTEMPTS {
            let ttl = self.inner.hold_ttl;
            match cell.reserve(&limits, estimate, (now, at), ttl, renewed.is_some()) {
                Ok(admission) => {
                    let guard = ReservationGuard {
                        hold_id: admission.hold_id,
                        held: Some((cell, self.clone())),
                    };
                    return Ok((admission, guard));
                }
                Err(LimitError::LeaseShort) => {
                    let (Some(leases), Some(cap)) = (&self.inner.leases, limits.monthly_budget)
                    else {
                        return Err(LimitError::LeaseShort.into());
                    };
                    let want = Want {
                        worst: estimate.worst_case(),
                        least: estimate.minimum(),
                        cap,
                    };
                    let exchanged = leases.renew(cell.clone(), want).await?;
                    renewed = exchanged.map(Some);
                }
                Err(refused) => return Err(in_every_replica(refused, renewed.flatten())),
            }
        }
        Err(LimitError::LeaseShort.into())
    }

    /// Spend this period and remaining requests (minute, day) for `GET /usage`.
    pub async fn peek(
        &self,
        token: &TokenEntry,
        now: DateTime<Utc>,
    ) -> (Money, Option<u32>, Option<u32>) {
        let limits = limits_of(token);
        let cell = self.cell_for(token, now);
        let (spent, minute, day) = cell.peek(&limits, (now, self.inner.clock.instant()));
        if let Some(shared) = &self.inner.shared
            && let Ok((minute, day)) = shared.windows.remaining(token.id, &limits).await
        {
            return (spent, minute, day);
        }
        (spent, minute, day)
    }

    fn cell_for(&self, token: &TokenEntry, now: DateTime<Utc>) -> Arc<TokenCell> {
        if let Some(cell) = self.inner.cells.get(&token.id) {
            return cell.clone();
        }
        self.inner
            .cells
            .entry(token.id)
            .or_insert_with(|| Arc::new(self.make(token, now)))
            .clone()
    }

    fn make(&self, token: &TokenEntry, now: DateTime<Utc>) -> TokenCell {
        let budget = self.restore(token, now);
        let budget = match self.inner.leases {
            Some(_) => budget.leased(),
            None => budget,
        };
        TokenCell::new(token.id, token.brand_id, budget, self.inner.clock.instant())
    }

    /// Rebuilds a token's state from the hourly counters: spend since its period began, and the
    /// requests of the last 24 h (counted at the end of their hour, so a restart never frees
    /// slots early).
    fn restore(&self, token: &TokenEntry, now: DateTime<Utc>) -> TokenBudget {
        let period = BudgetPeriod::containing(now, token.anchor_day);
        let Some((_, seed)) = self.inner.seeds.remove(&token.id) else {
            return TokenBudget::new(period, Money::ZERO);
        };
        let mut budget = TokenBudget::new(period, seed.spent_since(period.start));
        for (hour, requests) in seed.hourly_requests {
            let counted_at = ((hour + 3600) * 1000).min(now.timestamp_millis());
            budget.seed_day(counted_at, requests);
        }
        budget
    }
}
