//! `TokenCell`: one agent token's `TokenBudget` behind a lock of its own.
//!
//! A request checks and holds under the lock on the thread that serves it: no message to another
//! thread and no wake-up, which is what the actor each token used to have cost (measured: most of
//! the gateway's CPU per request at concurrency 1 was the kernel waking the actor's thread and the
//! request's again). The lock guards one decision's arithmetic and is never held across an await,
//! so "check and hold" stays one atomic step however many requests of the token race, and tokens
//! never wait on each other.

use super::budget::{Admission, LimitError, Limits, TokenBudget};
use super::hold::Estimate;
use super::lease::{Exchanged, Snapshot, Want};
use crate::money::Money;
use chrono::{DateTime, Utc};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub struct TokenCell {
    pub token_id: i32,
    brand_id: i32,
    state: Mutex<CellState>,
}

struct CellState {
    budget: TokenBudget,
    /// When a request last reserved, settled or looked: an idle lease goes back.
    last_active: Instant,
    /// The cap and anchor day of the token's budget as its last request carried them, for the
    /// 80 % and 100 % alerts raised when a request settles.
    budget_of: Option<(Money, Option<u32>)>,
}

/// What a settlement did to a budget with a cap: the spend before and after, to raise alerts.
pub struct Crossed {
    pub cap: Money,
    pub anchor_day: Option<u32>,
    pub before: Money,
    pub after: Money,
}

/// What the periodic sweep found in a cell.
pub struct Swept {
    /// Holds whose requests never settled, now dropped.
    pub expired: usize,
    /// The lease has been idle long enough to go back to the shared budget.
    pub give_back: bool,
}

impl TokenCell {
    pub fn new(token_id: i32, brand_id: i32, budget: TokenBudget, now: Instant) -> Self {
        TokenCell {
            token_id,
            brand_id,
            state: Mutex::new(CellState {
                budget,
                last_active: now,
                budget_of: None,
            }),
        }
    }

    pub fn brand_id(&self) -> i32 {
        self.brand_id
    }

    /// A panic elsewhere while the lock was held leaves arithmetic that is still consistent
    /// (every step finishes before the next begins), so a poisoned lock is used as it is.
    fn state(&self) -> MutexGuard<'_, CellState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks RPM/RPD and the budget, counts the request and holds what the budget grants of
    /// `estimate`: one atomic step.
    pub fn reserve(
        &self,
        limits: &Limits,
        estimate: &Estimate,
        (now, at): (DateTime<Utc>, Instant),
        hold_ttl: Duration,
        renewed: bool,
    ) -> Result<Admission, LimitError> {
        let mut state = self.state();
        state.last_active = at;
        state.budget_of = limits.monthly_budget.map(|cap| (cap, limits.anchor_day));
        state.budget.admit(limits, estimate, now, hold_ttl, renewed)
    }

    /// Replaces a hold with the request's real cost; says what it did to a capped budget.
    pub fn settle(
        &self,
        hold_id: u64,
        cost: Money,
        (now, at): (DateTime<Utc>, Instant),
    ) -> Option<Crossed> {
        let mut state = self.state();
        state.last_active = at;
        let Some((cap, anchor_day)) = state.budget_of else {
            state.budget.settle(hold_id, cost);
            return None;
        };
        let before = state.budget.spent(now, anchor_day);
        state.budget.settle(hold_id, cost);
        let after = state.budget.spent(now, anchor_day);
        Some(Crossed {
            cap,
            anchor_day,
            before,
            after,
        })
    }

    /// Drops a hold whose request cost nothing (failed before any provider answered).
    pub fn release(&self, hold_id: u64, at: Instant) {
        let mut state = self.state();
        state.last_active = at;
        state.budget.release(hold_id);
    }

    /// Spend this period and remaining requests per window, for `GET /usage`.
    pub fn peek(
        &self,
        limits: &Limits,
        (now, at): (DateTime<Utc>, Instant),
    ) -> (Money, Option<u32>, Option<u32>) {
        let mut state = self.state();
        state.last_active = at;
        let spent = state.budget.spent(now, limits.anchor_day);
        let (minute, day) = state.budget.remaining(limits, now);
        (spent, minute, day)
    }

    /// The token's log of admitted requests (see `TokenBudget::shadow`). Not activity:
    /// replaying must not keep an idle lease from going back.
    pub fn shadow(&self, now: DateTime<Utc>) -> (Vec<i64>, Vec<(i64, u32)>) {
        self.state().budget.shadow(now)
    }

    /// Freezes the lease for an exchange with the database (see `lease.rs`); `want` is what a
    /// request needs, `None` to give the lease back. Not activity either.
    pub fn begin_exchange(&self, want: Option<&Want>) -> Option<Snapshot> {
        self.state().budget.begin_exchange(want)
    }

    /// The exchange's answer (`None`: it failed, and the lease is as it was).
    pub fn end_exchange(
        &self,
        snapshot: &Snapshot,
        cap: Option<Money>,
        answered: Option<Exchanged>,
    ) {
        self.state().budget.end_exchange(snapshot, cap, answered);
    }

    /// Expires stale holds, and says whether a lease idle for `lease_idle` should go back.
    pub fn sweep(&self, (now, at): (DateTime<Utc>, Instant), lease_idle: Duration) -> Swept {
        let mut state = self.state();
        let expired = state.budget.expire(now);
        let idle_for = at.saturating_duration_since(state.last_active);
        Swept {
            expired,
            give_back: idle_for >= lease_idle && state.budget.lease_to_give_back(),
        }
    }
}
