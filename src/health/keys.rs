//! `ProviderKeys`: one per provider; the only writer of its keys' `KeyState`, behind its own lock.
//!
//! A request takes its key slot and reports its outcome under the lock, on its own thread: the
//! lock guards one decision's arithmetic and is never held across an await, so taking a slot is
//! atomic however many requests race, and no request waits for another thread to wake (what the
//! actor this replaced cost on every request). Side effects (writing health to the vault, telling
//! the other replicas, disabling a key) run as tasks on the runtime that built the app, so a worker
//! stopping at shutdown never drops one.

use super::handle::KeyHealthView;
use super::key_state::{Consequence, HealthStatus, KeyLimits, KeyState, Outcome};
use super::shared::{SharedHealth, SharedState, Taken};
use crate::clock::Clock;
use crate::limits::{Scope, Shadow};
use crate::vault::Vault;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// One key a request could use, in the caller's preference order.
#[derive(Debug, Clone)]
pub struct SlotRequest {
    pub id: i32,
    /// Lower is preferred: (tier, -priority). Ties go to the least recently used key.
    pub rank: (u8, i32),
    pub limits: KeyLimits,
}

pub(super) struct ProviderKeys {
    provider: Arc<str>,
    keys: Mutex<HashMap<i32, KeyState>>,
    /// Each key's status, republished only when one changes; routing reads it without the lock.
    pub(super) published: ArcSwap<HashMap<i32, HealthStatus>>,
    cooldown: Duration,
    vault: Vault,
    clock: Clock,
    /// Replicas share health through Redis: failures and clean slates are sent there too.
    shared: Option<SharedHealth>,
    alerts: crate::alerts::Alerts,
    /// Where side effects run: the runtime that built the app, which outlives the workers.
    home: tokio::runtime::Handle,
}

type Keys = HashMap<i32, KeyState>;

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

impl ProviderKeys {
    pub(super) fn new(
        provider: &str,
        keys: Keys,
        cooldown: Duration,
        vault: Vault,
        clock: Clock,
        shared: Option<SharedHealth>,
        alerts: crate::alerts::Alerts,
    ) -> Self {
        let published = ArcSwap::from_pointee(statuses(&keys));
        ProviderKeys {
            provider: provider.into(),
            keys: Mutex::new(keys),
            published,
            cooldown,
            vault,
            clock,
            shared,
            alerts,
            home: tokio::runtime::Handle::current(),
        }
    }

    /// A panic elsewhere while the lock was held leaves each key's counters consistent (every
    /// step finishes before the next begins), so a poisoned lock is used as it is.
    fn keys(&self) -> MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Republishes statuses; called only when one changed, so the hot path never pays for it.
    fn publish(&self, keys: &Keys) {
        self.published.store(Arc::new(statuses(keys)));
    }

