//! Operator endpoints for task aliases: `GET /api/v1/admin/aliases`, `PUT /api/v1/admin/aliases/{id}`.
//! A new chain is stored, then the catalog snapshot is replaced: it takes effect without restart.

use super::store;
use crate::error::ApiError;
use crate::json::Json;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/aliases").get(crate::gate::models::list_aliases))
        .service(
            web::resource("/aliases/{alias_id:.+}")
                .get(get_alias)
                .put(replace_chain),
        );
}

async fn get_alias(
    state: web::Data<AppState>,
    alias_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let catalog = state.catalog.load();
    let alias = catalog
        .alias(&alias_id)
        .ok_or_else(|| ApiError::not_found("alias"))?;
    Ok(HttpResponse::Ok()
        .json(json!({ "id": alias.id, "use_case": alias.use_case, "models": alias.models })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaceChain {
    models: Vec<String>,
}

async fn replace_chain(
    state: web::Data<AppState>,
    alias_id: web::Path<String>,
    body: Json<ReplaceChain>,
) -> Result<HttpResponse, ApiError> {
    let models = body.into_inner().models;
    // Validated against the catalog as it is now; saved; then applied to the catalog as it is
    // *then* (`rcu`), so a concurrent PUT of another alias is not overwritten with a stale copy.
    state.catalog.load().with_chain(&alias_id, models.clone())?;
    store::save_override(&state.db, &alias_id, &models, state.clock.now()).await?;
    state.catalog.rcu(|current| {
        current
            .with_chain(&alias_id, models.clone())
            .map(std::sync::Arc::new)
            .unwrap_or_else(|_| current.clone())
    });
    tracing::info!(alias = %alias_id, "alias chain replaced");
    get_alias(state, alias_id).await
}
