//! API.md section 5 and the seed "Create Integration": the vault's endpoints.

use crate::helpers::{spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::json;

const INTEGRATIONS: &str = "/api/v1/integrations";

#[actix_web::test]
async fn create_returns_the_seeds_201_body_exactly() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    let body = json!({
        "provider_name": "openrouter", "credentials": { "api_key": "sk-or-v1-abc123" },
        "key_label": "Production OpenRouter", "is_primary": true, "daily_limit": 10000, "minute_limit": 100,
        "spend_limit_amount": 500.00, "spend_limit_period": "monthly", "spend_limit_action": "warn"
    });
    let reply = app.post(INTEGRATIONS, Some(&credential), body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["success"], true);
    let i = &reply.body["integration"];
    let expected = json!({
        "provider_name": "openrouter", "provider_label": "OpenRouter", "key_label": "Production OpenRouter",
        "is_active": true, "is_primary": true, "priority": 10, "daily_limit": 10000, "daily_count": 0,
        "minute_limit": 100, "minute_count": 0, "health_status": "healthy", "consecutive_failures": 0,
        "spend_limit_amount": 500.0, "spend_limit_period": "monthly", "spend_limit_action": "warn",
        "spend_limit_exceeded": false, "key_preview": { "api_key": "sk-o...123" },
        "share_with_pool": false, "last_used_at": null, "last_error": null, "spend_today": 0.0,
        "spend_month": 0.0, "disabled_reason": null
    });
    for (field, value) in expected.as_object().expect("object") {
        assert_eq!(&i[field], value, "field {field}");
    }
    assert!(i["id"].is_i64() && i["created_at"].is_string() && i["updated_at"].is_string());

    let plain = app
        .add_key(&credential, "groq", "gsk_second_key_000", json!({}))
        .await;
    let fetched = app
        .get(&format!("{INTEGRATIONS}/{plain}"), Some(&credential))
        .await;
    assert_eq!(
        (
            fetched.body["integration"]["priority"].as_i64(),
            fetched.body["integration"]["is_primary"].as_bool()
        ),
        (Some(0), Some(false))
    );
    assert_eq!(fetched.body["integration"]["spend_limit_action"], "warn");
}

#[actix_web::test]
async fn the_same_credential_twice_is_409_but_another_brand_may_hold_it() {
    let app = spawn_app().await;
    let (_, acme) = app.create_brand("Acme").await;
    let (_, globex) = app.create_brand("Globex").await;
    app.add_key(&acme, "groq", "gsk_shared_secret_1", json!({}))
        .await;
    let again = app
        .post(
            INTEGRATIONS,
            Some(&acme),
            json!({ "provider_name": "groq", "credentials": { "api_key": "gsk_shared_secret_1" } }),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["success"], false);
    assert_eq!(
        again.body["error"],
        "A key with this credential already exists for this provider"
    );
    app.add_key(&acme, "mistral", "gsk_shared_secret_1", json!({}))
        .await;
    app.add_key(&globex, "groq", "gsk_shared_secret_1", json!({}))
        .await;
}

#[actix_web::test]
async fn bad_providers_and_credentials_are_400_in_the_seed_envelope() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    let unknown = app
        .post(
            INTEGRATIONS,
            Some(&credential),
            json!({ "provider_name": "acme-ai", "credentials": { "api_key": "x" } }),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    let message = unknown.body["error"].as_str().expect("error");
    assert!(
        message.starts_with("Invalid provider_name. Supported: ")
            && message.contains("openrouter")
            && message.contains("baseten"),
        "{message}"
    );
    let cases = [
        json!({ "provider_name": "cloudflare", "credentials": { "api_key": "k" } }),
        json!({ "provider_name": "groq" }),
        json!({ "provider_name": "groq", "credentials": { "api_key": "" } }),
        json!({ "provider_name": "groq", "credentials": { "api_key": "k" }, "spend_limit_action": "panic" }),
        json!({ "provider_name": "groq", "credentials": { "api_key": "k" }, "minute_limit": 0 }),
    ];
    for body in cases {
        let reply = app
            .post(INTEGRATIONS, Some(&credential), body.clone())
            .await;
        assert_eq!(
            (reply.status, reply.body["success"].as_bool()),
            (StatusCode::BAD_REQUEST, Some(false)),
            "{body}: {}",
            reply.body
        );
    }
    let broken = app
        .client
        .post(format!("{}{INTEGRATIONS}", app.address))
        .bearer_auth(&credential)
        .body("{oops")
        .send()
        .await
        .expect("request");
    let broken = crate::helpers::reply(broken).await;
    assert_eq!(
        (broken.status, broken.body["success"].as_bool()),
        (StatusCode::BAD_REQUEST, Some(false))
    );
}

