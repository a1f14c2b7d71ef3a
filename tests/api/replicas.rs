//! Several replicas of the real app on one PostgreSQL database: a write made through one is
//! honoured by the others (the change log, LISTEN/NOTIFY and the 1 s poll of `coherence.rs`).
//! These run on PostgreSQL whatever the run's backend: a SQLite file is one node.

use crate::helpers::{PostgresDb, TestApp, TestDb, eventually, spawn_app_on};
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

const MODEL: &str = "gpt-4o-mini";
/// Notifications arrive in milliseconds and the poll runs every second; this is slack, not a wait.
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
        eventually("the new brand, key and token known", WITHIN, async || {
            status_of_chat(other, &token).await == StatusCode::OK
        })
        .await;
    }
    let revoked = a
        .delete(
            &format!("/api/v1/agent-keys/{}", key["id"]),
            Some(&credential),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    for other in [&b, &c] {
        eventually("the revocation honoured", WITHIN, async || {
            let reply = other.chat(&token, MODEL).await;
            reply.status == StatusCode::UNAUTHORIZED && reply.message().contains("revoked")
        })
        .await;
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
    eventually("the token works on C", WITHIN, async || {
        status_of_chat(&c, &token).await == StatusCode::OK
    })
    .await;

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
    eventually("the old credential refused on B", WITHIN, async || {
        b.get("/api/v1/agent-keys", Some(&old_credential))
            .await
            .status
            == StatusCode::UNAUTHORIZED
    })
    .await;
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
    eventually("the new allow-list enforced on C", WITHIN, async || {
        c.chat(&token, MODEL).await.status == StatusCode::FORBIDDEN
    })
    .await;

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
    eventually("the deleted key unused on B", WITHIN, async || {
        b.chat(&token, MODEL).await.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
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
        eventually("the alias chain replaced", WITHIN, async || {
            other.alias_chain("spideriq/fast").await == ["mistral/mistral-small-latest"]
        })
        .await;
    }

    // The trigger sees every write, not only the API's: revoke a token with plain SQL.
    let (_, credential) = a.create_brand("Globex").await;
    a.add_key(&credential, "openai", "sk-openai-outside", json!({}))
        .await;
    let (token, key) = a.mint_token(&credential, json!({ "name": "agent" })).await;
    eventually("the token works on B", WITHIN, async || {
        status_of_chat(&b, &token).await == StatusCode::OK
    })
    .await;
    use sea_orm::ConnectionTrait;
    a.state
        .db
        .execute_unprepared(&format!(
            "UPDATE agent_tokens SET revoked_at = now() WHERE id = {}",
            key["id"]
        ))
        .await
        .expect("revoke in SQL");
    for app in [&a, &b, &c] {
        eventually("the SQL revocation honoured", WITHIN, async || {
            status_of_chat(app, &token).await == StatusCode::UNAUTHORIZED
        })
        .await;
    }
    drop((c, b));
}
