//! `GET /health` and `GET /api/gate/v1/health`: is this node able to serve.

use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;

/// 200 with `status: ok` while the database answers; 503 with `database: error` when it does not.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let database_ok = state.db.ping().await.is_ok();
    let body = json!({
        "status": if database_ok { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "database": if database_ok { "ok" } else { "error" },
        "redis": "disabled",
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
