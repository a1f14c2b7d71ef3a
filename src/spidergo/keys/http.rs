//! `/auth/api-keys`: create (the secret shown once), list (metadata only), revoke.

use super::store::{self, ApiKey, Created};
use crate::spidergo::accounts::session;
use crate::spidergo::error::{GoError, parse_body};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(utoipa::OpenApi)]
#[openapi(paths(create, list, revoke))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/api-keys", web::post().to(create))
        .route("/auth/api-keys", web::get().to(list))
        .route("/auth/api-keys/{key_id}", web::delete().to(revoke));
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
}

fn meta(key: &ApiKey) -> Value {
    json!({
        "key_id": key.id,
        "name": key.name,
        "prefix": super::PREFIX,
        "last4": key.last4,
        "daily_limit": key.daily_limit,
        "is_active": key.is_active,
        "created_at": key.created_at,
    })
}

#[utoipa::path(post, path = "/auth/api-keys", tag = "spidergo-keys",
    request_body = NewKey,
    responses((status = 201, description = "The key, shown this once, and its metadata", body = serde_json::Value), crate::spidergo::openapi::GoFailed),
    security(("spidergo_session" = [])))]
async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, GoError> {
    session::same_origin(&state, &req)?;
    let who = session::signed_in(&state, &req).await?;
    let form: NewKey = parse_body(&body)?;
    let name = crate::spidergo::accounts::http::checked_name(&form.name)?;
    let go = &state.spidergo.config;
    let secret = super::new_secret().map_err(GoError::internal)?;
    let limits = (go.max_active_keys, go.daily_limit);
    match store::create(
        &state.db,
        who.user.id,
        name,
        &secret,
        limits,
        state.clock.now(),
    )
    .await?
    {
        Created::Key(key) => Ok(HttpResponse::Created().json(json!({
            "message": "API key created. Store it securely now; it will not be shown again.",
            "api_key": secret,
            "meta": meta(&key),
        }))),
        Created::TooMany => Err(GoError::conflict(format!(
            "you can have at most {} active API keys: revoke one first",
            go.max_active_keys
        ))),
    }
}

#[utoipa::path(get, path = "/auth/api-keys", tag = "spidergo-keys",
    responses((status = 200, description = "The active keys' metadata", body = serde_json::Value), crate::spidergo::openapi::GoFailed),
    security(("spidergo_session" = [])))]
async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, GoError> {
    let who = session::signed_in(&state, &req).await?;
    let keys = store::active(&state.db, who.user.id).await?;
    let keys: Vec<Value> = keys.iter().map(meta).collect();
    Ok(HttpResponse::Ok().json(json!({ "api_keys": keys })))
}

#[utoipa::path(delete, path = "/auth/api-keys/{key_id}", tag = "spidergo-keys",
    params(("key_id" = String, Path, description = "The key's id")),
    responses((status = 200, description = "Revoked", body = serde_json::Value), crate::spidergo::openapi::GoFailed),
    security(("spidergo_session" = [])))]
async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    key_id: web::Path<String>,
) -> Result<HttpResponse, GoError> {
    session::same_origin(&state, &req)?;
    let who = session::signed_in(&state, &req).await?;
    if store::revoke(&state.db, who.user.id, &key_id, state.clock.now()).await? {
        Ok(HttpResponse::Ok().json(json!({ "message": "API key revoked" })))
    } else {
        Err(GoError::not_found("no active API key with this id"))
    }
}
