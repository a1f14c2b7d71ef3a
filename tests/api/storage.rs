//! The storage layer on both backends: everything written survives a restart, including revocations.

use crate::helpers::{PostgresDb, TestApp, TestDb, spawn_app_on};
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
async fn brands_and_tokens_are_kept_across_restarts() {
    brands_and_tokens_survive_a_restart(TestDb::fresh().await).await;
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

/// Every read endpoint of a brand that has spent money, as the operator would check it.
async fn read_every_endpoint(
    app: &TestApp,
    credential: &str,
    token: &str,
    token_id: i64,
    key: i64,
) {
    app.state.usage.flush().await;
    let traces = app.get("/api/v1/traces", Some(credential)).await;
    assert_eq!(traces.status, StatusCode::OK, "{}", traces.body);
    let trace_id = traces.body["data"][0]["id"].as_str().expect("a trace");
    let admin = app.admin_token.as_str();
    let reads = [
        ("/api/v1/agent-keys".to_owned(), credential),
        (format!("/api/v1/agent-keys/{token_id}"), credential),
        ("/api/v1/traces/summary".to_owned(), credential),
        (format!("/api/v1/traces/{trace_id}"), credential),
        ("/api/v1/usage".to_owned(), credential),
        ("/api/v1/usage?bucket=hour".to_owned(), credential),
        ("/api/v1/integrations".to_owned(), credential),
        (format!("/api/v1/integrations/{key}"), credential),
        ("/api/v1/integrations/health".to_owned(), credential),
        ("/api/gate/v1/usage".to_owned(), token),
        ("/api/gate/v1/models".to_owned(), token),
        ("/api/v1/admin/brands".to_owned(), admin),
        ("/api/v1/admin/pool-keys".to_owned(), admin),
    ];
    for (path, bearer) in reads {
        let reply = app.get(&path, Some(bearer)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
    }
}

/// Priced traffic, a clean stop, a start on the same database: everything reads, spend is kept,
/// and the used token can still be changed and revoked.
#[actix_web::test]
async fn after_priced_traffic_a_restart_reads_every_endpoint_and_revokes_a_used_token() {
    let app = spawn_app_on(TestDb::fresh().await, |_| {}).await;
    let (_, credential) = app.create_brand("Acme").await;
    let key = app
        .add_key(&credential, "openai", "sk-openai-restart", json!({}))
        .await;
    let (token, agent_key) = app
        .mint_token(
            &credential,
            json!({ "name": "agent", "monthly_budget_usd": 5 }),
        )
        .await;
    let token_id = agent_key["id"].as_i64().expect("id");
    let mut charged = 0.0;
    for _ in 0..3 {
        let reply = app.chat(&token, "gpt-4o-mini").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        charged += reply.body["spidergate_metadata"]["cost_usd"]
            .as_f64()
            .expect("cost");
    }
    read_every_endpoint(&app, &credential, &token, token_id, key).await;
    let path = format!("/api/v1/agent-keys/{token_id}");
    let spent = app.get(&path, Some(&credential)).await.body["spend"]["month_usd"].clone();
    let near = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(
        charged > 0.0 && spent.as_f64().is_some_and(|s| near(s, charged)),
        "the ledger's sum {spent} is what the replies charged, {charged}"
    );

    let app = app.restart().await;
    read_every_endpoint(&app, &credential, &token, token_id, key).await;
    let kept = app.get(&path, Some(&credential)).await.body;
    assert_eq!(kept["spend"]["month_usd"], spent, "spend survives: {kept}");
    let vault_key = app
        .get(&format!("/api/v1/integrations/{key}"), Some(&credential))
        .await
        .body;
    assert!(
        vault_key["integration"]["spend_month"]
            .as_f64()
            .is_some_and(|s| s > 0.0),
        "key spend rebuilt from the ledger: {vault_key}"
    );
    let patched = app
        .patch(&path, Some(&credential), json!({ "rpm": 7 }))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let revoked = app.delete(&path, Some(&credential)).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    app.chat(&token, "gpt-4o-mini")
        .await
        .assert_error(401, "invalid_api_key");
}
