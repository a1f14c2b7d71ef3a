//! `GET /api/v1/alerts`: the alerts raised about a brand's tokens, keys and invites, newest first
//! (what was posted to the webhook, whether or not one is configured to receive it).

use crate::auth::Principal;
use crate::error::ApiError;
use crate::openapi::schemas::Failed;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// This module's operations in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_alerts))]
pub struct Api;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    #[serde(default)]
    #[param(maximum = 9223372036854775807_u64)]
    offset: u64,
}

/// One alert: the webhook's payload.
#[derive(Serialize, ToSchema)]
struct AlertView {
    /// The event's unique key (the same `id` the webhook carried).
    id: String,
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    kind: String,
    created_at: chrono::DateTime<chrono::Utc>,
    /// What the event is about (see README, "Alerts").
    #[schema(value_type = Object)]
    data: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
struct AlertList {
    total: u64,
    data: Vec<AlertView>,
}

#[utoipa::path(get, path = "/api/v1/alerts", tag = "usage", params(AlertQuery),
    responses((status = 200, description = "A page of the brand's alerts", body = AlertList), Failed),
    security(("brand" = [])))]
pub async fn list_alerts(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<AlertQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = crate::paging::checked(query.limit, query.offset)?;
    let (rows, total) =
        super::store::list(&state.db, principal.brand_id, limit, query.offset).await?;
    let data = rows
        .into_iter()
        .map(|row| {
            let payload: serde_json::Value = serde_json::from_str(&row.payload).unwrap_or_default();
            AlertView {
                id: row.event_key,
                kind: row.kind,
                created_at: row.created_at,
                data: payload["data"].clone(),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(AlertList { total, data }))
}
