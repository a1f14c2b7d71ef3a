//! Chat completions through the router: key order, rotation, every fallback path, key health,
//! per-key limits, and the response the caller sees.

use crate::fake_provider::Behaviour;
use crate::helpers::{TestApp, eventually, provider_of, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::json;

const MODEL: &str = "groq/llama-3.1-8b-instant";

/// Which key served: the fake answers "hello from <key>".
fn served_by(reply: &crate::helpers::Reply) -> String {
    let content = reply.body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no content: {}", reply.body));
    content.trim_start_matches("hello from ").to_owned()
}

async fn health_of(app: &TestApp, credential: &str, id: i64) -> serde_json::Value {
    app.get(&format!("/api/v1/integrations/{id}"), Some(credential))
        .await
        .body["integration"]
        .clone()
}

#[actix_web::test]
async fn a_chat_is_served_with_the_gateways_model_id_metadata_and_request_id() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "groq", "gsk_key_one_0001", json!({}))
        .await;
    let body = json!({ "model": MODEL, "messages": [{ "role": "user", "content": "hi" }], "seed": 42, "tools": [{ "type": "function", "function": { "name": "f" } }] });
    let reply = app
        .post(
            "/api/gate/v1/chat/completions?include_route_trace=true",
            Some(&token),
            body,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["model"], MODEL);
    let meta = &reply.body["spidergate_metadata"];
    assert_eq!(
        (meta["provider"].as_str(), meta["provider_model"].as_str()),
        (Some("groq"), Some("llama-3.1-8b-instant"))
    );
    assert_eq!(
        (
            meta["fallback_used"].as_bool(),
            meta["original_model"].as_str()
        ),
        (Some(false), Some(MODEL))
    );
    assert!(meta["latency_ms"].is_u64() && meta["cost_usd"].is_number());
    assert_eq!(reply.body["spidergate_route_trace"][0]["status"], "ok");
    assert!(
        reply.headers.contains_key("x-request-id")
            && !reply.headers.contains_key("x-spidergate-fallback-from")
    );

    let sent = &app.fake.requests()[0];
    assert_eq!(sent.path, "/groq/v1/chat/completions");
    assert_eq!(
        (sent.body["model"].as_str(), sent.body["seed"].as_i64()),
        (Some("llama-3.1-8b-instant"), Some(42))
    );
    assert_eq!(
        sent.body["tools"][0]["function"]["name"], "f",
        "unknown fields are forwarded untouched"
    );
}

#[actix_web::test]
async fn requests_need_gate_chat_a_known_model_and_a_valid_body() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    let (models_only, _) = app
        .mint_token(
            &credential,
            json!({ "name": "m", "scopes": ["gate:models"] }),
        )
        .await;
    app.chat(&models_only, MODEL)
        .await
        .assert_error(403, "insufficient_scope");
    app.chat(&token, "no/such-model")
        .await
        .assert_error(404, "model_not_found");
    app.post(
        "/api/gate/v1/chat/completions",
        Some(&token),
        json!({ "model": MODEL }),
    )
    .await
    .assert_error(400, "invalid_request");
    app.chat(&token, MODEL)
        .await
        .assert_error(503, "no_available_key");
    assert!(app.fake.requests().is_empty());
}

#[actix_web::test]
async fn own_keys_come_before_shared_keys_before_pool_keys() {
    let app = spawn_app().await;
    let (acme, token) = app.brand_with_token().await;
    let (_, globex) = app.create_brand("Globex").await;
    app.add_pool_key("groq", "gsk_pool_key_000").await;
    let shared = app
        .add_key(
            &globex,
            "groq",
            "gsk_globex_shared",
            json!({ "share_with_pool": true }),
        )
        .await;
    app.add_key(&globex, "groq", "gsk_globex_private", json!({}))
        .await;
    let own = app
        .add_key(&acme, "groq", "gsk_acme_own_key", json!({}))
        .await;

    assert_eq!(
        served_by(&app.chat(&token, MODEL).await),
        "gsk_acme_own_key"
    );
    app.delete(&format!("/api/v1/integrations/{own}"), Some(&acme))
        .await;
    assert_eq!(
        served_by(&app.chat(&token, MODEL).await),
        "gsk_globex_shared"
    );
    app.patch(
        &format!("/api/v1/integrations/{shared}"),
        Some(&globex),
        json!({ "share_with_pool": false }),
    )
    .await;
    assert_eq!(
        served_by(&app.chat(&token, MODEL).await),
        "gsk_pool_key_000"
    );
    assert_eq!(
        app.fake.calls("gsk_globex_private"),
        0,
        "a private key never serves another brand"
    );
}

