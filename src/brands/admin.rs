//! Operator endpoints for brands, mounted under `/api/v1/admin` by `routes.rs`.

use super::manage::{self, BrandView, NewBrand};
use crate::error::ApiError;
use crate::json::Json;
use crate::openapi::schemas::Failed;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

/// This module's operations in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_brands, create_brand, get_brand, rotate_credential))]
pub struct Api;

/// A brand and its new client credential: shown in this answer only.
#[derive(Serialize, ToSchema)]
struct WithCredential {
    brand: BrandView,
    credential: String,
}

#[derive(Serialize, ToSchema)]
struct BrandList {
    total: usize,
    data: Vec<BrandView>,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/brands").get(list_brands).post(create_brand))
        .service(web::resource("/brands/{client_id}").get(get_brand))
        .service(web::resource("/brands/{client_id}/rotate-credential").post(rotate_credential));
}

#[utoipa::path(post, path = "/api/v1/admin/brands", tag = "admin", request_body = NewBrand,
    responses((status = 201, description = "Created", body = WithCredential), Failed),
    security(("operator" = [])))]
async fn create_brand(
    state: web::Data<AppState>,
    body: Json<NewBrand>,
) -> Result<HttpResponse, ApiError> {
    let (brand, credential) =
        manage::create_brand(&state.db, &state.auth, body.into_inner(), state.clock.now()).await?;
    tracing::info!(client_id = %brand.client_id, "brand created");
    Ok(HttpResponse::Created().json(WithCredential {
        brand,
        credential: credential.expose().to_owned(),
    }))
}

#[utoipa::path(get, path = "/api/v1/admin/brands", tag = "admin",
    responses((status = 200, description = "Every brand", body = BrandList), Failed),
    security(("operator" = [])))]
async fn list_brands(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let brands = manage::list_brands(&state.db).await?;
    Ok(HttpResponse::Ok().json(BrandList {
        total: brands.len(),
        data: brands,
    }))
}

#[utoipa::path(get, path = "/api/v1/admin/brands/{client_id}", tag = "admin",
    params(("client_id" = String, Path, description = "The brand's public client id")),
    responses((status = 200, description = "The brand", body = BrandView), Failed),
    security(("operator" = [])))]
async fn get_brand(
    state: web::Data<AppState>,
    client_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(manage::get_brand(&state.db, &client_id).await?))
}

/// A new client credential; the old one stops working at once, on every replica.
#[utoipa::path(post, path = "/api/v1/admin/brands/{client_id}/rotate-credential", tag = "admin",
    params(("client_id" = String, Path, description = "The brand's public client id")),
    responses((status = 200, description = "The brand and its new credential", body = WithCredential),
        Failed),
    security(("operator" = [])))]
async fn rotate_credential(
    state: web::Data<AppState>,
    client_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (brand, credential) =
        manage::rotate_credential(&state.db, &state.auth, &client_id, state.clock.now()).await?;
    tracing::info!(client_id = %brand.client_id, "brand credential rotated");
    Ok(HttpResponse::Ok().json(WithCredential {
        brand,
        credential: credential.expose().to_owned(),
    }))
}
