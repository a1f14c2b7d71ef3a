//! API.md section 1: both bearer formats, the three 401 codes, 403 scopes, revoke and expiry.

use crate::helpers::spawn_app;
use reqwest::StatusCode;
use serde_json::json;

const KEYS: &str = "/api/v1/agent-keys";

#[actix_web::test]
async fn every_401_carries_the_code_and_www_authenticate() {
    let app = spawn_app().await;
    let (client_id, _) = app.create_brand("Acme").await;
    let unknown_triple = format!(
        "{client_id}:key_{}:secret_{}",
        "0".repeat(32),
        "0".repeat(48)
    );
    let cases = [
        (None, "missing_api_key"),
        (Some("garbage"), "invalid_token_format"),
        (Some("spideriq_pat_tooshort"), "invalid_token_format"),
        (Some("cli_1:key_2:secret_3"), "invalid_token_format"),
        (
            Some("spideriq_pat_00000000000000000000000000000000"),
            "invalid_api_key",
        ),
        (Some(unknown_triple.as_str()), "invalid_api_key"),
    ];
    for (bearer, code) in cases {
        let reply = app.get(KEYS, bearer).await;
        reply.assert_error(401, code);
        assert_eq!(reply.headers["www-authenticate"], "Bearer", "{bearer:?}");
    }
}

#[actix_web::test]
async fn a_non_bearer_scheme_is_an_invalid_format() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}{KEYS}", app.address))
        .header("Authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .expect("request");
    crate::helpers::reply(response)
        .await
        .assert_error(401, "invalid_token_format");
}

#[actix_web::test]
async fn a_wrong_secret_for_a_real_client_id_is_refused() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    let (prefix, secret) = credential.rsplit_once(':').expect("triple");
    let flipped = if secret.ends_with('0') { "1" } else { "0" };
    let wrong = format!("{prefix}:{}{flipped}", &secret[..secret.len() - 1]);
    app.get(KEYS, Some(&wrong))
        .await
        .assert_error(401, "invalid_api_key");
    assert_eq!(
        app.get(KEYS, Some(&credential)).await.status,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn authentication_comes_before_body_validation() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}{KEYS}", app.address))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    crate::helpers::reply(response)
        .await
        .assert_error(401, "missing_api_key");
}

#[actix_web::test]
async fn a_pat_needs_the_system_scope_for_brand_administration() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    let (plain, _) = app
        .mint_token(&credential, json!({ "name": "agent" }))
        .await;
    app.get(KEYS, Some(&plain))
        .await
        .assert_error(403, "insufficient_scope");

    let (admin_pat, _) = app
        .mint_token(&credential, json!({ "name": "ops", "scopes": ["system"] }))
        .await;
    let listed = app.get(KEYS, Some(&admin_pat)).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["total"], 2);
}

#[actix_web::test]
async fn catalog_reads_are_public_but_a_sent_token_must_be_valid_and_scoped() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    let (models_pat, _) = app.mint_token(&credential, json!({ "name": "a" })).await;
    let (chat_only, _) = app
        .mint_token(&credential, json!({ "name": "b", "scopes": ["gate:chat"] }))
        .await;

    assert_eq!(
        app.get("/api/gate/v1/models", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/gate/v1/models", Some(&models_pat))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/gate/v1/providers", Some(&credential))
            .await
            .status,
        StatusCode::OK
    );
    app.get("/api/gate/v1/aliases", Some(&chat_only))
        .await
        .assert_error(403, "insufficient_scope");
    app.get("/api/gate/v1/models", Some("nonsense"))
        .await
        .assert_error(401, "invalid_token_format");
}

#[actix_web::test]
async fn a_revoked_token_fails_on_the_very_next_request_and_says_so() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    let (token, key) = app
        .mint_token(&credential, json!({ "name": "a", "scopes": ["system"] }))
        .await;
    assert_eq!(app.get(KEYS, Some(&token)).await.status, StatusCode::OK);

    let revoked = app
        .delete(&format!("{KEYS}/{}", key["id"]), Some(&credential))
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert!(revoked.body["revoked_at"].is_string());

    let reply = app.get(KEYS, Some(&token)).await;
    reply.assert_error(401, "invalid_api_key");
    assert!(reply.message().contains("revoked"), "{}", reply.message());
}

#[actix_web::test]
async fn an_expired_token_fails_as_soon_as_its_hour_is_up() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    let (token, _) = app
        .mint_token(
            &credential,
            json!({ "name": "a", "scopes": ["system"], "expires_in_hours": 1 }),
        )
        .await;
    app.state.clock.advance(chrono::Duration::minutes(59));
    assert_eq!(app.get(KEYS, Some(&token)).await.status, StatusCode::OK);

    app.state.clock.advance(chrono::Duration::minutes(2));
    let reply = app.get(KEYS, Some(&token)).await;
    reply.assert_error(401, "invalid_api_key");
    assert!(reply.message().contains("expired"), "{}", reply.message());
}
