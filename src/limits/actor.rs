//! `BudgetActor`: one per agent token; the only writer of that token's `TokenBudget`.

use super::budget::{Admission, LimitError, Limits, TokenBudget};
use super::hold::Estimate;
use super::lease::{Exchanged, Leases, Snapshot, Want};
use crate::clock::Clock;
use crate::money::Money;
use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message, MessageResult};
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// A lease nothing has used for this long goes back to the shared budget.
const LEASE_IDLE: Duration = Duration::from_secs(5);

/// Checks RPM/RPD and the budget, counts the request and holds what the budget grants of
/// `estimate`: one atomic step.
#[derive(Message)]
#[rtype(result = "Result<Admission, LimitError>")]
pub struct Reserve {
    pub limits: Limits,
    pub estimate: Estimate,
    pub now: DateTime<Utc>,
    /// The lease was just renewed for this request: take what it has.
    pub renewed: bool,
}

/// Freezes the lease for an exchange with the database (see `lease.rs`); `want` is what a
/// request needs, `None` to give the lease back.
#[derive(Message)]
#[rtype(result = "Option<Snapshot>")]
pub struct BeginExchange {
    pub want: Option<Want>,
}

/// The exchange's answer (`None`: it failed, and the lease is as it was).
#[derive(Message)]
#[rtype(result = "()")]
pub struct EndExchange {
    pub snapshot: Snapshot,
    pub cap: Option<Money>,
    pub answered: Option<Exchanged>,
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

/// The token's log of admitted requests (see `TokenBudget::shadow`).
#[derive(Message)]
#[rtype(result = "(Vec<i64>, Vec<(i64, u32)>)")]
pub struct TakeShadow;

pub struct BudgetActor {
    token_id: i32,
    budget: Option<TokenBudget>,
    hold_ttl: Duration,
    idle_after: Duration,
    last_active: Instant,
    /// Where an idle actor leaves its state for the next one.
    parked: Arc<DashMap<i32, TokenBudget>>,
    clock: Clock,
    leases: Option<Leases>,
    /// Raises the 80 % and 100 % alerts: the handle, the token's brand, and the cap and anchor
    /// day of the token's budget as its last request carried them.
    alerts: crate::alerts::Alerts,
    brand_id: i32,
    budget_of: Option<(crate::money::Money, Option<u32>)>,
}

impl BudgetActor {
    pub fn new(
        token_id: i32,
        budget: TokenBudget,
        hold_ttl: Duration,
        idle_after: Duration,
        parked: Arc<DashMap<i32, TokenBudget>>,
        clock: Clock,
        leases: Option<Leases>,
    ) -> Self {
        BudgetActor {
            token_id,
            budget: Some(budget),
            hold_ttl,
            idle_after,
            last_active: clock.instant(),
            parked,
            clock,
            leases,
            alerts: crate::alerts::Alerts::default(),
            brand_id: 0,
            budget_of: None,
        }
    }

    /// Raises budget alerts for a token of `brand_id`.
    pub fn alerting(mut self, alerts: crate::alerts::Alerts, brand_id: i32) -> Self {
        self.alerts = alerts;
        self.brand_id = brand_id;
        self
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
        let idle_for = self.clock.instant().duration_since(self.last_active);
        if idle_for >= LEASE_IDLE
            && budget.lease_to_give_back()
            && let Some(leases) = self.leases.clone()
        {
            let (actor, token_id) = (ctx.address(), self.token_id);
            tokio::spawn(async move { leases.give_back(actor, token_id).await });
        }
        if budget.is_idle()
            && idle_for >= self.idle_after
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
        self.budget_of = msg
            .limits
            .monthly_budget
            .map(|cap| (cap, msg.limits.anchor_day));
        self.budget()
            .admit(&msg.limits, &msg.estimate, msg.now, ttl, msg.renewed)
    }
}

impl Handler<BeginExchange> for BudgetActor {
    type Result = Option<Snapshot>;

    fn handle(&mut self, msg: BeginExchange, _: &mut Context<Self>) -> Self::Result {
        // Not activity: an idle lease going back must not keep the actor awake.
        self.budget.as_mut()?.begin_exchange(msg.want.as_ref())
    }
}

impl Handler<EndExchange> for BudgetActor {
    type Result = ();

    fn handle(&mut self, msg: EndExchange, _: &mut Context<Self>) {
        if let Some(budget) = self.budget.as_mut() {
            budget.end_exchange(&msg.snapshot, msg.cap, msg.answered);
        }
    }
}

impl Handler<Settle> for BudgetActor {
    type Result = ();

    fn handle(&mut self, msg: Settle, _: &mut Context<Self>) {
        let now = self.clock.now();
        let Some((cap, anchor)) = self.budget_of else {
            self.budget().settle(msg.hold_id, msg.cost);
            return;
        };
        let before = self.budget().spent(now, anchor);
        self.budget().settle(msg.hold_id, msg.cost);
        let after = self.budget().spent(now, anchor);
        let period = crate::limits::BudgetPeriod::containing(now, anchor);
        self.alerts.budget_spent(
            self.token_id,
            self.brand_id,
            period.start,
            (before, after),
            cap,
        );
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

impl Handler<TakeShadow> for BudgetActor {
    type Result = MessageResult<TakeShadow>;

    fn handle(&mut self, _: TakeShadow, _: &mut Context<Self>) -> Self::Result {
        // Not activity: replaying must not keep an idle actor awake.
        let now = self.clock.now();
        MessageResult(
            self.budget
                .as_ref()
                .map(|b| b.shadow(now))
                .unwrap_or_default(),
        )
    }
}
