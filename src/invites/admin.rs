//! `/api/v1/invites`: a brand invites the owner of a provider key, lists and revokes invites.

use super::link::{self, LinkRequest};
use super::store::{self, InviteKind, InviteRecord};
use crate::auth::Principal;
use crate::brands;
use crate::error::ApiError;
use crate::json::Json;
use crate::path_id::PathId;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("").get(list_invites).post(create_invite))
        .service(web::resource("/{id}").delete(revoke_invite));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateInvite {
    email: String,
    provider_name: String,
    message: Option<String>,
}

fn view(invite: &InviteRecord) -> Value {
    json!({
        "id": invite.id,
        "email": invite.email,
        "provider_name": invite.provider_name,
        "message": invite.message,
        "expires_at": invite.expires_at,
        "status": invite.status.as_str(),
        "integration_id": invite.integration_id,
        "created_at": invite.created_at,
    })
}

async fn create_invite(
    state: web::Data<AppState>,
    principal: Principal,
    body: Json<CreateInvite>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if !brands::manage::is_plausible_email(&body.email) {
        return Err(ApiError::invalid_field("email", "must be an email address"));
    }
    if body
        .message
        .as_ref()
        .is_some_and(|m| m.chars().count() > 2000)
    {
        return Err(ApiError::invalid_field(
            "message",
            "must be at most 2000 characters",
        ));
    }
    let provider = {
        let catalog = state.catalog.load();
        let found = catalog
            .provider(&body.provider_name)
            .map(|p| p.label.clone());
        found.ok_or_else(|| crate::vault::unknown_provider(&catalog))?
    };
    let brand = brands::manage::get_brand(&state.db, &principal.client_id).await?;
    let request = LinkRequest {
        kind: InviteKind::NewKey,
        brand_id: principal.brand_id,
        brand_name: &brand.name,
        to: &body.email,
        provider_id: &body.provider_name,
        provider_label: &provider,
        message: body.message.as_deref(),
        integration_id: None,
    };
    let invite = link::issue(&state, request)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(invite_id = invite.id, provider = %invite.provider_name, "invite created");
    Ok(HttpResponse::Created().json(view(&invite)))
}

async fn list_invites(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    let invites = store::list_invites(&state.db, principal.brand_id).await?;
    let data: Vec<Value> = invites.iter().map(view).collect();
    Ok(HttpResponse::Ok().json(json!({ "total": data.len(), "data": data })))
}

async fn revoke_invite(
    state: web::Data<AppState>,
    principal: Principal,
    id: PathId,
) -> Result<HttpResponse, ApiError> {
    let invite = store::revoke(&state.db, principal.brand_id, *id)
        .await?
        .ok_or_else(|| ApiError::not_found("invite"))?;
    Ok(HttpResponse::Ok().json(view(&invite)))
}