#[actix_web::test]
async fn primary_keys_first_then_rotation_among_equals() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "groq", "gsk_plain_a_0001", json!({}))
        .await;
    let primary = app
        .add_key(
            &credential,
            "groq",
            "gsk_primary_0001",
            json!({ "is_primary": true }),
        )
        .await;
    for _ in 0..3 {
        assert_eq!(
            served_by(&app.chat(&token, MODEL).await),
            "gsk_primary_0001"
        );
    }
    app.patch(
        &format!("/api/v1/integrations/{primary}"),
        Some(&credential),
        json!({ "is_primary": false }),
    )
    .await;
    app.add_key(&credential, "groq", "gsk_plain_b_0001", json!({}))
        .await;
    for _ in 0..6 {
        app.chat(&token, MODEL).await;
    }
    let counts =
        ["gsk_plain_a_0001", "gsk_plain_b_0001", "gsk_primary_0001"].map(|k| app.fake.calls(k));
    assert_eq!(
        counts,
        [2, 2, 5],
        "equal keys rotate least-recently-used first"
    );
}

#[actix_web::test]
async fn a_failing_key_falls_back_to_the_next_key_and_counts_against_its_health() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    let bad = app
        .add_key(
            &credential,
            "groq",
            "gsk_broken_0001",
            json!({ "is_primary": true }),
        )
        .await;
    app.add_key(&credential, "groq", "gsk_working_0001", json!({}))
        .await;
    app.fake.set("gsk_broken_0001", Behaviour::ServerError);

    let reply = app
        .post(
            "/api/gate/v1/chat/completions?include_route_trace=true",
            Some(&token),
            json!({ "model": MODEL, "messages": [{ "role": "user", "content": "x" }] }),
        )
        .await;
    assert_eq!(served_by(&reply), "gsk_working_0001");
    let trace: Vec<&str> = reply.body["spidergate_route_trace"]
        .as_array()
        .expect("trace")
        .iter()
        .map(|a| a["status"].as_str().expect("status"))
        .collect();
    assert_eq!(trace, ["error", "ok"]);
    assert_eq!(reply.body["spidergate_route_trace"][0]["error_code"], "500");
    let key = health_of(&app, &credential, bad).await;
    assert_eq!(
        (
            key["health_status"].as_str(),
            key["consecutive_failures"].as_u64()
        ),
        (Some("degraded"), Some(1))
    );

    app.chat(&token, MODEL).await;
    app.chat(&token, MODEL).await;
    assert_eq!(
        health_of(&app, &credential, bad).await["health_status"],
        "unhealthy"
    );
    let before = app.fake.calls("gsk_broken_0001");
    for _ in 0..3 {
        assert_eq!(
            served_by(&app.chat(&token, MODEL).await),
            "gsk_working_0001"
        );
    }
    assert_eq!(
        app.fake.calls("gsk_broken_0001"),
        before,
        "an unhealthy key is skipped"
    );

    let report = app
        .get("/api/v1/integrations/health", Some(&credential))
        .await
        .body;
    assert_eq!(
        (
            report["summary"]["unhealthy"].as_u64(),
            report["summary"]["healthy"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert!(
        report["recommendations"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );
    let reset = app
        .post(
            &format!("/api/v1/integrations/{bad}/reset-health"),
            Some(&credential),
            json!({}),
        )
        .await;
    assert_eq!(reset.body["integration"]["health_status"], "healthy");
}

#[actix_web::test]
async fn an_unhealthy_key_gets_one_probe_after_the_cooldown_and_recovers() {
    let app = spawn_app_with(|config| config.health.cooldown_secs = 60).await;
    let (credential, token) = app.brand_with_token().await;
    let flaky = app
        .add_key(&credential, "groq", "gsk_flaky_00001", json!({}))
        .await;
    for _ in 0..3 {
        app.fake.once("gsk_flaky_00001", Behaviour::ServerError);
        app.chat(&token, MODEL)
            .await
            .assert_error(502, "upstream_error");
    }
    app.chat(&token, MODEL)
        .await
        .assert_error(503, "no_available_key");
    app.state.clock.advance(chrono::Duration::seconds(59));
    app.chat(&token, MODEL)
        .await
        .assert_error(503, "no_available_key");
    app.state.clock.advance(chrono::Duration::seconds(1));
    assert_eq!(served_by(&app.chat(&token, MODEL).await), "gsk_flaky_00001");
    assert_eq!(
        health_of(&app, &credential, flaky).await["health_status"],
        "healthy"
    );
}

#[actix_web::test]
async fn a_429_rests_the_key_until_retry_after() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(
        &credential,
        "groq",
        "gsk_limited_0001",
        json!({ "is_primary": true }),
    )
    .await;
    app.add_key(&credential, "groq", "gsk_spare_00001", json!({}))
        .await;
    app.fake.once(
        "gsk_limited_0001",
        Behaviour::RateLimited {
            retry_after_secs: 60,
        },
    );
    assert_eq!(served_by(&app.chat(&token, MODEL).await), "gsk_spare_00001");
    for _ in 0..2 {
        assert_eq!(
            served_by(&app.chat(&token, MODEL).await),
            "gsk_spare_00001",
            "the primary rests"
        );
    }
    assert_eq!(app.fake.calls("gsk_limited_0001"), 1);
}

#[actix_web::test]
async fn three_auth_failures_disable_the_key_without_leaking_it() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    let revoked = app
        .add_key(&credential, "groq", "gsk_revoked_secret_9", json!({}))
        .await;
    app.fake
        .set("gsk_revoked_secret_9", Behaviour::Unauthorized);
    for _ in 0..3 {
        app.chat(&token, MODEL)
            .await
            .assert_error(502, "upstream_error");
    }
    eventually(
        "the key disabled",
        std::time::Duration::from_secs(5),
        async || health_of(&app, &credential, revoked).await["is_active"] == false,
    )
    .await;
    let key = health_of(&app, &credential, revoked).await;
    assert_eq!(
        (key["is_active"].as_bool(), key["disabled_reason"].as_str()),
        (Some(false), Some("auth_failed")),
        "{key}"
    );
    let error = key["last_error"].as_str().expect("last_error");
    assert!(
        error.contains("401") && !error.contains("gsk_revoked_secret_9"),
        "{error}"
    );
    app.chat(&token, MODEL)
        .await
        .assert_error(503, "no_available_key");
    assert_eq!(app.fake.calls("gsk_revoked_secret_9"), 3);

    app.fake.set("gsk_revoked_secret_9", Behaviour::Ok);
    let enabled = app
        .patch(
            &format!("/api/v1/integrations/{revoked}"),
            Some(&credential),
            json!({ "is_active": true }),
        )
        .await;
    assert!(enabled.body["integration"]["disabled_reason"].is_null());
    assert_eq!(
        served_by(&app.chat(&token, MODEL).await),
        "gsk_revoked_secret_9"
    );
}

#[actix_web::test]
async fn an_alias_falls_back_to_its_next_model_and_says_so() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    let chain = app.alias_chain("spideriq/fast").await;
    let (first, second) = (provider_of(&chain[0]), provider_of(&chain[1]));
    assert_ne!(first, second, "the test needs a cross-provider chain");
    app.add_key(&credential, &first, "first_provider_key", json!({}))
        .await;
    app.add_key(&credential, &second, "second_provider_key", json!({}))
        .await;
    app.fake.set("first_provider_key", Behaviour::ServerError);

    let reply = app.chat(&token, "spideriq/fast").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["model"], chain[1].as_str());
    assert_eq!(
        reply.headers["x-spidergate-fallback-from"],
        chain[0].as_str()
    );
    assert_eq!(reply.body["spidergate_metadata"]["fallback_used"], true);
    assert_eq!(
        reply.body["spidergate_metadata"]["original_model"],
        "spideriq/fast"
    );
}

