//! `VaultSnapshot`: the immutable view of every key that routing reads without messaging.

use super::key::{Owner, VaultKey};
use std::collections::HashMap;
use std::sync::Arc;

/// How close a key is to the caller; lower is tried first (API.md section 5's order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Own = 0,
    Shared = 1,
    Pool = 2,
}

#[derive(Default, Debug)]
pub struct VaultSnapshot {
    by_id: HashMap<i32, Arc<VaultKey>>,
    by_provider: HashMap<String, Vec<Arc<VaultKey>>>,
}

impl VaultSnapshot {
    pub fn build(keys: impl Iterator<Item = Arc<VaultKey>>) -> Self {
        let mut snapshot = VaultSnapshot::default();
        for key in keys {
            snapshot
                .by_provider
                .entry(key.record.provider.clone())
                .or_default()
                .push(key.clone());
            snapshot.by_id.insert(key.record.id, key);
        }
        for keys in snapshot.by_provider.values_mut() {
            keys.sort_by_key(|k| k.record.id);
        }
        snapshot
    }

    pub fn get(&self, id: i32) -> Option<&Arc<VaultKey>> {
        self.by_id.get(&id)
    }

    /// The active keys of `provider` that `brand_id` may use, with their tier.
    pub fn usable(
        &self,
        provider: &str,
        brand_id: i32,
    ) -> impl Iterator<Item = (Tier, &Arc<VaultKey>)> {
        self.by_provider
            .get(provider)
            .into_iter()
            .flatten()
            .filter(|k| k.record.is_active)
            .filter_map(move |k| {
                tier(k.record.owner, k.record.share_with_pool, brand_id).map(|t| (t, k))
            })
    }

    /// Every key, whatever its provider, owner or state.
    pub fn all_keys(&self) -> impl Iterator<Item = &Arc<VaultKey>> {
        self.by_id.values()
    }

    /// Every key of `provider`, whatever its owner or state.
    pub fn all_of(&self, provider: &str) -> impl Iterator<Item = &Arc<VaultKey>> {
        self.by_provider.get(provider).into_iter().flatten()
    }

    /// Whether `brand_id` (or an anonymous caller, `None`: pool keys only) has any usable key.
    pub fn is_configured(&self, provider: &str, brand_id: Option<i32>) -> bool {
        match brand_id {
            Some(brand) => self.usable(provider, brand).next().is_some(),
            None => self.by_provider.get(provider).is_some_and(|keys| {
                keys.iter()
                    .any(|k| k.record.is_active && k.record.owner == Owner::Pool)
            }),
        }
    }
}

fn tier(owner: Owner, shared: bool, brand_id: i32) -> Option<Tier> {
    match owner {
        Owner::Brand(id) if id == brand_id => Some(Tier::Own),
        Owner::Brand(_) if shared => Some(Tier::Shared),
        Owner::Brand(_) => None,
        Owner::Pool => Some(Tier::Pool),
    }
}
