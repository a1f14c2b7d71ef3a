//! Several replicas of the real app on one PostgreSQL database: a write made through one is
//! honoured by the others on their very next request (the change log, LISTEN/NOTIFY, and writes
//! that answer only once every live replica applied them; see `coherence.rs`). No waiting: each
//! check runs right after the write's response. These run on PostgreSQL whatever the run's
//! backend: a SQLite file is one node.

use crate::helpers::{PostgresDb, TestApp, TestDb, eventually, spawn_app_on};
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

const MODEL: &str = "gpt-4o-mini";
/// For a write made outside the API: notifications arrive in milliseconds and the poll runs every
/// second; this is slack, not a wait.
const WITHIN: Duration = Duration::from_secs(10);

/// Three replicas on one fresh PostgreSQL database.
async fn three_replicas() -> (TestApp, TestApp, TestApp) {
    let a = spawn_app_on(TestDb::Postgres(PostgresDb::create().await), |_| {}).await;
    let b = a.replica().await;
    let c = a.replica().await;
    (a, b, c)
}

async fn status_of_chat(app: &TestApp, token: &str) -> StatusCode {
    app.chat(token, MODEL).await.status
}

#[actix_web::test]
async fn a_token_minted_or_revoked_on_one_replica_is_honoured_by_the_others() {
    let (a, b, c) = three_replicas().await;
    let (_, credential) = a.create_brand("Acme").await;
    a.add_key(&credential, "openai", "sk-openai-replicas", json!({}))
        .await;
    let (token, key) = a.mint_token(&credential, json!({ "name": "agent" })).await;
    for other in [&b, &c] {
        assert!(
            status_of_chat(other, &token).await == StatusCode::OK,
            "the new brand, key and token known"
        );
    }
    let revoked = a
        .delete(
            &format!("/api/v1/agent-keys/{}", key["id"]),
            Some(&credential),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    for other in [&b, &c] {
        let reply = other.chat(&token, MODEL).await;
        reply.assert_error(401, "invalid_api_key");
        assert!(reply.message().contains("revoked"), "{}", reply.body);
    }
    drop((c, b));
}

#[actix_web::test]
async fn a_rotated_credential_a_deleted_key_and_a_patch_reach_every_replica() {
    let (a, b, c) = three_replicas().await;
    let (client_id, old_credential) = a.create_brand("Acme").await;
    let key = a
        .add_key(&old_credential, "openai", "sk-openai-replicas", json!({}))
        .await;
    let (token, agent_key) = a
        .mint_token(&old_credential, json!({ "name": "agent" }))
        .await;
    assert!(
        status_of_chat(&c, &token).await == StatusCode::OK,
        "the token works on C"
    );

    let rotated = a
        .post(
            &format!("/api/v1/admin/brands/{client_id}/rotate-credential"),
            Some(&a.admin_token),
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new_credential = rotated.body["credential"]
        .as_str()
        .expect("credential")
        .to_owned();
    assert!(
        b.get("/api/v1/agent-keys", Some(&old_credential))
            .await
            .status
            == StatusCode::UNAUTHORIZED,
        "the old credential refused on B"
    );
    assert_eq!(
        b.get("/api/v1/agent-keys", Some(&new_credential))
            .await
            .status,
        StatusCode::OK
    );

    let patch = a
        .patch(
            &format!("/api/v1/agent-keys/{}", agent_key["id"]),
            Some(&new_credential),
            json!({ "allowed_models": ["groq/llama-3.1-8b-instant"] }),
        )
        .await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.body);
    assert!(
        c.chat(&token, MODEL).await.status == StatusCode::FORBIDDEN,
        "the new allow-list enforced on C"
    );

    a.patch(
        &format!("/api/v1/agent-keys/{}", agent_key["id"]),
        Some(&new_credential),
        json!({ "allowed_models": [] }),
    )
    .await;
    let deleted = a
        .delete(
            &format!("/api/v1/integrations/{key}"),
            Some(&new_credential),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert!(
        b.chat(&token, MODEL).await.status == StatusCode::SERVICE_UNAVAILABLE,
        "the deleted key unused on B"
    );
    drop((c, b));
}

#[actix_web::test]
async fn an_alias_change_and_a_write_made_outside_the_api_reach_every_replica() {
    let (a, b, c) = three_replicas().await;
    let chain = json!({ "models": ["mistral/mistral-small-latest"] });
    let replaced = a
        .request(
            reqwest::Method::PUT,
            "/api/v1/admin/aliases/spideriq/fast",
            Some(&a.admin_token),
            Some(chain),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    for other in [&b, &c] {
        assert!(
            other.alias_chain("spideriq/fast").await == ["mistral/mistral-small-latest"],
            "the alias chain replaced"
        );
    }

    // The trigger sees every write, not only the API's: revoke a token with plain SQL.
    let (_, credential) = a.create_brand("Globex").await;
    a.add_key(&credential, "openai", "sk-openai-outside", json!({}))
        .await;
    let (token, key) = a.mint_token(&credential, json!({ "name": "agent" })).await;
    assert!(
        status_of_chat(&b, &token).await == StatusCode::OK,
        "the token works on B"
    );
    use sea_orm::ConnectionTrait;
    a.state
        .db
        .execute_unprepared(&format!(
            "UPDATE agent_tokens SET revoked_at = now() WHERE id = {}",
            key["id"]
        ))
        .await
        .expect("revoke in SQL");
    // No API write to wait on here: the replicas learn it from the notification or the poll.
    for app in [&a, &b, &c] {
        eventually("the SQL revocation honoured", WITHIN, async || {
            status_of_chat(app, &token).await == StatusCode::UNAUTHORIZED
        })
        .await;
    }
    drop((c, b));
}
