//! API.md section 4: mint, list, get, patch, revoke agent tokens; tenant isolation.

use crate::helpers::spawn_app;
use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::json;

const KEYS: &str = "/api/v1/agent-keys";

#[actix_web::test]
async fn minting_returns_the_token_once_with_the_contract_defaults() {
    let app = spawn_app().await;
    let (client_id, credential) = app.create_brand("Acme").await;
    let (token, key) = app
        .mint_token(&credential, json!({ "name": "researcher" }))
        .await;

    let hex = token.strip_prefix("spideriq_pat_").expect("PAT prefix");
    assert!(
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{token}"
    );
    assert_eq!(
        key["token_preview"],
        format!("spideriq_pat_{}…{}", &hex[..4], &hex[28..])
    );
    assert_eq!(key["client_id"], client_id.as_str());
    assert_eq!(
        key["scopes"],
        json!(["gate:chat", "gate:models", "gate:usage"])
    );
    assert_eq!(
        (
            key["budget_mode"].as_str(),
            key["free_models_only"].as_bool()
        ),
        (Some("hard"), Some(false))
    );
    assert!(
        key["monthly_budget_usd"].is_null() && key["rpm"].is_null() && key["revoked_at"].is_null()
    );
    assert_eq!(key["spend"], json!({ "month_usd": 0.0, "by_model": [] }));
    let expires: DateTime<Utc> = key["expires_at"]
        .as_str()
        .expect("expires_at")
        .parse()
        .expect("RFC 3339");
    let expected = app.state.clock.now() + Duration::hours(720);
    assert!((expires - expected).num_seconds().abs() < 60, "{expires}");

    let fetched = app
        .get(&format!("{KEYS}/{}", key["id"]), Some(&credential))
        .await;
    assert!(
        !fetched.body.to_string().contains(hex),
        "the secret must never be shown again"
    );
}

#[actix_web::test]
async fn minting_keeps_every_control_it_is_given() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    let body = json!({
        "name": "capped", "monthly_budget_usd": 12.5, "budget_mode": "soft", "rpm": 30, "rpd": 1000,
        "allowed_models": ["spideriq/fast", "gpt-4o-mini"], "free_models_only": true,
        "scopes": ["gate:chat", "system"], "expires_in_hours": 2160
    });
    let (_, key) = app.mint_token(&credential, body).await;
    assert_eq!(key["monthly_budget_usd"], 12.5);
    assert_eq!(
        (
            key["budget_mode"].as_str(),
            key["rpm"].as_u64(),
            key["rpd"].as_u64()
        ),
        (Some("soft"), Some(30), Some(1000))
    );
    assert_eq!(
        key["allowed_models"],
        json!(["spideriq/fast", "gpt-4o-mini"])
    );
    assert_eq!(key["scopes"], json!(["gate:chat", "system"]));
    assert_eq!(key["free_models_only"], true);
}

#[actix_web::test]
async fn invalid_settings_are_400_naming_the_field() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    let cases = [
        (json!({}), "name"),
        (
            json!({ "name": "a", "expires_in_hours": 0 }),
            "expires_in_hours",
        ),
        (
            json!({ "name": "a", "expires_in_hours": 2161 }),
            "expires_in_hours",
        ),
        (
            json!({ "name": "a", "scopes": ["gate:chat", "root"] }),
            "scopes",
        ),
        (
            json!({ "name": "a", "allowed_models": ["not-a-model"] }),
            "allowed_models",
        ),
        (
            json!({ "name": "a", "budget_mode": "maybe" }),
            "budget_mode",
        ),
        (
            json!({ "name": "a", "monthly_budget_usd": -5 }),
            "monthly_budget_usd",
        ),
        (json!({ "name": "a", "rpm": -1 }), "rpm"),
        (
            json!({ "name": "a", "token": "spideriq_pat_00000000000000000000000000000000" }),
            "token",
        ),
    ];
    for (body, field) in cases {
        let reply = app.post(KEYS, Some(&credential), body.clone()).await;
        reply.assert_error(400, "invalid_request");
        assert!(
            reply.message().contains(field),
            "{body}: {}",
            reply.message()
        );
    }
}

