//! Operator endpoints for task aliases: `GET /api/v1/admin/aliases`, `PUT /api/v1/admin/aliases/{id}`.
//! A new chain is stored, then the catalog snapshot is replaced: it takes effect without restart.

use super::store;
use crate::error::ApiError;
use crate::gate::models::AliasView;
use crate::json::Json;
use crate::openapi::schemas::Failed;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

/// This module's operations in the OpenAPI document (`GET /aliases` is the gateway's, copied).
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_alias, replace_chain))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/aliases").get(crate::gate::models::list_aliases))
        .service(
            web::resource("/aliases/{alias_id:.+}")
                .get(get_alias)
                .put(replace_chain),
        );
}

#[utoipa::path(get, path = "/api/v1/admin/aliases/{alias_id}", tag = "admin",
    params(("alias_id" = String, Path, description = "e.g. `spideriq/fast` (slashes are part of it)")),
    responses((status = 200, description = "The alias and its chain", body = AliasView), Failed),
    security(("operator" = [])))]
async fn get_alias(
    state: web::Data<AppState>,
    alias_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let catalog = state.catalog.load();
    let alias = catalog
        .alias(&alias_id)
        .ok_or_else(|| ApiError::not_found("alias"))?;
    Ok(HttpResponse::Ok().json(AliasView::of(alias)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplaceChain {
    /// Catalog model ids, best first; applied at once on every replica.
    models: Vec<String>,
}

#[utoipa::path(put, path = "/api/v1/admin/aliases/{alias_id}", tag = "admin",
    params(("alias_id" = String, Path, description = "e.g. `spideriq/fast`")),
    request_body = ReplaceChain,
    responses((status = 200, description = "The alias with its new chain", body = AliasView), Failed),
    security(("operator" = [])))]
async fn replace_chain(
    state: web::Data<AppState>,
    alias_id: web::Path<String>,
    body: Json<ReplaceChain>,
) -> Result<HttpResponse, ApiError> {
    set_chain(&state, &alias_id, body.into_inner().models).await?;
    get_alias(state, alias_id).await
}

/// Replaces an alias's ranked chain, applied at once without a restart (the API and the
/// dashboard's chain editor).
pub async fn set_chain(
    state: &AppState,
    alias_id: &str,
    models: Vec<String>,
) -> Result<(), ApiError> {
    // Validated against the catalog as it is now; saved; then applied to the catalog as it is
    // *then* (`rcu`), so a concurrent PUT of another alias is not overwritten with a stale copy.
    state.catalog.load().with_chain(alias_id, models.clone())?;
    store::save_override(&state.db, alias_id, &models, state.clock.now()).await?;
    state.catalog.rcu(|current| {
        current
            .with_chain(alias_id, models.clone())
            .map(std::sync::Arc::new)
            .unwrap_or_else(|_| current.clone())
    });
    tracing::info!(alias = %alias_id, "alias chain replaced");
    Ok(())
}
