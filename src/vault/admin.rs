//! `/api/v1/integrations` (a brand's keys) and `/api/v1/admin/pool-keys` (the operator's pool):
//! the same handlers, told apart by the `Owner` the authentication middleware established.
//! Responses use the seed's `{"success": …}` envelope.

use super::handle::Vault;
use super::key::{KeyRecord, Owner};
use super::manage::{self, IntegrationFields};
use super::view::IntegrationView;
use crate::auth::{Operator, Principal};
use crate::error::{ApiError, ErrorCode};
use crate::health::HealthStatus;
use crate::json::Json;
use crate::openapi::schemas::{Id, VaultFailed};
use crate::path_id::PathId;
use crate::providers::Endpoint;
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::future::{Ready, ready};
use utoipa::{IntoParams, ToSchema};

/// This module's operations in the OpenAPI document (also copied under `/api/v1/admin/pool-keys`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_keys,
    create_key,
    health_report,
    test_credentials,
    get_key,
    update_key,
    delete_key,
    reset_health,
    test_key
))]
pub struct Api;

#[derive(Serialize, ToSchema)]
struct One {
    success: bool,
    integration: IntegrationView,
}

#[derive(Serialize, ToSchema)]
struct Page {
    success: bool,
    integrations: Vec<IntegrationView>,
    /// Matching keys in all (the page holds at most `limit`).
    total: usize,
}

#[derive(Serialize, ToSchema)]
struct Deleted {
    success: bool,
    message: &'static str,
    deleted_id: i32,
}

#[derive(Serialize, ToSchema)]
struct HealthReport {
    success: bool,
    summary: HealthSummary,
    integrations: Vec<KeyHealth>,
    recommendations: Vec<String>,
}

#[derive(Serialize, ToSchema)]
struct HealthSummary {
    total: usize,
    healthy: usize,
    degraded: usize,
    unhealthy: usize,
}

#[derive(Serialize, ToSchema)]
struct KeyHealth {
    id: i32,
    provider_name: String,
    key_label: Option<String>,
    #[schema(value_type = String)]
    health_status: &'static str,
    consecutive_failures: u32,
    last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    last_error: Option<String>,
}

/// What a test call to the provider found.
#[derive(Serialize, ToSchema)]
struct Checked {
    success: bool,
    latency_ms: u64,
    error: Option<String>,
}

fn one(integration: IntegrationView) -> One {
    One {
        success: true,
        integration,
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("").get(list_keys).post(create_key))
        .service(web::resource("/health").get(health_report))
        .service(web::resource("/test").post(test_credentials))
        .service(
            web::resource("/{id}")
                .get(get_key)
                .patch(update_key)
                .delete(delete_key),
        )
        .service(web::resource("/{id}/reset-health").post(reset_health))
        .service(web::resource("/{id}/test").post(test_key));
}

/// An error in the seed's envelope: `{"success": false, "error": message, "code": code}`.
#[derive(Debug)]
pub struct SeedError(ApiError);

impl<E: Into<ApiError>> From<E> for SeedError {
    fn from(err: E) -> Self {
        SeedError(err.into())
    }
}

impl std::fmt::Display for SeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for SeedError {
    fn status_code(&self) -> StatusCode {
        self.0.code().status()
    }

    fn error_response(&self) -> HttpResponse {
        if self.0.code() == ErrorCode::Internal {
            return self.0.error_response();
        }
        HttpResponse::build(self.status_code())
            .json(json!({ "success": false, "error": self.0.to_string(), "code": self.0.code().as_str() }))
    }
}

/// A JSON body whose errors use the seed envelope.
pub struct SeedJson<T>(T);

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for SeedJson<T> {
    type Error = SeedError;
    type Future = LocalBoxFuture<'static, Result<Self, SeedError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = Json::<T>::from_request(req, payload);
        Box::pin(async move { Ok(SeedJson(body.await?.into_inner())) })
    }
}

/// Whose keys this request manages: the calling brand's, or (operator routes) the pool's.
impl FromRequest for Owner {
    type Error = ApiError;
    type Future = Ready<Result<Owner, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let extensions = req.extensions();
        let owner = match (extensions.get::<Principal>(), extensions.get::<Operator>()) {
            (Some(principal), _) => Ok(Owner::Brand(principal.brand_id)),
            (None, Some(_)) => Ok(Owner::Pool),
            (None, None) => Err(ApiError::internal(anyhow::anyhow!(
                "vault route without authentication"
            ))),
        };
        ready(owner)
    }
}