#[actix_web::test]
async fn patch_changes_only_what_it_names_and_null_clears_a_limit() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    let (token, key) = app
        .mint_token(&credential, json!({ "name": "a", "rpm": 10, "rpd": 100 }))
        .await;
    let path = format!("{KEYS}/{}", key["id"]);

    let patched = app
        .patch(
            &path,
            Some(&credential),
            json!({ "name": "renamed", "rpm": null, "scopes": ["gate:chat"] }),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(
        (patched.body["name"].as_str(), patched.body["rpd"].as_u64()),
        (Some("renamed"), Some(100))
    );
    assert!(patched.body["rpm"].is_null());
    // The cache follows the write: the dropped `gate:models` scope bites on the next request.
    app.get("/api/gate/v1/models", Some(&token))
        .await
        .assert_error(403, "insufficient_scope");

    let secret_change = app
        .patch(
            &path,
            Some(&credential),
            json!({ "token": "spideriq_pat_x" }),
        )
        .await;
    secret_change.assert_error(400, "invalid_request");
}

#[actix_web::test]
async fn list_hides_revoked_tokens_unless_asked() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    let (_, keep) = app.mint_token(&credential, json!({ "name": "keep" })).await;
    let (_, gone) = app.mint_token(&credential, json!({ "name": "gone" })).await;
    app.delete(&format!("{KEYS}/{}", gone["id"]), Some(&credential))
        .await;

    let active = app.get(KEYS, Some(&credential)).await;
    assert_eq!(active.body["total"], 1);
    assert_eq!(active.body["data"][0]["id"], keep["id"]);
    let all = app
        .get(&format!("{KEYS}?include_revoked=true"), Some(&credential))
        .await;
    assert_eq!(all.body["total"], 2);
    app.get(
        &format!("{KEYS}?include_revoked=perhaps"),
        Some(&credential),
    )
    .await
    .assert_error(400, "invalid_request");
}

#[actix_web::test]
async fn a_brand_never_sees_or_touches_another_brands_tokens() {
    let app = spawn_app().await;
    let (_, acme) = app.create_brand("Acme").await;
    let (_, globex) = app.create_brand("Globex").await;
    let (acme_token, key) = app.mint_token(&acme, json!({ "name": "acme-agent" })).await;
    let path = format!("{KEYS}/{}", key["id"]);

    app.get(&path, Some(&globex))
        .await
        .assert_error(404, "not_found");
    app.patch(&path, Some(&globex), json!({ "name": "stolen" }))
        .await
        .assert_error(404, "not_found");
    app.delete(&path, Some(&globex))
        .await
        .assert_error(404, "not_found");
    app.get(&format!("{KEYS}/999999"), Some(&acme))
        .await
        .assert_error(404, "not_found");
    assert_eq!(app.get(KEYS, Some(&globex)).await.body["total"], 0);

    // Acme's token is untouched by Globex's attempts.
    assert_eq!(
        app.get("/api/gate/v1/models", Some(&acme_token))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(app.get(&path, Some(&acme)).await.body["name"], "acme-agent");
}

#[actix_web::test]
async fn last_used_at_reflects_the_latest_authenticated_request() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    let (token, key) = app.mint_token(&credential, json!({ "name": "a" })).await;
    assert!(key["last_used_at"].is_null());
    app.get("/api/gate/v1/models", Some(&token)).await;
    let fetched = app
        .get(&format!("{KEYS}/{}", key["id"]), Some(&credential))
        .await;
    assert!(fetched.body["last_used_at"].is_string(), "{}", fetched.body);
}

#[actix_web::test]
async fn the_list_shows_each_tokens_own_spend() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    app.add_key(&credential, "openai", "sk-openai-list-spend", json!({}))
        .await;
    let (busy, _) = app.mint_token(&credential, json!({ "name": "busy" })).await;
    let (idle, _) = app.mint_token(&credential, json!({ "name": "idle" })).await;
    let (light, _) = app
        .mint_token(&credential, json!({ "name": "light" }))
        .await;
    for token in [&busy, &busy, &light] {
        assert_eq!(app.chat(token, "gpt-4o-mini").await.status, StatusCode::OK);
    }
    drop(idle);
    app.state.usage.flush().await;
    let list = app.get(KEYS, Some(&credential)).await.body;
    let listed = list["data"].as_array().expect("tokens");
    assert_eq!(listed.len(), 3);
    for token in listed {
        let one = app
            .get(&format!("{KEYS}/{}", token["id"]), Some(&credential))
            .await
            .body;
        assert_eq!(token["spend"], one["spend"], "{}", token["name"]);
    }
    let spend_of = |name: &str| {
        listed.iter().find(|t| t["name"] == name).expect("listed")["spend"]["month_usd"]
            .as_f64()
            .expect("spend")
    };
    assert!(spend_of("busy") > spend_of("light") && spend_of("light") > 0.0);
    assert_eq!(spend_of("idle"), 0.0);
}
