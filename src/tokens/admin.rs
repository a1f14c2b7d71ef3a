//! `/api/v1/agent-keys`: a brand mints, lists, reads, edits and revokes its agent tokens.

use super::fields::TokenFields;
use super::pat;
use super::store::{self, TokenRecord};
use crate::auth::{Principal, TokenCache};
use crate::error::ApiError;
use crate::json::Json;
use crate::limits::BudgetPeriod;
use crate::money::Money;
use crate::openapi::schemas::{Failed, Id};
use crate::path_id::PathId;
use crate::state::AppState;
use crate::usage;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// This module's operations in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_tokens, create_token, get_token, update_token, revoke_token))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("").get(list_tokens).post(create_token))
        .service(
            web::resource("/{id}")
                .get(get_token)
                .patch(update_token)
                .delete(revoke_token),
        );
}

/// An agent token as its brand sees it: never the secret or its digest.
#[derive(Serialize, ToSchema)]
pub struct TokenView {
    id: i32,
    name: String,
    client_id: String,
    token_preview: String,
    #[schema(value_type = Vec<String>)]
    scopes: Vec<&'static str>,
    monthly_budget_usd: Option<Money>,
    #[schema(value_type = String, example = "hard")]
    budget_mode: &'static str,
    rpm: Option<u32>,
    rpd: Option<u32>,
    allowed_models: Vec<String>,
    free_models_only: bool,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    spend: SpendView,
}

/// Spend of the current budget month, from the ledger.
#[derive(Serialize, Default, ToSchema)]
pub struct SpendView {
    month_usd: Money,
    by_model: Vec<ModelSpend>,
}

#[derive(Serialize, ToSchema)]
pub struct ModelSpend {
    model: String,
    cost_usd: Money,
    requests: u64,
}

/// `POST` answers the secret, once, beside the token.
#[derive(Serialize, ToSchema)]
struct Minted {
    /// The agent token itself: shown this once, never again.
    token: String,
    agent_key: TokenView,
}

#[derive(Serialize, ToSchema)]
struct TokenList {
    total: usize,
    data: Vec<TokenView>,
}

/// The token's spend this budget month, per model (largest first).
async fn spend(
    state: &AppState,
    principal: &Principal,
    token_id: i32,
) -> Result<SpendView, ApiError> {
    let rows =
        usage::token_month_by_model(&state.db, token_id, budget_month_start(state, principal))
            .await?;
    Ok(spend_view(rows))
}

/// Where the brand's current budget month began.
fn budget_month_start(state: &AppState, principal: &Principal) -> DateTime<Utc> {
    let anchor = state.auth.anchor_day(&principal.client_id);
    BudgetPeriod::containing(state.clock.now(), anchor).start
}

/// A token's spend per model (largest first) and in total.
fn spend_view(mut rows: Vec<(String, Money, u64)>) -> SpendView {
    rows.sort_by_key(|(_, cost, _)| std::cmp::Reverse(*cost));
    let total = rows.iter().map(|(_, cost, _)| cost.nanos()).sum();
    let by_model = rows
        .into_iter()
        .map(|(model, cost_usd, requests)| ModelSpend {
            model,
            cost_usd,
            requests,
        })
        .collect();
    SpendView {
        month_usd: Money::from_nanos(total),
        by_model,
    }
}

/// `view` with its spend filled in.
async fn full_view(
    state: &AppState,
    record: TokenRecord,
    principal: &Principal,
) -> Result<TokenView, ApiError> {
    let spend = spend(state, principal, record.id).await?;
    let mut view = view(record, principal, &state.auth);
    view.spend = spend;
    Ok(view)
}

fn view(record: TokenRecord, principal: &Principal, cache: &TokenCache) -> TokenView {
    // The cache holds uses not yet flushed to the database.
    let cached = cache
        .last_used(&record.digest)
        .and_then(|s| DateTime::from_timestamp(s, 0));
    let s = record.settings;
    TokenView {
        id: record.id,
        name: s.name,
        client_id: principal.client_id.to_string(),
        token_preview: record.preview,
        scopes: s.scopes.names(),
        monthly_budget_usd: s.monthly_budget,
        budget_mode: s.budget_mode.as_str(),
        rpm: s.rpm,
        rpd: s.rpd,
        allowed_models: s.allowed_models,
        free_models_only: s.free_models_only,
        expires_at: s.expires_at,
        revoked_at: record.revoked_at,
        last_used_at: record.last_used_at.max(cached),
        created_at: record.created_at,
        spend: SpendView::default(),
    }
}

/// Mints an agent token: the secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/agent-keys", tag = "agent-keys", request_body = TokenFields,
    responses((status = 201, description = "Minted", body = Minted), Failed), security(("brand" = [])))]
async fn create_token(
    state: web::Data<AppState>,
    principal: Principal,
    body: Json<TokenFields>,
) -> Result<HttpResponse, ApiError> {
    let (token, agent_key) = mint(&state, &principal, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(Minted { token, agent_key }))
}

