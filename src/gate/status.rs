//! `GET /health` and `GET /api/gate/v1/health`: is this node able to serve.

use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

/// This module's operations in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(health))]
pub struct Api;

/// Whether this node can serve, and what a hard kill would lose right now.
#[derive(Serialize, ToSchema)]
struct Health {
    /// `ok` or `degraded`.
    #[schema(value_type = String)]
    status: &'static str,
    #[schema(value_type = String)]
    version: &'static str,
    /// `ok` or `error`.
    #[schema(value_type = String)]
    database: &'static str,
    /// `ok`, `error` or `disabled`.
    #[schema(value_type = String)]
    redis: &'static str,
    /// Traces recorded and not yet committed.
    ledger_backlog: usize,
    /// Requests waiting for room in the ledger's queue.
    ledger_waiting: usize,
}

/// 200 with `status: ok` while the database (and Redis, when replicas share it) answers; 200
/// `degraded` with `redis: error` while Redis does not (limits fall back to `redis.on_error`);
/// 503 with `database: error` when the database does not.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Serving", body = Health),
        (status = 503, description = "The database does not answer", body = Health)))]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let database_ok = state.db.ping().await.is_ok();
    let redis = match state.budgets.shared_windows() {
        None => "disabled",
        Some(windows) if windows.reachable().await => "ok",
        Some(_) => "error",
    };
    let healthy = database_ok && redis != "error";
    let body = Health {
        status: if healthy { "ok" } else { "degraded" },
        version: env!("CARGO_PKG_VERSION"),
        database: if database_ok { "ok" } else { "error" },
        redis,
        ledger_backlog: state.usage.backlog(),
        ledger_waiting: state.usage.waiting(),
    };
    if database_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