/// Views with live health from the providers' health actors.
/// The keys as their owner sees them, with live health (the API and the dashboard).
pub async fn views(state: &AppState, records: Vec<KeyRecord>) -> Vec<IntegrationView> {
    let mut by_provider: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for r in &records {
        by_provider
            .entry(r.provider.clone())
            .or_default()
            .push(r.id);
    }
    let mut health = std::collections::HashMap::new();
    for (provider, ids) in by_provider {
        health.extend(state.health.describe(&provider, ids).await);
    }
    let catalog = state.catalog.load();
    records
        .into_iter()
        .map(|r| {
            let label = catalog
                .provider(&r.provider)
                .map_or(r.provider.clone(), |p| p.label.clone());
            let live = health.remove(&r.id);
            IntegrationView::new(r, &label, live)
        })
        .collect()
}

async fn view(state: &AppState, record: KeyRecord) -> IntegrationView {
    views(state, vec![record]).await.remove(0)
}

/// Adds a provider key (encrypted at rest); the answer shows a preview of it, never the key.
#[utoipa::path(post, path = "/api/v1/integrations", tag = "integrations",
    request_body = IntegrationFields,
    responses((status = 201, description = "Added", body = One), VaultFailed),
    security(("brand" = [])))]
async fn create_key(
    state: web::Data<AppState>,
    owner: Owner,
    body: SeedJson<IntegrationFields>,
) -> Result<HttpResponse, SeedError> {
    let record = manage::create_key(&state.vault, &state.catalog.load(), owner, body.0).await?;
    tracing::info!(integration_id = record.id, provider = %record.provider, "provider key added");
    Ok(HttpResponse::Created().json(one(view(&state, record).await)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    provider_name: Option<String>,
    /// `healthy`, `degraded` or `unhealthy`.
    health_status: Option<String>,
    is_active: Option<bool>,
    /// 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    #[serde(default)]
    offset: usize,
}

/// The owner's keys with live health, filtered and paged.
#[utoipa::path(get, path = "/api/v1/integrations", tag = "integrations", params(ListQuery),
    responses((status = 200, description = "A page of keys", body = Page), VaultFailed),
    security(("brand" = [])))]
async fn list_keys(
    state: web::Data<AppState>,
    owner: Owner,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, SeedError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "must be between 1 and 100").into());
    }
    let records: Vec<KeyRecord> = manage::list_keys(&state.vault, owner)
        .await?
        .into_iter()
        .filter(|r| {
            query
                .provider_name
                .as_ref()
                .is_none_or(|p| &r.provider == p)
        })
        .filter(|r| query.is_active.is_none_or(|a| r.is_active == a))
        .collect();
    let all = views(&state, records).await;
    let matching: Vec<IntegrationView> = all
        .into_iter()
        .filter(|v| {
            query
                .health_status
                .as_deref()
                .is_none_or(|h| v.health_status == h)
        })
        .collect();
    let total = matching.len();
    let page: Vec<IntegrationView> = matching
        .into_iter()
        .skip(query.offset)
        .take(limit)
        .collect();
    Ok(HttpResponse::Ok().json(Page {
        success: true,
        integrations: page,
        total,
    }))
}

#[utoipa::path(get, path = "/api/v1/integrations/{id}", tag = "integrations", params(Id),
    responses((status = 200, description = "The key", body = One), VaultFailed),
    security(("brand" = [])))]
async fn get_key(
    state: web::Data<AppState>,
    owner: Owner,
    id: PathId,
) -> Result<HttpResponse, SeedError> {
    let record = manage::find_key(&state.vault, owner, *id).await?;
    Ok(HttpResponse::Ok().json(one(view(&state, record).await)))
}

/// Edits a key's settings; the provider and credentials cannot change (add a new key).
#[utoipa::path(patch, path = "/api/v1/integrations/{id}", tag = "integrations", params(Id),
    request_body = IntegrationFields,
    responses((status = 200, description = "The edited key", body = One), VaultFailed),
    security(("brand" = [])))]
