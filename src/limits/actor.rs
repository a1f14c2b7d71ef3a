//! `BudgetActor`: one per agent token; the only writer of that token's `TokenBudget`.

use super::budget::{Admission, LimitError, Limits, TokenBudget};
use super::hold::Estimate;
use crate::clock::Clock;
use crate::money::Money;
use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message, MessageResult};
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SWEEP_EVERY: Duration = Duration::from_secs(15);

/// Checks RPM/RPD and the budget, counts the request and holds what the budget grants of
/// `estimate`: one atomic step.
#[derive(Message)]
#[rtype(result = "Result<Admission, LimitError>")]
pub struct Reserve {
    pub limits: Limits,
    pub estimate: Estimate,
    pub now: DateTime<Utc>,
}

/// Replaces a hold with the request's real cost.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Settle {
    pub hold_id: u64,
    pub cost: Money,
}

/// Drops a hold whose request cost nothing (failed before any provider answered).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release(pub u64);

/// Spend this period and remaining requests per window, for `GET /usage`.
#[derive(Message)]
#[rtype(result = "(Money, Option<u32>, Option<u32>)")]
pub struct Peek {
    pub limits: Limits,
    pub now: DateTime<Utc>,
}

pub struct BudgetActor {
    token_id: i32,
    budget: Option<TokenBudget>,
    hold_ttl: Duration,
    idle_after: Duration,
    last_active: Instant,
    /// Where an idle actor leaves its state for the next one.
    parked: Arc<DashMap<i32, TokenBudget>>,
    clock: Clock,
}

impl BudgetActor {
    pub fn new(
        token_id: i32,
        budget: TokenBudget,
        hold_ttl: Duration,
        idle_after: Duration,
        parked: Arc<DashMap<i32, TokenBudget>>,
        clock: Clock,
    ) -> Self {
        BudgetActor {
            token_id,
            budget: Some(budget),
            hold_ttl,
            idle_after,
            last_active: clock.instant(),
            parked,
            clock,
        }
    }

    fn budget(&mut self) -> &mut TokenBudget {
        self.last_active = self.clock.instant();
        #[expect(
            clippy::expect_used,
            reason = "the budget is only taken when the actor stops"
        )]
        self.budget.as_mut().expect("budget present while running")
    }

    /// Expires stale holds; parks and stops when idle with nothing held.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let Some(budget) = self.budget.as_mut() else {
            return;
        };
        let expired = budget.expire(self.clock.now());
        if expired > 0 {
            tracing::warn!(
                token_id = self.token_id,
                expired,
                "released holds whose requests never settled"
            );
        }
        if budget.is_idle()
            && self.clock.instant().duration_since(self.last_active) >= self.idle_after
            && let Some(budget) = self.budget.take()
        {
            self.parked.insert(self.token_id, budget);
            ctx.stop();
        }
    }
}

impl Actor for BudgetActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(SWEEP_EVERY, |actor, ctx| actor.sweep(ctx));
    }
}

impl Handler<Reserve> for BudgetActor {
    type Result = Result<Admission, LimitError>;

    fn handle(&mut self, msg: Reserve, _: &mut Context<Self>) -> Self::Result {
        let ttl = self.hold_ttl;
        self.budget()
            .admit(&msg.limits, &msg.estimate, msg.now, ttl)
    }
}

impl Handler<Settle> for BudgetActor {
    type Result = ();

    fn handle(&mut self, msg: Settle, _: &mut Context<Self>) {
        self.budget().settle(msg.hold_id, msg.cost);
    }
}

impl Handler<Release> for BudgetActor {
    type Result = ();

    fn handle(&mut self, Release(hold_id): Release, _: &mut Context<Self>) {
        self.budget().release(hold_id);
    }
}

impl Handler<Peek> for BudgetActor {
    type Result = MessageResult<Peek>;

    fn handle(&mut self, msg: Peek, _: &mut Context<Self>) -> Self::Result {
        let budget = self.budget();
        let spent = budget.spent(msg.now, msg.limits.anchor_day);
        let (minute, day) = budget.remaining(&msg.limits, msg.now);
        MessageResult((spent, minute, day))
    }
}
