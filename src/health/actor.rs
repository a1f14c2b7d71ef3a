//! `KeyHealthActor`: one per provider; the only writer of its keys' `KeyState`.

use super::handle::KeyHealthView;
use super::key_state::{Consequence, HealthStatus, KeyLimits, KeyState, Outcome};
use super::shared::{SharedHealth, SharedState, Taken};
use crate::clock::Clock;
use crate::limits::{Scope, Shadow};
use crate::vault::Vault;
use actix::{Actor, AsyncContext, Context, Handler, Message, MessageResult};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// One key a request could use, in the caller's preference order.
#[derive(Debug, Clone)]
pub struct SlotRequest {
    pub id: i32,
    /// Lower is preferred: (tier, -priority). Ties go to the least recently used key.
    pub rank: (u8, i32),
    pub limits: KeyLimits,
}

/// Picks the best available key among `candidates` and counts the request against it, atomically.
#[derive(Message)]
#[rtype(result = "Option<Taken>")]
pub struct TakeSlot(pub Vec<SlotRequest>);

/// Takes back a `TakeSlot` the other replicas refused (see `SharedKeys::confirm`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Untake(pub Taken);

/// The replicas' shared state of a key, read from Redis.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Adopt {
    pub id: i32,
    pub state: SharedState,
}

/// Records what a call did to the key that served it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReportOutcome {
    pub id: i32,
    pub outcome: Outcome,
}

/// Clears a key's failures, rest and disabled flag (`reset-health`, or re-enabled by its owner).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ResetHealth(pub i32);

/// Every key's log of requests, to replay into Redis (see `KeyState::shadow`).
#[derive(Message)]
#[rtype(result = "Vec<Shadow>")]
pub struct TakeShadow;

/// The detailed view of some keys, for the admin API.
#[derive(Message)]
#[rtype(result = "HashMap<i32, KeyHealthView>")]
pub struct Describe(pub Vec<i32>);

pub struct KeyHealthActor {
    provider: Arc<str>,
    keys: HashMap<i32, KeyState>,
    published: Arc<ArcSwap<HashMap<i32, HealthStatus>>>,
    cooldown: Duration,
    vault: Vault,
    clock: Clock,
    /// Replicas share health through Redis: failures and clean slates are sent there too.
    shared: Option<SharedHealth>,
    alerts: crate::alerts::Alerts,
}

impl KeyHealthActor {
    pub fn new(
        provider: &str,
        keys: HashMap<i32, KeyState>,
        published: Arc<ArcSwap<HashMap<i32, HealthStatus>>>,
        cooldown: Duration,
        vault: Vault,
        clock: Clock,
        shared: Option<SharedHealth>,
    ) -> Self {
        let actor = KeyHealthActor {
            provider: provider.into(),
            keys,
            published,
            cooldown,
            vault,
            clock,
            shared,
            alerts: crate::alerts::Alerts::default(),
        };
        actor.publish();
        actor
    }

    /// Raises alerts when a key turns unhealthy, is disabled or reaches its spend limit.
    pub fn alerting(mut self, alerts: crate::alerts::Alerts) -> Self {
        self.alerts = alerts;
        self
    }

    /// Tells the other replicas what a call did to the key (a failure, or a clean slate after
    /// failures); a failure's shared count comes back to be adopted. Never waits.
    fn share(&self, id: i32, outcome: &Outcome, had_failures: bool, ctx: &Context<Self>) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let provider = self.provider.clone();
        match *outcome {
            Outcome::Failure { kind, .. } => {
                let me = ctx.address();
                actix::spawn(async move {
                    if let Ok(state) = shared.failed(&provider, id, kind).await {
                        me.do_send(Adopt { id, state });
                    }
                });
            }
            Outcome::Served { .. } if had_failures => {
                actix::spawn(async move {
                    let _ = shared.cleared(&provider, id).await;
                });
            }
            Outcome::Served { .. } => {}
        }
    }

    /// Republishes statuses; called only when one changed, so the hot path never pays for it.
    fn publish(&self) {
        let statuses = self.keys.iter().map(|(id, k)| (*id, k.status())).collect();
        self.published.store(Arc::new(statuses));
    }

    fn persist(&self, id: i32) {
        let Some(key) = self.keys.get(&id) else {
            return;
        };
        let (status, failures, error, used) = (
            key.status(),
            key.failures(),
            key.last_error.clone(),
            key.last_used,
        );
        let vault = self.vault.clone();
        actix::spawn(async move { vault.write_health(id, status, failures, error, used).await });
    }
}

impl Actor for KeyHealthActor {
    type Context = Context<Self>;
}

/// The key `id` of `provider` for an alert, with its owner from the vault.
fn key_ref<'a>(provider: &'a str, vault: &Vault, id: i32) -> crate::alerts::KeyRef<'a> {
    crate::alerts::KeyRef {
        provider,
        integration_id: id,
        brand_id: vault
            .snapshot()
            .get(id)
            .and_then(|k| k.record.owner.brand_id()),
    }
}

impl Handler<TakeSlot> for KeyHealthActor {
    type Result = Option<Taken>;