async fn update_key(
    state: web::Data<AppState>,
    owner: Owner,
    id: PathId,
    body: SeedJson<IntegrationFields>,
) -> Result<HttpResponse, SeedError> {
    let record = edit_key(&state, owner, *id, body.0).await?;
    Ok(HttpResponse::Ok().json(one(view(&state, record).await)))
}

/// Edits a key's settings; a key turned active again starts healthy (the API and the dashboard).
pub async fn edit_key(
    state: &AppState,
    owner: Owner,
    id: i32,
    fields: IntegrationFields,
) -> Result<KeyRecord, ApiError> {
    let (record, reenabled) = manage::update_key(&state.vault, owner, id, fields).await?;
    if reenabled {
        state.health.reset(&record.provider, record.id).await;
    }
    Ok(record)
}

#[utoipa::path(delete, path = "/api/v1/integrations/{id}", tag = "integrations", params(Id),
    responses((status = 200, description = "Deleted", body = Deleted), VaultFailed),
    security(("brand" = [])))]
async fn delete_key(
    state: web::Data<AppState>,
    owner: Owner,
    id: PathId,
) -> Result<HttpResponse, SeedError> {
    manage::delete_key(&state.vault, owner, *id).await?;
    tracing::info!(integration_id = *id, "provider key deleted");
    Ok(HttpResponse::Ok().json(Deleted {
        success: true,
        message: "Integration deleted successfully",
        deleted_id: *id,
    }))
}

/// Marks a key healthy again (after fixing it upstream).
#[utoipa::path(post, path = "/api/v1/integrations/{id}/reset-health", tag = "integrations",
    params(Id),
    responses((status = 200, description = "The key", body = One), VaultFailed),
    security(("brand" = [])))]
async fn reset_health(
    state: web::Data<AppState>,
    owner: Owner,
    id: PathId,
) -> Result<HttpResponse, SeedError> {
    let record = reset_key_health(&state, owner, *id).await?;
    Ok(HttpResponse::Ok().json(one(view(&state, record).await)))
}

/// Clears a key's failures and cool-down.
pub async fn reset_key_health(
    state: &AppState,
    owner: Owner,
    id: i32,
) -> Result<KeyRecord, ApiError> {
    let record = manage::find_key(&state.vault, owner, id).await?;
    state.health.reset(&record.provider, record.id).await;
    Ok(record)
}

/// Every key's health, with advice.
#[utoipa::path(get, path = "/api/v1/integrations/health", tag = "integrations",
    responses((status = 200, description = "The report", body = HealthReport), VaultFailed),
    security(("brand" = [])))]
async fn health_report(
    state: web::Data<AppState>,
    owner: Owner,
) -> Result<HttpResponse, SeedError> {
    let views = views(&state, manage::list_keys(&state.vault, owner).await?).await;
    let count = |status: HealthStatus| {
        views
            .iter()
            .filter(|v| v.health_status == status.as_str())
            .count()
    };
    let summary = HealthSummary {
        total: views.len(),
        healthy: count(HealthStatus::Healthy),
        degraded: count(HealthStatus::Degraded),
        unhealthy: count(HealthStatus::Unhealthy),
    };
    let recommendations = recommendations(&state.vault, owner, &views);
    let integrations = views
        .into_iter()
        .map(|v| KeyHealth {
            id: v.id,
            provider_name: v.provider_name,
            key_label: v.key_label,
            health_status: v.health_status,
            consecutive_failures: v.consecutive_failures,
            last_used_at: v.last_used_at,
            last_error: v.last_error,
        })
        .collect();
    Ok(HttpResponse::Ok().json(HealthReport {
        success: true,
        summary,
        integrations,
        recommendations,
    }))
}