#[actix_web::test]
async fn a_model_missing_upstream_moves_to_the_next_model_not_the_next_key() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    let chain = app.alias_chain("spideriq/fast").await;
    let provider = provider_of(&chain[0]);
    app.add_key(&credential, &provider, "key_without_model", json!({}))
        .await;
    app.add_key(&credential, &provider, "key_without_model_too", json!({}))
        .await;
    app.fake.set("key_without_model", Behaviour::NotFound);
    app.fake.set("key_without_model_too", Behaviour::NotFound);
    app.chat(&token, "spideriq/fast").await;
    assert_eq!(
        app.fake.calls("key_without_model") + app.fake.calls("key_without_model_too"),
        1,
        "404 skips the model's other keys"
    );
}

#[actix_web::test]
async fn a_bad_request_is_returned_at_once_without_trying_other_keys() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(
        &credential,
        "groq",
        "gsk_strict_00001",
        json!({ "is_primary": true }),
    )
    .await;
    app.add_key(&credential, "groq", "gsk_other_000001", json!({}))
        .await;
    app.fake.set("gsk_strict_00001", Behaviour::BadRequest);
    let reply = app.chat(&token, MODEL).await;
    reply.assert_error(400, "invalid_request");
    assert!(
        reply.message().contains("role is invalid"),
        "{}",
        reply.message()
    );
    assert_eq!(app.fake.calls("gsk_other_000001"), 0);
}