    fn handle(&mut self, TakeSlot(candidates): TakeSlot, _: &mut Context<Self>) -> Option<Taken> {
        let (now, wall) = (self.clock.instant(), self.clock.now());
        let today = wall.date_naive();
        let mut best: Option<(&SlotRequest, Option<chrono::DateTime<chrono::Utc>>)> = None;
        for candidate in &candidates {
            let key = self.keys.entry(candidate.id).or_default();
            if key.check(&candidate.limits, now, today).is_err() {
                continue;
            }
            let better =
                best.is_none_or(|(b, used)| (candidate.rank, key.last_used) < (b.rank, used));
            if better {
                best = Some((candidate, key.last_used));
            }
        }
        let (id, limits) = best.map(|(b, _)| (b.id, b.limits))?;
        let key = self.keys.entry(id).or_default();
        key.spend_limit = limits.spend;
        let probe = key.take(now, today, wall);
        let (minute, day) = key.counts(now, today);
        Some(Taken {
            id,
            probe,
            minute,
            day,
        })
    }
}

impl Handler<Untake> for KeyHealthActor {
    type Result = ();

    fn handle(&mut self, Untake(taken): Untake, _: &mut Context<Self>) {
        let (now, today) = (self.clock.instant(), self.clock.today());
        let key = self.keys.entry(taken.id).or_default();
        key.untake(taken.probe, now, today, self.cooldown);
    }
}

impl Handler<Adopt> for KeyHealthActor {
    type Result = ();

    fn handle(&mut self, Adopt { id, state }: Adopt, _: &mut Context<Self>) {
        let now = self.clock.instant();
        // A key this replica has not used yet needs a state only when the shared one is not clean.
        if state == SharedState::default() && !self.keys.contains_key(&id) {
            return;
        }
        if self.keys.entry(id).or_default().adopt(state, now) {
            self.publish();
        }
    }
}

impl Handler<ReportOutcome> for KeyHealthActor {
    type Result = ();

    fn handle(&mut self, msg: ReportOutcome, ctx: &mut Context<Self>) {
        let key = self.keys.entry(msg.id).or_default();
        let before = (key.status(), key.failures());
        let consequence = match &msg.outcome {
            Outcome::Served { cost } => {
                key.succeed();
                let today = self.clock.today();
                let reached_before = key.spend_limit.map(|l| key.over_spend(l, today));
                key.add_spend(*cost, today);
                if let Some(limit) = key.spend_limit
                    && reached_before == Some(false)
                    && key.over_spend(limit, today)
                {
                    let (day, month) = key.spend(today);
                    let spent = if limit.daily { day } else { month };
                    let about = key_ref(&self.provider, &self.vault, msg.id);
                    self.alerts
                        .key_spend_limit(about, limit.limit, spent, limit.daily, today);
                }
                Consequence::None
            }
            // A failure is rare: its message is copied, the served path allocates nothing.
            Outcome::Failure { kind, message } => {
                key.fail(*kind, message.clone(), self.clock.instant(), self.cooldown)
            }
        };
        let after = (key.status(), key.failures());
        self.share(msg.id, &msg.outcome, before.1 > 0, ctx);
        let status_changed = before.0 != after.0;
        if before != after {
            self.persist(msg.id);
        }
        if status_changed {
            self.publish();
            if after.0 == HealthStatus::Unhealthy {
                let error = self.keys.get(&msg.id).and_then(|k| k.last_error.as_deref());
                let about = key_ref(&self.provider, &self.vault, msg.id);
                let now = self.clock.now();
                self.alerts.key_health("key.unhealthy", about, now, error);
            }
        }
        if consequence == Consequence::Disable {
            let error = self.keys.get(&msg.id).and_then(|k| k.last_error.as_deref());
            let about = key_ref(&self.provider, &self.vault, msg.id);
            let now = self.clock.now();
            self.alerts.key_health("key.disabled", about, now, error);
            let vault = self.vault.clone();
            actix::spawn(async move { vault.disable_for_auth_failures(msg.id).await });
        }
    }
}

impl Handler<ResetHealth> for KeyHealthActor {
    type Result = ();

    fn handle(&mut self, ResetHealth(id): ResetHealth, ctx: &mut Context<Self>) {
        let served = Outcome::Served {
            cost: crate::money::Money::ZERO,
        };
        self.share(id, &served, true, ctx);
        self.keys.entry(id).or_default().reset();
        self.persist(id);
        self.publish();
    }
}

impl Handler<Describe> for KeyHealthActor {
    type Result = MessageResult<Describe>;

    fn handle(&mut self, Describe(ids): Describe, _: &mut Context<Self>) -> Self::Result {
        let (now, today) = (self.clock.instant(), self.clock.today());
        let views = ids
            .into_iter()
            .map(|id| {
                let key = self.keys.entry(id).or_default();
                (id, KeyHealthView::of(key, now, today))
            })
            .collect();
        MessageResult(views)
    }
}

impl Handler<TakeShadow> for KeyHealthActor {
    type Result = MessageResult<TakeShadow>;

    fn handle(&mut self, _: TakeShadow, _: &mut Context<Self>) -> Self::Result {
        let (now, wall) = (self.clock.instant(), self.clock.now());
        let (now_ms, today) = (wall.timestamp_millis(), wall.date_naive());
        let shadows = self
            .keys
            .iter()
            .map(|(id, key)| {
                let (minute, day) = key.shadow(now, now_ms, today);
                // Today's requests are replayed at now: a day slot may free late, never early.
                let day = if day > 0 { vec![(now_ms, day)] } else { vec![] };
                Shadow {
                    scope: Scope::Key(*id),
                    minute,
                    day,
                }
            })
            .filter(|s| !s.minute.is_empty() || !s.day.is_empty())
            .collect();
        MessageResult(shadows)
    }
}