    /// Picks the best available key among `candidates` and counts the request against it,
    /// atomically.
    pub(super) fn take_slot(&self, candidates: &[SlotRequest]) -> Option<Taken> {
        let (now, wall) = (self.clock.instant(), self.clock.now());
        let today = wall.date_naive();
        let mut keys = self.keys();
        let mut best: Option<(&SlotRequest, Option<chrono::DateTime<chrono::Utc>>)> = None;
        for candidate in candidates {
            let key = keys.entry(candidate.id).or_default();
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
        let key = keys.entry(id).or_default();
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

    /// Takes back a slot the other replicas refused (see `SharedKeys::confirm`).
    pub(super) fn untake(&self, taken: Taken) {
        let (now, today) = (self.clock.instant(), self.clock.today());
        let mut keys = self.keys();
        let key = keys.entry(taken.id).or_default();
        key.untake(taken.probe, now, today, self.cooldown);
    }

    /// Takes the replicas' shared state of a key, read from Redis.
    pub(super) fn adopt(&self, id: i32, state: SharedState) {
        let now = self.clock.instant();
        let mut keys = self.keys();
        // A key this replica has not used yet needs a state only when the shared one is not clean.
        if state == SharedState::default() && !keys.contains_key(&id) {
            return;
        }
        if keys.entry(id).or_default().adopt(state, now) {
            self.publish(&keys);
        }
    }

    /// Records what a call did to the key that served it.
    pub(super) fn report(self: &Arc<Self>, id: i32, outcome: Outcome) {
        let mut keys = self.keys();
        let key = keys.entry(id).or_default();
        let before = (key.status(), key.failures());
        let consequence = match &outcome {
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
                    let about = key_ref(&self.provider, &self.vault, id);
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
        let last_error = key.last_error.clone();
        if before != after {
            self.persist(&keys, id);
        }
        if before.0 != after.0 {
            self.publish(&keys);
        }
        drop(keys);
        self.share(id, &outcome, before.1 > 0);
        let now = self.clock.now();
        if before.0 != after.0 && after.0 == HealthStatus::Unhealthy {
            let about = key_ref(&self.provider, &self.vault, id);
            self.alerts
                .key_health("key.unhealthy", about, now, last_error.as_deref());
        }
        if consequence == Consequence::Disable {
            let about = key_ref(&self.provider, &self.vault, id);
            self.alerts
                .key_health("key.disabled", about, now, last_error.as_deref());
            let vault = self.vault.clone();
            self.home
                .spawn(async move { vault.disable_for_auth_failures(id).await });
        }
    }

    /// Clears a key's failures, rest and disabled flag (`reset-health`, or re-enabled by its
    /// owner).
    pub(super) fn reset(self: &Arc<Self>, id: i32) {
        let served = Outcome::Served {
            cost: crate::money::Money::ZERO,
        };
        self.share(id, &served, true);
        let mut keys = self.keys();
        keys.entry(id).or_default().reset();
        self.persist(&keys, id);
        self.publish(&keys);
    }

    /// The detailed view of some keys, for the admin API.
    pub(super) fn describe(&self, ids: Vec<i32>) -> HashMap<i32, KeyHealthView> {
        let (now, today) = (self.clock.instant(), self.clock.today());
        let mut keys = self.keys();
        ids.into_iter()
            .map(|id| {
                let key = keys.entry(id).or_default();
                (id, KeyHealthView::of(key, now, today))
            })
            .collect()
    }

    /// Every key's log of requests, to replay into Redis (see `KeyState::shadow`).
    pub(super) fn shadows(&self) -> Vec<Shadow> {
        let (now, wall) = (self.clock.instant(), self.clock.now());
        let (now_ms, today) = (wall.timestamp_millis(), wall.date_naive());
        self.keys()
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
            .collect()
    }

    /// Tells the other replicas what a call did to the key (a failure, or a clean slate after
    /// failures); a failure's shared count comes back to be adopted. Never waits.
    fn share(self: &Arc<Self>, id: i32, outcome: &Outcome, had_failures: bool) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let provider = self.provider.clone();
        match *outcome {
            Outcome::Failure { kind, .. } => {
                let me = self.clone();
                self.home.spawn(async move {
                    if let Ok(state) = shared.failed(&provider, id, kind).await {
                        me.adopt(id, state);
                    }
                });
            }
            Outcome::Served { .. } if had_failures => {
                self.home.spawn(async move {
                    let _ = shared.cleared(&provider, id).await;
                });
            }
            Outcome::Served { .. } => {}
        }
    }

    fn persist(&self, keys: &Keys, id: i32) {
        let Some(key) = keys.get(&id) else {
            return;
        };
        let (status, failures, error, used) = (
            key.status(),
            key.failures(),
            key.last_error.clone(),
            key.last_used,
        );
        let vault = self.vault.clone();
        self.home
            .spawn(async move { vault.write_health(id, status, failures, error, used).await });
    }
}

fn statuses(keys: &Keys) -> HashMap<i32, HealthStatus> {
    keys.iter().map(|(id, k)| (*id, k.status())).collect()
}