/// Plain-language next steps for the owner of these keys.
fn recommendations(vault: &Vault, owner: Owner, views: &[IntegrationView]) -> Vec<String> {
    let mut advice = Vec::new();
    for v in views {
        if v.disabled_reason.as_deref() == Some("auth_failed") {
            advice.push(format!("Key {} ({}) was disabled after repeated authentication failures: replace or re-authenticate it, then set is_active to true.", v.id, v.provider_name));
        } else if v.health_status == "unhealthy" {
            advice.push(format!("Key {} ({}) is unhealthy ({}); it gets one probe after the cool-down, or call POST /{}/reset-health once fixed.", v.id, v.provider_name, v.last_error.as_deref().unwrap_or("repeated failures"), v.id));
        } else if v.health_status == "degraded" {
            advice.push(format!(
                "Key {} ({}) is degraded: watch its last_error.",
                v.id, v.provider_name
            ));
        }
    }
    // Each provider once, in name order (keys come ordered by id, so equal names need not touch).
    let providers: std::collections::BTreeSet<&str> =
        views.iter().map(|v| v.provider_name.as_str()).collect();
    for provider in providers {
        let serving = views
            .iter()
            .filter(|v| {
                v.provider_name == provider && v.is_active && v.health_status != "unhealthy"
            })
            .count();
        if serving == 1 {
            advice.push(format!("Only one working key for {provider}: add a second so rotation and fallback have somewhere to go."));
        }
    }
    let brand = owner.brand_id().unwrap_or(0);
    if owner != Owner::Pool && !vault.snapshot().is_configured("openai", Some(brand)) {
        advice.push("No usable OpenAI key: embeddings, images and audio answer 503 no_openai_key until one is added.".into());
    }
    advice
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TestCredentials {
    provider_name: Option<String>,
    #[schema(value_type = Option<Object>)]
    credentials: Option<serde_json::Value>,
}

/// Tries credentials against the provider (lists its models) without storing them.
#[utoipa::path(post, path = "/api/v1/integrations/test", tag = "integrations",
    request_body = TestCredentials,
    responses((status = 200, description = "What the provider said", body = Checked), VaultFailed),
    security(("brand" = [])))]
async fn test_credentials(
    state: web::Data<AppState>,
    body: SeedJson<TestCredentials>,
) -> Result<HttpResponse, SeedError> {
    let (ok, latency_ms, error) = try_credentials(
        &state,
        body.0.provider_name.as_deref(),
        body.0.credentials.as_ref(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(Checked {
        success: ok,
        latency_ms,
        error,
    }))
}

/// Tries credentials against the provider without storing them: (worked, latency in ms, the
/// provider's refusal). The API's test and the dashboard's "Test connection".
pub async fn try_credentials(
    state: &AppState,
    provider: Option<&str>,
    credentials: Option<&serde_json::Value>,
) -> Result<(bool, u64, Option<String>), ApiError> {
    let catalog = state.catalog.load();
    let (provider, credentials) = manage::parse_credentials(&catalog, provider, credentials)?;
    let provider = catalog
        .provider(&provider)
        .ok_or_else(|| manage::unknown_provider(&catalog))?;
    Ok(probe(state, Endpoint::new(provider, &credentials)).await)
}

/// Tries a stored key against its provider.
#[utoipa::path(post, path = "/api/v1/integrations/{id}/test", tag = "integrations", params(Id),
    responses((status = 200, description = "What the provider said", body = Checked), VaultFailed),
    security(("brand" = [])))]
async fn test_key(
    state: web::Data<AppState>,
    owner: Owner,
    id: PathId,
) -> Result<HttpResponse, SeedError> {
    let record = manage::find_key(&state.vault, owner, *id).await?;
    let key = state
        .vault
        .snapshot()
        .get(record.id)
        .cloned()
        .ok_or_else(manage::not_found)?;
    let catalog = state.catalog.load();
    let provider = catalog
        .provider(&record.provider)
        .ok_or_else(|| manage::unknown_provider(&catalog))?;
    Ok(check(&state, Endpoint::new(provider, &key.credentials)).await)
}

/// Lists the provider's models with the key: `{success, latency_ms, error}`.
async fn check(
    state: &AppState,
    endpoint: Result<Endpoint, crate::providers::ProviderError>,
) -> HttpResponse {
    let (success, latency_ms, error) = probe(state, endpoint).await;
    HttpResponse::Ok().json(Checked {
        success,
        latency_ms,
        error,
    })
}

/// Lists the provider's models with the key: (worked, latency in ms, the refusal).
async fn probe(
    state: &AppState,
    endpoint: Result<Endpoint, crate::providers::ProviderError>,
) -> (bool, u64, Option<String>) {
    let started = crate::clock::stopwatch();
    let result = match endpoint {
        Ok(endpoint) => {
            endpoint
                .check(&state.http, state.config.upstream.timeout())
                .await
        }
        Err(err) => Err(err),
    };
    let latency_ms = started.elapsed().as_millis() as u64;
    let error = result.err().map(|e| e.message);
    (error.is_none(), latency_ms, error)
}
