//! `/api/v1/invites`: a brand invites the owner of a provider key, lists and revokes invites.

use super::link::{self, LinkRequest};
use super::store::{self, InviteKind, InviteRecord};
use crate::auth::Principal;
use crate::brands;
use crate::error::ApiError;
use crate::json::Json;
use crate::openapi::schemas::{Failed, Id};
use crate::path_id::PathId;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// This module's operations in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_invites, create_invite, revoke_invite))]
pub struct Api;

/// An invite as its brand sees it (never the link's secret).
#[derive(Serialize, ToSchema)]
pub struct InviteView {
    id: i32,
    email: String,
    provider_name: String,
    message: Option<String>,
    expires_at: chrono::DateTime<chrono::Utc>,
    /// `pending`, `used`, `expired` or `revoked`.
    #[schema(value_type = String)]
    status: &'static str,
    /// The key the invite created, once used.
    integration_id: Option<i32>,
    created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize, ToSchema)]
struct InviteList {
    total: usize,
    data: Vec<InviteView>,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("").get(list_invites).post(create_invite))
        .service(web::resource("/{id}").delete(revoke_invite));
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateInvite {
    email: String,
    provider_name: String,
    message: Option<String>,
}

fn view(invite: &InviteRecord) -> InviteView {
    InviteView {
        id: invite.id,
        email: invite.email.clone(),
        provider_name: invite.provider_name.clone(),
        message: invite.message.clone(),
        expires_at: invite.expires_at,
        status: invite.status.as_str(),
        integration_id: invite.integration_id,
        created_at: invite.created_at,
    }
}

/// Emails a link where the key's owner pastes it (or signs in with OAuth); the brand never sees it.
#[utoipa::path(post, path = "/api/v1/invites", tag = "invites", request_body = CreateInvite,
    responses((status = 201, description = "Sent (or queued in the outbox)", body = InviteView), Failed),
    security(("brand" = [])))]
async fn create_invite(
    state: web::Data<AppState>,
    principal: Principal,
    body: Json<CreateInvite>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let invite = invite(
        &state,
        &principal,
        &body.email,
        &body.provider_name,
        body.message.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Created().json(invite))
}

/// Creates an invite and queues its email (the API and the dashboard).
pub async fn invite(
    state: &AppState,
    principal: &Principal,
    email: &str,
    provider_name: &str,
    message: Option<&str>,
) -> Result<InviteView, ApiError> {
    if !brands::manage::is_plausible_email(email) {
        return Err(ApiError::invalid_field("email", "must be an email address"));
    }
    if message.is_some_and(|m| m.chars().count() > 2000) {
        return Err(ApiError::invalid_field(
            "message",
            "must be at most 2000 characters",
        ));
    }
    let provider = {
        let catalog = state.catalog.load();
        let found = catalog.provider(provider_name).map(|p| p.label.clone());
        found.ok_or_else(|| crate::vault::unknown_provider(&catalog))?
    };
    let brand = brands::manage::get_brand(&state.db, &principal.client_id).await?;
    let request = LinkRequest {
        kind: InviteKind::NewKey,
        brand_id: principal.brand_id,
        brand_name: &brand.name,
        to: email,
        provider_id: provider_name,
        provider_label: &provider,
        message,
        integration_id: None,
    };
    let invite = link::issue(state, request)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(invite_id = invite.id, provider = %invite.provider_name, "invite created");
    Ok(view(&invite))
}

/// The brand's invites.
pub async fn invites(state: &AppState, principal: &Principal) -> Result<Vec<InviteView>, ApiError> {
    let invites = store::list_invites(&state.db, principal.brand_id).await?;
    Ok(invites.iter().map(view).collect())
}

/// Revokes an unused invite.
pub async fn revoke(
    state: &AppState,
    principal: &Principal,
    id: i32,
) -> Result<InviteView, ApiError> {
    let invite = store::revoke(&state.db, principal.brand_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("invite"))?;
    Ok(view(&invite))
}

#[utoipa::path(get, path = "/api/v1/invites", tag = "invites",
    responses((status = 200, description = "The brand's invites", body = InviteList), Failed),
    security(("brand" = [])))]
async fn list_invites(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    let data = invites(&state, &principal).await?;
    Ok(HttpResponse::Ok().json(InviteList {
        total: data.len(),
        data,
    }))
}

/// Revokes an unused invite: its link stops working.
#[utoipa::path(delete, path = "/api/v1/invites/{id}", tag = "invites", params(Id),
    responses((status = 200, description = "The revoked invite", body = InviteView), Failed),
    security(("brand" = [])))]
async fn revoke_invite(
    state: web::Data<AppState>,
    principal: Principal,
    id: PathId,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(revoke(&state, &principal, *id).await?))
}