/// Mints an agent token for `principal`'s brand: its secret (to show once) and its view. The
/// API and the dashboard both mint through here.
pub async fn mint(
    state: &AppState,
    principal: &Principal,
    fields: TokenFields,
) -> Result<(String, TokenView), ApiError> {
    let settings = fields.into_new_settings(&state.catalog.load(), state.clock.now())?;
    let minted = pat::mint().map_err(ApiError::internal)?;
    let record = store::insert_token(
        &state.db,
        principal.brand_id,
        minted.digest,
        &minted.preview,
        &settings,
        state.clock.now(),
    )
    .await?;
    publish(state, principal, &record);
    tracing::info!(token_id = record.id, client_id = %principal.client_id, "agent token minted");
    let view = full_view(state, record, principal).await?;
    Ok((minted.secret.expose().to_owned(), view))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Also list revoked tokens.
    #[serde(default)]
    include_revoked: bool,
}

/// The brand's agent tokens with this budget month's spend.
#[utoipa::path(get, path = "/api/v1/agent-keys", tag = "agent-keys", params(ListQuery),
    responses((status = 200, description = "The tokens", body = TokenList), Failed), security(("brand" = [])))]
async fn list_tokens(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let data = list(&state, &principal, query.include_revoked).await?;
    Ok(HttpResponse::Ok().json(TokenList {
        total: data.len(),
        data,
    }))
}

/// The brand's agent tokens with this budget month's spend (one grouped query for every
/// token's spend, not one per token).
pub async fn list(
    state: &AppState,
    principal: &Principal,
    include_revoked: bool,
) -> Result<Vec<TokenView>, ApiError> {
    let records = store::list_tokens(&state.db, principal.brand_id, include_revoked).await?;
    let since = budget_month_start(state, principal);
    let mut spend = usage::brand_month_by_model(&state.db, principal.brand_id, since).await?;
    Ok(records
        .into_iter()
        .map(|record| {
            let rows = spend.remove(&record.id).unwrap_or_default();
            let mut view = view(record, principal, &state.auth);
            view.spend = spend_view(rows);
            view
        })
        .collect())
}

#[utoipa::path(get, path = "/api/v1/agent-keys/{id}", tag = "agent-keys", params(Id),
    responses((status = 200, description = "The token", body = TokenView), Failed), security(("brand" = [])))]
async fn get_token(
    state: web::Data<AppState>,
    principal: Principal,
    id: PathId,
) -> Result<HttpResponse, ApiError> {
    let record = store::find_token(&state.db, principal.brand_id, *id)
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(full_view(&state, record, &principal).await?))
}

/// Changes a token's settings; absent fields keep their value, `null` clears a limit.
#[utoipa::path(patch, path = "/api/v1/agent-keys/{id}", tag = "agent-keys", params(Id),
    request_body = TokenFields,
    responses((status = 200, description = "The token", body = TokenView), Failed), security(("brand" = [])))]
async fn update_token(
    state: web::Data<AppState>,
    principal: Principal,
    id: PathId,
    body: Json<TokenFields>,
) -> Result<HttpResponse, ApiError> {
    let current = store::find_token(&state.db, principal.brand_id, *id)
        .await?
        .ok_or_else(not_found)?;
    let settings =
        body.into_inner()
            .apply_to(current.settings, &state.catalog.load(), state.clock.now())?;
    let record = store::update_settings(
        &state.db,
        principal.brand_id,
        *id,
        &settings,
        state.clock.now(),
    )
    .await?
    .ok_or_else(not_found)?;
    publish(&state, &principal, &record);
    Ok(HttpResponse::Ok().json(full_view(&state, record, &principal).await?))
}

/// Revokes a token at once, on every replica; its record stays.
#[utoipa::path(delete, path = "/api/v1/agent-keys/{id}", tag = "agent-keys", params(Id),
    responses((status = 200, description = "The token", body = TokenView), Failed), security(("brand" = [])))]
async fn revoke_token(
    state: web::Data<AppState>,
    principal: Principal,
    id: PathId,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(revoke(&state, &principal, *id).await?))
}

/// Revokes one of the brand's tokens; refused on the very next request.
pub async fn revoke(
    state: &AppState,
    principal: &Principal,
    id: i32,
) -> Result<TokenView, ApiError> {
    let record = store::revoke_token(&state.db, principal.brand_id, id, state.clock.now())
        .await?
        .ok_or_else(not_found)?;
    publish(state, principal, &record);
    tracing::info!(token_id = record.id, client_id = %principal.client_id, "agent token revoked");
    full_view(state, record, principal).await
}

/// Makes a written token visible to authentication before the response is sent.
fn publish(state: &AppState, principal: &Principal, record: &TokenRecord) {
    let anchor = state.auth.anchor_day(&principal.client_id);
    state.auth.put_token(
        record.digest,
        record.cache_entry(principal.client_id.clone(), anchor),
    );
}

fn not_found() -> ApiError {
    ApiError::not_found("agent key")
}
