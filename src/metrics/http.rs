//! `GET /metrics`: the exposition text, behind `metrics.token` when one is set.

use super::Gauges;
use crate::auth::{Credential, Digest, parse_bearer};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use std::collections::BTreeMap;

/// This module's operations in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(scrape))]
pub struct Api;

/// Prometheus text exposition (behind `metrics.token` when one is set).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "The metrics", content_type = "text/plain", body = String),
        crate::openapi::schemas::Failed),
    security((), ("metrics" = [])))]
pub async fn scrape(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let config = &state.config.metrics;
    if !config.enabled {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "metrics are disabled (metrics.enabled = false)",
        ));
    }
    if !config.token.is_empty() {
        let header = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
        let sent = match parse_bearer(header)? {
            Credential::Pat(token) | Credential::Opaque(token) => Digest::of(token),
            Credential::Triple { .. } => Digest::of(""),
        };
        if !Digest::of(config.token.expose()).matches(&sent) {
            return Err(ApiError::new(
                ErrorCode::InvalidApiKey,
                "not the metrics token (metrics.token)",
            ));
        }
    }
    let gauges = Gauges {
        ledger_queue: state.usage.backlog(),
        key_health: key_health(&state),
    };
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(&gauges)))
}

/// Vault keys by provider and state (`disabled`, or the health of an active key).
fn key_health(state: &AppState) -> Vec<(String, &'static str, usize)> {
    let mut counts: BTreeMap<(String, &'static str), usize> = BTreeMap::new();
    for key in state.vault.snapshot().all_keys() {
        let record = &key.record;
        let health = if record.is_active {
            state.health.status(&record.provider, record.id).as_str()
        } else {
            "disabled"
        };
        *counts.entry((record.provider.clone(), health)).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|((provider, health), keys)| (provider, health, keys))
        .collect()
}
