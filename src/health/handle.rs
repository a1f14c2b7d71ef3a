//! `Health`: every provider's `ProviderKeys` behind one handle; snapshot reads for routing.

use super::key_state::{HealthStatus, KeyState, Outcome, SpendCounter};
use super::keys::{ProviderKeys, SlotRequest};
use super::shared::{SharedKeys, SharedState};
use super::window::DayCounter;
use crate::clock::Clock;
use crate::money::Money;
use crate::usage::IntegrationSpend;
use crate::vault::Vault;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One key's health as the admin API shows it.
#[derive(Debug, Clone)]
pub struct KeyHealthView {
    pub status: HealthStatus,
    pub consecutive_failures: u32,
    pub minute_count: u32,
    pub daily_count: u32,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub spend_today: Money,
    pub spend_month: Money,
}

impl KeyHealthView {
    pub(super) fn of(key: &mut KeyState, now: Instant, today: NaiveDate) -> Self {
        let (minute_count, daily_count) = key.counts(now, today);
        let (spend_today, spend_month) = key.spend(today);
        KeyHealthView {
            status: key.status(),
            consecutive_failures: key.failures(),
            minute_count,
            daily_count,
            last_used_at: key.last_used,
            last_error: key.last_error.clone(),
            spend_today,
            spend_month,
        }
    }
}

#[derive(Clone)]
pub struct Health {
    providers: Arc<HashMap<String, Arc<ProviderKeys>>>,
    /// Replicas share key health and key limits through Redis.
    shared: Option<SharedKeys>,
}

impl Health {
    /// Makes one `ProviderKeys` per catalog provider, seeded with the stored failure counts and each
    /// key's spend today and this month.
    pub fn start(
        providers: impl Iterator<Item = String>,
        vault: &Vault,
        cooldown: Duration,
        spend: &HashMap<i32, IntegrationSpend>,
        clock: &Clock,
        shared: Option<SharedKeys>,
        alerts: crate::alerts::Alerts,
    ) -> Health {
        let today = clock.today();
        let snapshot = vault.snapshot();
        let mut map = HashMap::new();
        for provider in providers {
            let initial: HashMap<i32, KeyState> = snapshot
                .all_of(&provider)
                .map(|k| {
                    let seed = spend.get(&k.record.id).copied().unwrap_or_default();
                    let spend = SpendCounter::seeded(seed.today, seed.month, today);
                    let day = DayCounter::seeded(today, seed.requests_today);
                    (
                        k.record.id,
                        KeyState::restored(k.record.consecutive_failures, spend, day),
                    )
                })
                .collect();
            let keys = ProviderKeys::new(
                &provider,
                initial,
                cooldown,
                vault.clone(),
                clock.clone(),
                shared.as_ref().map(|s| s.health.clone()),
                alerts.clone(),
            );
            map.insert(provider, Arc::new(keys));
        }
        Health {
            providers: Arc::new(map),
            shared,
        }
    }

    /// Key health and limits shared with other replicas, when Redis is configured.
    pub fn shared(&self) -> Option<&SharedKeys> {
        self.shared.as_ref()
    }

    /// The key's current status from the snapshot. Unknown keys are healthy.
    pub fn status(&self, provider: &str, id: i32) -> HealthStatus {
        self.providers
            .get(provider)
            .and_then(|p| p.published.load().get(&id).copied())
            .unwrap_or(HealthStatus::Healthy)
    }

    /// Takes the best available key of `candidates` for one request; `None` when none can serve.
    /// With replicas, a key the other replicas refuse (at its shared limit, or probed by
    /// another) is given back and the next best is taken.
    pub async fn take_slot(&self, provider: &str, candidates: &[SlotRequest]) -> Option<i32> {
        let p = self.providers.get(provider)?;
        let mut taken = p.take_slot(candidates)?;
        let Some(shared) = &self.shared else {
            return Some(taken.id);
        };
        // The replicas' path: what they refuse is left out of the next pick.
        let mut candidates = candidates.to_vec();
        loop {
            let limits = candidates
                .iter()
                .find(|c| c.id == taken.id)
                .map(|c| c.limits)
                .unwrap_or_default();
            if shared.confirm(&taken, &limits).await {
                return Some(taken.id);
            }
            p.untake(taken);
            candidates.retain(|c| c.id != taken.id);
            taken = p.take_slot(&candidates)?;
        }
    }

    /// Every key's log of requests, to replay into Redis.
    pub async fn shadows(&self) -> Vec<crate::limits::Shadow> {
        let mut shadows = Vec::new();
        for p in self.providers.values() {
            shadows.extend(p.shadows());
        }
        shadows
    }

    /// Takes another replica's view of a key (from Redis).
    pub fn adopt(&self, provider: &str, id: i32, state: SharedState) {
        if let Some(p) = self.providers.get(provider) {
            p.adopt(id, state);
        }
    }

    /// Records an outcome, at once (so it holds even if the request that caused it is gone).
    pub fn report(&self, provider: &str, id: i32, outcome: Outcome) {
        if let Some(p) = self.providers.get(provider) {
            p.report(id, outcome);
        }
    }

    /// Records that the key served a request costing `cost`: clears its failures and adds to its
    /// spend. Skipped when it would change nothing (a healthy key, a free request), which is
    /// most requests, so the hot path usually takes the provider's lock once, not twice.
    pub fn report_served(&self, provider: &str, id: i32, cost: Money) {
        if cost == Money::ZERO && self.status(provider, id) == HealthStatus::Healthy {
            return;
        }
        self.report(provider, id, Outcome::Served { cost });
    }

    pub async fn reset(&self, provider: &str, id: i32) {
        if let Some(p) = self.providers.get(provider) {
            p.reset(id);
        }
    }

    pub async fn describe(&self, provider: &str, ids: Vec<i32>) -> HashMap<i32, KeyHealthView> {
        let Some(p) = self.providers.get(provider) else {
            return HashMap::new();
        };
        p.describe(ids)
    }
}
