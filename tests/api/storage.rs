//! The storage layer on both backends: everything written survives a restart, including revocations.

use crate::helpers::{PostgresDb, TestDb, spawn_app_on};
use reqwest::StatusCode;
use serde_json::json;

/// Writes through the API, restarts on the same database, and checks what the new process sees.
async fn brands_and_tokens_survive_a_restart(db: TestDb) {
    let app = spawn_app_on(db, |_| {}).await;
    let (client_id, credential) = app.create_brand("Acme").await;
    let (kept, kept_key) = app
        .mint_token(
            &credential,
            json!({ "name": "kept", "rpm": 5, "allowed_models": ["spideriq/fast"] }),
        )
        .await;
    let (revoked, revoked_key) = app
        .mint_token(&credential, json!({ "name": "revoked" }))
        .await;
    app.delete(
        &format!("/api/v1/agent-keys/{}", revoked_key["id"]),
        Some(&credential),
    )
    .await;
    app.patch(
        &format!("/api/v1/agent-keys/{}", kept_key["id"]),
        Some(&credential),
        json!({ "monthly_budget_usd": 3.25 }),
    )
    .await;
    app.get("/api/gate/v1/models", Some(&kept)).await;

    let app = app.restart().await;
    assert_eq!(
        app.get("/api/gate/v1/models", Some(&kept)).await.status,
        StatusCode::OK
    );
    let reply = app.get("/api/gate/v1/models", Some(&revoked)).await;
    reply.assert_error(401, "invalid_api_key");
    assert!(reply.message().contains("revoked"));

    let stored = app
        .get(
            &format!("/api/v1/agent-keys/{}", kept_key["id"]),
            Some(&credential),
        )
        .await
        .body;
    assert_eq!(
        (
            stored["rpm"].as_u64(),
            stored["monthly_budget_usd"].as_f64()
        ),
        (Some(5), Some(3.25))
    );
    assert_eq!(stored["allowed_models"], json!(["spideriq/fast"]));
    assert!(
        stored["last_used_at"].is_string(),
        "last use flushed at shutdown: {stored}"
    );
    let brands = app
        .get("/api/v1/admin/brands", Some(&app.admin_token))
        .await
        .body;
    assert_eq!(brands["data"][0]["client_id"], client_id.as_str());
}

#[actix_web::test]
async fn sqlite_keeps_brands_and_tokens_across_restarts() {
    brands_and_tokens_survive_a_restart(TestDb::sqlite()).await;
}

#[actix_web::test]
async fn postgres_keeps_brands_and_tokens_across_restarts() {
    brands_and_tokens_survive_a_restart(TestDb::Postgres(PostgresDb::create().await)).await;
}

#[actix_web::test]
async fn migrations_roll_down_and_up_again_on_both_backends() {
    use migration::{Migrator, MigratorTrait};
    let sqlite = TestDb::sqlite();
    let postgres = TestDb::Postgres(PostgresDb::create().await);
    for db in [&sqlite, &postgres] {
        let config = spidergate::config::DatabaseConfig {
            url: db.url(),
            max_connections: 2,
        };
        let conn = spidergate::storage::connect(&config)
            .await
            .expect("connect and migrate");
        Migrator::refresh(&conn)
            .await
            .expect("every migration has a working down");
        let applied = Migrator::get_applied_migrations(&conn)
            .await
            .expect("status");
        assert_eq!(applied.len(), Migrator::migrations().len());
        conn.close().await.expect("close");
    }
}