#[actix_web::test]
async fn list_get_patch_delete_and_tenant_isolation() {
    let app = spawn_app().await;
    let (_, acme) = app.create_brand("Acme").await;
    let (_, globex) = app.create_brand("Globex").await;
    let a = app
        .add_key(
            &acme,
            "groq",
            "gsk_aaaaaaaaaaaa",
            json!({ "key_label": "a" }),
        )
        .await;
    let b = app
        .add_key(&acme, "mistral", "mistral_bbbbbbbbbb", json!({}))
        .await;

    let listed = app
        .get(&format!("{INTEGRATIONS}?provider_name=groq"), Some(&acme))
        .await;
    assert_eq!(
        (
            listed.body["total"].as_u64(),
            listed.body["integrations"][0]["id"].as_i64()
        ),
        (Some(1), Some(a))
    );
    let paged = app
        .get(&format!("{INTEGRATIONS}?limit=1&offset=1"), Some(&acme))
        .await;
    assert_eq!(
        (
            paged.body["total"].as_u64(),
            paged.body["integrations"][0]["id"].as_i64()
        ),
        (Some(2), Some(b))
    );
    assert_eq!(
        app.get(&format!("{INTEGRATIONS}?limit=101"), Some(&acme))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    let patched = app.patch(&format!("{INTEGRATIONS}/{a}"), Some(&acme), json!({ "is_primary": true, "minute_limit": 7, "key_label": null, "share_with_pool": true })).await;
    let i = &patched.body["integration"];
    assert_eq!(
        (
            i["priority"].as_i64(),
            i["minute_limit"].as_u64(),
            i["share_with_pool"].as_bool()
        ),
        (Some(10), Some(7), Some(true))
    );
    assert!(i["key_label"].is_null());
    let immutable = app
        .patch(
            &format!("{INTEGRATIONS}/{a}"),
            Some(&acme),
            json!({ "credentials": { "api_key": "new" } }),
        )
        .await;
    assert_eq!(immutable.status, StatusCode::BAD_REQUEST);

    for path in [
        format!("{INTEGRATIONS}/{a}"),
        format!("{INTEGRATIONS}/{a}/reset-health"),
        format!("{INTEGRATIONS}/{a}/test"),
    ] {
        let method = if path.ends_with(&a.to_string()) {
            reqwest::Method::GET
        } else {
            reqwest::Method::POST
        };
        let reply = app.request(method, &path, Some(&globex), None).await;
        assert_eq!(
            (reply.status, reply.body["success"].as_bool()),
            (StatusCode::NOT_FOUND, Some(false)),
            "{path}"
        );
    }
    assert_eq!(
        app.delete(&format!("{INTEGRATIONS}/{a}"), Some(&globex))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get(INTEGRATIONS, Some(&globex)).await.body["total"], 0);

    let deleted = app
        .delete(&format!("{INTEGRATIONS}/{a}"), Some(&acme))
        .await;
    assert_eq!(
        deleted.body,
        json!({ "success": true, "message": "Integration deleted successfully", "deleted_id": a })
    );
    assert_eq!(
        app.get(&format!("{INTEGRATIONS}/{a}"), Some(&acme))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn test_connection_lists_models_with_the_key_and_stores_nothing() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    app.fake.set(
        "gsk_revoked_upstream",
        crate::fake_provider::Behaviour::Unauthorized,
    );
    let good = app
        .post(
            &format!("{INTEGRATIONS}/test"),
            Some(&credential),
            json!({ "provider_name": "groq", "credentials": { "api_key": "gsk_fine_key_123" } }),
        )
        .await;
    assert_eq!(
        (good.body["success"].as_bool(), good.body["error"].is_null()),
        (Some(true), true),
        "{}",
        good.body
    );
    assert!(good.body["latency_ms"].is_u64());
    let bad = app.post(&format!("{INTEGRATIONS}/test"), Some(&credential), json!({ "provider_name": "groq", "credentials": { "api_key": "gsk_revoked_upstream" } })).await;
    assert_eq!(bad.body["success"], false);
    let error = bad.body["error"].as_str().expect("error");
    assert!(
        error.contains("401") && !error.contains("gsk_revoked_upstream"),
        "{error}"
    );
    assert_eq!(
        app.get(INTEGRATIONS, Some(&credential)).await.body["total"],
        0
    );
    let calls = app.fake.requests();
    assert!(
        calls.iter().all(|r| r.path == "/groq/v1/models"),
        "{calls:?}"
    );

    let id = app
        .add_key(
            &credential,
            "cloudflare",
            "cf_token_abcdefgh",
            json!({ "credentials": { "api_key": "cf_token_abcdefgh", "account_id": "acct42" } }),
        )
        .await;
    let stored = app
        .post(
            &format!("{INTEGRATIONS}/{id}/test"),
            Some(&credential),
            json!({}),
        )
        .await;
    assert_eq!(stored.body["success"], true, "{}", stored.body);
    assert!(
        app.fake
            .requests()
            .iter()
            .any(|r| r.path == "/cloudflare/acct42/v1/models"),
        "account_id fills the URL"
    );
}

#[actix_web::test]
async fn pool_keys_are_the_operators_and_brands_cannot_reach_them() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    let pool = app.add_pool_key("groq", "gsk_pool_key_0001").await;
    let listed = app
        .get("/api/v1/admin/pool-keys", Some(&app.admin_token))
        .await;
    assert_eq!(listed.body["total"], 1);
    assert_eq!(
        app.get(&format!("{INTEGRATIONS}/{pool}"), Some(&credential))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/v1/admin/pool-keys", Some(&credential))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let providers = app.get("/api/gate/v1/providers", None).await.body;
    let groq = providers["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|p| p["id"] == "groq")
        .expect("groq");
    assert_eq!(
        groq["is_configured"], true,
        "a pool key configures the provider for everyone"
    );
}

#[actix_web::test]
async fn without_a_vault_key_credentials_are_refused_not_stored_in_clear() {
    let app = spawn_app_with(|config| config.vault.keys.clear()).await;
    let (_, credential) = app.create_brand("Acme").await;
    let reply = app
        .post(
            INTEGRATIONS,
            Some(&credential),
            json!({ "provider_name": "groq", "credentials": { "api_key": "gsk_x_123456789" } }),
        )
        .await;
    assert_eq!(
        (reply.status, reply.body["success"].as_bool()),
        (StatusCode::SERVICE_UNAVAILABLE, Some(false))
    );
    assert!(
        reply.body["error"]
            .as_str()
            .expect("error")
            .contains("SPIDERGATE_VAULT_KEY")
    );
}

#[actix_web::test]
async fn a_pat_needs_the_system_scope_for_the_vault() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    assert_eq!(
        app.get(INTEGRATIONS, Some(&token)).await.code(),
        "insufficient_scope"
    );
    let (admin, _) = app
        .mint_token(&credential, json!({ "name": "ops", "scopes": ["system"] }))
        .await;
    assert_eq!(
        app.get(INTEGRATIONS, Some(&admin)).await.status,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn rows_written_under_vault_key_1_survive_rotation_to_key_2() {
    use crate::helpers::VAULT_KEY;
    use spidergate::secret::Secret;
    let key2 = fernet::Fernet::generate_key();
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "groq", "gsk_rotating_0001", json!({}))
        .await;
    let duplicate =
        json!({ "provider_name": "groq", "credentials": { "api_key": "gsk_rotating_0001" } });

    // Key 2 first, key 1 kept: old rows still decrypt and still count as duplicates.
    let both = vec![Secret::new(key2.clone()), Secret::new(VAULT_KEY)];
    let app = app
        .restart_with(|c| c.vault.keys = both.clone(), |_| async {})
        .await;
    assert_eq!(
        app.chat(&token, "groq/llama-3.1-8b-instant").await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.post(INTEGRATIONS, Some(&credential), duplicate.clone())
            .await
            .status,
        StatusCode::CONFLICT
    );

    // Re-encrypt while stopped, then drop key 1 entirely.
    let reencrypt = |config: spidergate::config::Config| async move {
        let db = spidergate::storage::connect(&config.database)
            .await
            .expect("database");
        let cipher = spidergate::vault::VaultCipher::from_keys(&config.vault.keys)
            .expect("keys")
            .expect("configured");
        assert_eq!(
            spidergate::vault::reencrypt_all(&db, &cipher)
                .await
                .expect("re-encrypt"),
            1
        );
    };
    let app = app.restart_with(|_| {}, reencrypt).await;
    let app = app
        .restart_with(
            |c| c.vault.keys = vec![Secret::new(key2.clone())],
            |_| async {},
        )
        .await;
    assert_eq!(
        app.serving_key(&token, "groq/llama-3.1-8b-instant").await,
        "gsk_rotating_0001"
    );
    assert_eq!(
        app.post(INTEGRATIONS, Some(&credential), duplicate)
            .await
            .status,
        StatusCode::CONFLICT
    );
}

#[actix_web::test]
async fn health_recommendations_say_each_thing_once() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    app.add_key(&credential, "groq", "gsk_advice_first_1", json!({}))
        .await;
    app.add_key(&credential, "openai", "sk-advice-middle-1", json!({}))
        .await;
    let third = app
        .add_key(&credential, "groq", "gsk_advice_third_1", json!({}))
        .await;
    let paused = app
        .patch(
            &format!("{INTEGRATIONS}/{third}"),
            Some(&credential),
            json!({ "is_active": false }),
        )
        .await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    let report = app
        .get(&format!("{INTEGRATIONS}/health"), Some(&credential))
        .await
        .body;
    let advice: Vec<&str> = report["recommendations"]
        .as_array()
        .expect("recommendations")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    let once: std::collections::BTreeSet<&str> = advice.iter().copied().collect();
    assert_eq!(advice.len(), once.len(), "{advice:#?}");
    assert!(
        advice
            .iter()
            .any(|a| a.contains("Only one working key for groq")),
        "{advice:#?}"
    );
}
