//! `KeyHealthActor`: one per provider; the only writer of its keys' `KeyState`.

use super::handle::KeyHealthView;
use super::key_state::{Consequence, HealthStatus, KeyLimits, KeyState, Outcome};
use crate::clock::Clock;
use crate::vault::Vault;
use actix::{Actor, Context, Handler, Message, MessageResult};
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
#[rtype(result = "Option<i32>")]
pub struct TakeSlot(pub Vec<SlotRequest>);

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

/// The detailed view of some keys, for the admin API.
#[derive(Message)]
#[rtype(result = "HashMap<i32, KeyHealthView>")]
pub struct Describe(pub Vec<i32>);

pub struct KeyHealthActor {
    keys: HashMap<i32, KeyState>,
    published: Arc<ArcSwap<HashMap<i32, HealthStatus>>>,
    cooldown: Duration,
    vault: Vault,
    clock: Clock,
}

impl KeyHealthActor {
    pub fn new(
        keys: HashMap<i32, KeyState>,
        published: Arc<ArcSwap<HashMap<i32, HealthStatus>>>,
        cooldown: Duration,
        vault: Vault,
        clock: Clock,
    ) -> Self {
        let actor = KeyHealthActor {
            keys,
            published,
            cooldown,
            vault,
            clock,
        };
        actor.publish();
        actor
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

impl Handler<TakeSlot> for KeyHealthActor {
    type Result = Option<i32>;

    fn handle(&mut self, TakeSlot(candidates): TakeSlot, _: &mut Context<Self>) -> Option<i32> {
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
        let id = best?.0.id;
        self.keys.entry(id).or_default().take(now, today, wall);
        Some(id)
    }
}

impl Handler<ReportOutcome> for KeyHealthActor {
    type Result = ();

    fn handle(&mut self, msg: ReportOutcome, _: &mut Context<Self>) {
        let key = self.keys.entry(msg.id).or_default();
        let before = (key.status(), key.failures());
        let consequence = match msg.outcome {
            Outcome::Served { cost } => {
                key.succeed();
                key.add_spend(cost, self.clock.today());
                Consequence::None
            }
            Outcome::Failure { kind, message } => {
                key.fail(kind, message, self.clock.instant(), self.cooldown)
            }
        };
        let status_changed = before.0 != key.status();
        if before != (key.status(), key.failures()) {
            self.persist(msg.id);
        }
        if status_changed {
            self.publish();
        }
        if consequence == Consequence::Disable {
            let vault = self.vault.clone();
            actix::spawn(async move { vault.disable_for_auth_failures(msg.id).await });
        }
    }
}

impl Handler<ResetHealth> for KeyHealthActor {
    type Result = ();

    fn handle(&mut self, ResetHealth(id): ResetHealth, _: &mut Context<Self>) {
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