#[actix_web::test]
async fn timeouts_fall_back_and_a_final_timeout_is_504() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(
        &credential,
        "groq",
        "gsk_hangs_000001",
        json!({ "is_primary": true }),
    )
    .await;
    app.add_key(&credential, "groq", "gsk_answers_0001", json!({}))
        .await;
    app.fake.set("gsk_hangs_000001", Behaviour::Hang);
    assert_eq!(
        served_by(&app.chat(&token, MODEL).await),
        "gsk_answers_0001"
    );
    app.fake.set("gsk_answers_0001", Behaviour::Hang);
    app.chat(&token, MODEL)
        .await
        .assert_error(504, "upstream_timeout");
}

#[actix_web::test]
async fn when_every_candidate_fails_the_502_lists_the_attempts_within_the_limit() {
    let app = spawn_app_with(|config| config.routing.max_attempts = 2).await;
    let (credential, token) = app.brand_with_token().await;
    for key in ["gsk_dead_000001", "gsk_dead_000002", "gsk_dead_000003"] {
        app.add_key(&credential, "groq", key, json!({})).await;
        app.fake.set(key, Behaviour::ServerError);
    }
    let reply = app.chat(&token, MODEL).await;
    reply.assert_error(502, "upstream_error");
    assert!(
        reply.message().contains("groq") && reply.message().contains("500"),
        "{}",
        reply.message()
    );
    assert_eq!(
        app.fake.requests().len(),
        2,
        "routing.max_attempts caps the calls"
    );
}

#[actix_web::test]
async fn minute_limits_are_exact_under_concurrency() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(
        &credential,
        "groq",
        "gsk_limited_minute",
        json!({ "minute_limit": 5 }),
    )
    .await;
    let requests = (0..200).map(|_| app.chat(&token, MODEL));
    let replies = futures_util::future::join_all(requests).await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let refused = replies
        .iter()
        .filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE && r.code() == "no_available_key")
        .count();
    assert_eq!((ok, refused), (5, 195));
    assert_eq!(app.fake.calls("gsk_limited_minute"), 5);
}

#[actix_web::test]
async fn daily_limits_are_exact_under_concurrency_and_spill_to_the_next_key() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(
        &credential,
        "groq",
        "gsk_daily_capped",
        json!({ "daily_limit": 7, "is_primary": true }),
    )
    .await;
    app.add_key(&credential, "groq", "gsk_daily_spill", json!({}))
        .await;
    let replies = futures_util::future::join_all((0..30).map(|_| app.chat(&token, MODEL))).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::OK));
    assert_eq!(
        (
            app.fake.calls("gsk_daily_capped"),
            app.fake.calls("gsk_daily_spill")
        ),
        (7, 23)
    );
    let listed = app
        .get("/api/v1/integrations", Some(&credential))
        .await
        .body;
    assert_eq!(listed["integrations"][0]["daily_count"], 7);
}

#[actix_web::test]
async fn an_alias_tries_models_with_a_healthy_key_first() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    let chain = app.alias_chain("spideriq/fast").await;
    let (first, second) = (provider_of(&chain[0]), provider_of(&chain[1]));
    app.add_key(&credential, &first, "first_key_goes_bad", json!({}))
        .await;
    app.add_key(&credential, &second, "second_key_is_fine", json!({}))
        .await;
    app.fake.set("first_key_goes_bad", Behaviour::ServerError);
    for _ in 0..3 {
        app.chat(&token, "spideriq/fast").await;
    }
    let calls_while_failing = app.fake.calls("first_key_goes_bad");
    assert_eq!(
        calls_while_failing, 3,
        "three failures make the key unhealthy"
    );
    let reply = app.chat(&token, "spideriq/fast").await;
    assert_eq!(reply.body["model"], chain[1].as_str());
    assert_eq!(
        app.fake.calls("first_key_goes_bad"),
        calls_while_failing,
        "the unhealthy model is not even tried"
    );
    assert_eq!(
        reply.headers["x-spidergate-fallback-from"],
        chain[0].as_str()
    );
}
