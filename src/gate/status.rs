//! `GET /health` and `GET /api/gate/v1/health`: is this node able to serve.

use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;

/// 200 with `status: ok` while the database (and Redis, when replicas share it) answers; 200
/// `degraded` with `redis: error` while Redis does not (limits fall back to `redis.on_error`);
/// 503 with `database: error` when the database does not.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let database_ok = state.db.ping().await.is_ok();
    let redis = match state.budgets.shared_windows() {
        None => "disabled",
        Some(windows) if windows.reachable().await => "ok",
        Some(_) => "error",
    };
    let healthy = database_ok && redis != "error";
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "database": if database_ok { "ok" } else { "error" },
        "redis": redis,
        // Traces recorded and not yet committed: what a hard kill would lose right now.
        "ledger_backlog": state.usage.backlog(),
        "ledger_waiting": state.usage.waiting(),
    });
    if database_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
