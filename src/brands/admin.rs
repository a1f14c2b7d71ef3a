//! Operator endpoints for brands, mounted under `/api/v1/admin` by `routes.rs`.

use super::manage::{self, NewBrand};
use crate::error::ApiError;
use crate::json::Json;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/brands").get(list_brands).post(create_brand))
        .service(web::resource("/brands/{client_id}").get(get_brand))
        .service(web::resource("/brands/{client_id}/rotate-credential").post(rotate_credential));
}

async fn create_brand(
    state: web::Data<AppState>,
    body: Json<NewBrand>,
) -> Result<HttpResponse, ApiError> {
    let (brand, credential) =
        manage::create_brand(&state.db, &state.auth, body.into_inner(), state.clock.now()).await?;
    tracing::info!(client_id = %brand.client_id, "brand created");
    Ok(HttpResponse::Created().json(json!({ "brand": brand, "credential": credential.expose() })))
}

async fn list_brands(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let brands = manage::list_brands(&state.db).await?;
    Ok(HttpResponse::Ok().json(json!({ "total": brands.len(), "data": brands })))
}

async fn get_brand(
    state: web::Data<AppState>,
    client_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(manage::get_brand(&state.db, &client_id).await?))
}

async fn rotate_credential(
    state: web::Data<AppState>,
    client_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (brand, credential) =
        manage::rotate_credential(&state.db, &state.auth, &client_id, state.clock.now()).await?;
    tracing::info!(client_id = %brand.client_id, "brand credential rotated");
    Ok(HttpResponse::Ok().json(json!({ "brand": brand, "credential": credential.expose() })))
}
