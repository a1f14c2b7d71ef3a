//! The ordered candidate chain for a request (pure: snapshots in, plan out).

use crate::catalog::{Catalog, Model};
use crate::error::{ApiError, ErrorCode};
use crate::health::{Health, HealthStatus, SlotRequest};
use crate::vault::VaultSnapshot;
use std::sync::Arc;

/// One model of the chain, with the keys that could serve it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub model: Arc<Model>,
    pub keys: Vec<SlotRequest>,
    /// The completion limit this model is sent when a hard budget caps it (else the client's).
    pub completion_limit: Option<u64>,
}

#[derive(Debug)]
pub struct Plan {
    /// What the caller asked for (a model id or an alias).
    pub requested: String,
    /// The chain's first choice; serving anything else is a fallback.
    pub first_choice: String,
    pub candidates: Vec<Candidate>,
}

impl Plan {
    /// Applies a hard budget's completion limits, one per candidate in order; a candidate the
    /// budget cannot pay for even one token of (0) leaves the chain.
    pub fn limit_completions(&mut self, limits: &[u64]) {
        if limits.len() != self.candidates.len() {
            return;
        }
        let mut limits = limits.iter();
        self.candidates.retain_mut(|candidate| {
            let limit = limits.next().copied().unwrap_or(0);
            candidate.completion_limit = Some(limit);
            limit > 0
        });
    }

    /// The completion limit `model_id` is sent (`None`: the client's own, unchanged).
    pub fn completion_limit(&self, model_id: &str) -> Option<u64> {
        self.candidates
            .iter()
            .find(|c| c.model.id == model_id)
            .and_then(|c| c.completion_limit)
    }
}

/// Resolves `requested` (a model id or an alias) for `brand_id`; 404 `model_not_found` if unknown.
/// `free_only` keeps only the chain's free-tier models (the allow-list check ran before).
pub fn plan(
    catalog: &Catalog,
    vault: &VaultSnapshot,
    health: &Health,
    brand_id: i32,
    requested: &str,
    free_only: bool,
) -> Result<Plan, ApiError> {
    let chain: Vec<&Arc<Model>> = match catalog.alias(requested) {
        Some(alias) => alias
            .models
            .iter()
            .filter_map(|id| catalog.model(id))
            .collect(),
        None => catalog.model(requested).into_iter().collect(),
    };
    let chain: Vec<&Arc<Model>> = chain
        .into_iter()
        .filter(|m| !free_only || m.free_tier)
        .collect();
    if chain.is_empty() {
        return Err(ApiError::new(
            ErrorCode::ModelNotFound,
            format!("model `{requested}` does not exist; see GET /api/gate/v1/models and /aliases"),
        )
        .with_param("model"));
    }
    Ok(plan_models(vault, health, brand_id, requested, chain))
}

/// The plan for an explicit chain of models.
pub fn plan_models(
    vault: &VaultSnapshot,
    health: &Health,
    brand_id: i32,
    requested: &str,
    chain: Vec<&Arc<Model>>,
) -> Plan {
    let first_choice = chain.first().map(|m| m.id.clone()).unwrap_or_default();
    let mut candidates: Vec<(bool, Candidate)> = chain
        .into_iter()
        .map(|model| {
            let keys: Vec<SlotRequest> = vault
                .usable(&model.provider, brand_id)
                .map(|(tier, key)| SlotRequest {
                    id: key.record.id,
                    rank: (tier as u8, -key.record.priority()),
                    limits: key.record.limits(),
                })
                .collect();
            let healthy = keys
                .iter()
                .any(|k| health.status(&model.provider, k.id) != HealthStatus::Unhealthy);
            (
                healthy,
                Candidate {
                    model: model.clone(),
                    keys,
                    completion_limit: None,
                },
            )
        })
        .collect();
    // Stable: within each group the chain's ranking stands.
    candidates.sort_by_key(|(healthy, _)| !healthy);
    Plan {
        requested: requested.to_owned(),
        first_choice,
        candidates: candidates.into_iter().map(|(_, c)| c).collect(),
    }
}
