//! Per-token controls and accounting: budgets, rate limits, allow-lists, spend, usage and traces.

use crate::fake_provider::Behaviour;
use crate::helpers::{TestApp, eventually, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// An OpenAI model with a price, so requests cost something.
const PRICED: &str = "gpt-4o-mini";

fn chat_body(model: &str, max_tokens: u64) -> Value {
    json!({ "model": model, "max_tokens": max_tokens, "messages": [{ "role": "user", "content": "ping" }] })
}

/// A brand with an OpenAI and a Groq key, and a token minted with `controls`.
async fn setup(app: &TestApp, controls: Value) -> (String, String, i64) {
    let (_, credential) = app.create_brand("Acme").await;
    app.add_key(&credential, "openai", "sk-openai-accounting", json!({}))
        .await;
    app.add_key(&credential, "groq", "gsk_groq_accounting", json!({}))
        .await;
    let mut body = json!({ "name": "agent" });
    body.as_object_mut()
        .expect("object")
        .extend(controls.as_object().expect("object").clone());
    let (token, key) = app.mint_token(&credential, body).await;
    (credential, token, key["id"].as_i64().expect("id"))
}

/// A non-streamed chat for `model` with `max_tokens`.
async fn chat(app: &TestApp, token: &str, model: &str, max_tokens: u64) -> crate::helpers::Reply {
    app.post(
        "/api/gate/v1/chat/completions",
        Some(token),
        chat_body(model, max_tokens),
    )
    .await
}

async fn traces(app: &TestApp, credential: &str, query: &str) -> Value {
    app.state.usage.flush().await;
    app.get(&format!("/api/v1/traces{query}"), Some(credential))
        .await
        .body
}

#[actix_web::test]
async fn a_hard_budget_is_never_exceeded_under_200_concurrent_requests() {
    let app = spawn_app().await;
    let (credential, token, id) = setup(&app, json!({ "monthly_budget_usd": 0.002 })).await;
    // Billed for every completion token sent (about $0.0006 each): the spend itself reaches the
    // cap, on one node and on replicas' leases alike, however the requests interleave.
    app.fake.set(
        "sk-openai-accounting",
        Behaviour::Reports {
            prompt_tokens: None,
            completion_tokens: None,
        },
    );
    let requests = (0..200).map(|_| chat(&app, &token, PRICED, 1000));
    let replies = futures_util::future::join_all(requests).await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let refused = replies
        .iter()
        .filter(|r| r.status == StatusCode::PAYMENT_REQUIRED)
        .count();
    assert_eq!(
        ok + refused,
        200,
        "every request either succeeded or got 402"
    );
    assert!(
        ok > 0 && refused > 0,
        "the cap must bite: {ok} ok, {refused} refused"
    );
    assert!(
        replies
            .iter()
            .filter(|r| r.status == StatusCode::PAYMENT_REQUIRED)
            .all(|r| r.code() == "budget_exceeded")
    );
    assert_eq!(
        app.fake.calls("sk-openai-accounting"),
        ok,
        "a 402 never reaches the provider"
    );

    app.state.usage.flush().await;
    let key = app
        .get(&format!("/api/v1/agent-keys/{id}"), Some(&credential))
        .await
        .body;
    let spent = key["spend"]["month_usd"].as_f64().expect("spend");
    assert!(
        spent > 0.0 && spent <= 0.002,
        "recorded spend {spent} within the cap"
    );
    assert_eq!(key["spend"]["by_model"][0]["model"], PRICED);
    assert_eq!(
        key["spend"]["by_model"][0]["requests"].as_u64(),
        Some(ok as u64)
    );
}

#[actix_web::test]
async fn rpm_is_exact_under_100_concurrent_requests_with_the_headers() {
    let app = spawn_app().await;
    let (_, token, _) = setup(&app, json!({ "rpm": 10 })).await;
    let requests = (0..100).map(|_| app.chat(&token, "groq/llama-3.1-8b-instant"));
    let replies = futures_util::future::join_all(requests).await;
    let ok: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    let limited: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!((ok.len(), limited.len()), (10, 90));
    for reply in &limited {
        assert_eq!(reply.code(), "rate_limit_exceeded");
        let retry: u64 = reply.headers["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=60).contains(&retry), "{retry}");
        assert_eq!(reply.headers["x-ratelimit-limit-requests"], "10");
        assert_eq!(reply.headers["x-ratelimit-remaining-requests"], "0");
        assert!(reply.headers.contains_key("x-ratelimit-reset"));
    }
    let remaining: Vec<u32> = ok
        .iter()
        .map(|r| {
            r.headers["x-ratelimit-remaining-requests"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("n")
        })
        .collect();
    let mut sorted = remaining.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..10).collect::<Vec<u32>>(),
        "each success reports what is left"
    );
}

#[actix_web::test]
async fn the_daily_limit_answers_its_own_code() {
    let app = spawn_app().await;
    let (_, token, _) = setup(&app, json!({ "rpd": 3 })).await;
    for _ in 0..3 {
        assert_eq!(
            app.chat(&token, "groq/llama-3.1-8b-instant").await.status,
            StatusCode::OK
        );
    }
    let reply = app.chat(&token, "groq/llama-3.1-8b-instant").await;
    reply.assert_error(429, "daily_rate_limit_exceeded");
    assert!(reply.headers.contains_key("retry-after"));
}

#[actix_web::test]
async fn allow_lists_and_free_only_refuse_before_any_provider_is_called() {
    let app = spawn_app().await;
    let (credential, listed, _) = setup(&app, json!({ "allowed_models": ["spideriq/fast"] })).await;
    let refused = app.chat(&listed, "gpt-4o").await;
    refused.assert_error(403, "model_not_allowed");
    assert!(
        refused.message().contains("spideriq/fast"),
        "names what is allowed: {}",
        refused.message()
    );
    let chain_member = app.alias_chain("spideriq/fast").await.remove(0);
    app.chat(&listed, &chain_member)
        .await
        .assert_error(403, "model_not_allowed");
    assert!(app.fake.requests().is_empty());

    let (free, _) = app
        .mint_token(
            &credential,
            json!({ "name": "free", "free_models_only": true }),
        )
        .await;
    app.chat(&free, "gpt-4o")
        .await
        .assert_error(403, "model_not_allowed");
    let served = app.chat(&free, "spideriq/free").await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.body);
    let model = served.body["model"].as_str().expect("model").to_owned();
    let info = app
        .get(&format!("/api/gate/v1/models/{model}"), None)
        .await
        .body;
    assert_eq!(
        info["spidergate_info"]["free_tier"], true,
        "{model} must be free"
    );
}

#[actix_web::test]
async fn a_soft_budget_passes_with_a_warning_header() {
    let app = spawn_app().await;
    let (_, token, _) = setup(
        &app,
        json!({ "monthly_budget_usd": 0.000005, "budget_mode": "soft" }),
    )
    .await;
    let first = app
        .post(
            "/api/gate/v1/chat/completions",
            Some(&token),
            chat_body(PRICED, 10),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(!first.headers.contains_key("x-spidergate-budget-warning"));
    for _ in 0..3 {
        let reply = app
            .post(
                "/api/gate/v1/chat/completions",
                Some(&token),
                chat_body(PRICED, 10),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "soft budgets never block");
    }
    let last = app
        .post(
            "/api/gate/v1/chat/completions",
            Some(&token),
            chat_body(PRICED, 10),
        )
        .await;
    let warning = last.headers["x-spidergate-budget-warning"]
        .to_str()
        .expect("ascii");
    assert!(
        warning.ends_with("/0.00") && warning.contains('/'),
        "{warning}"
    );
}

#[actix_web::test]
async fn every_request_leaves_a_trace_with_spans_attempts_and_its_request_id() {
    let app = spawn_app().await;
    let (credential, token, id) = setup(&app, json!({})).await;
    let reply = app.chat(&token, "groq/llama-3.1-8b-instant").await;
    let request_id = reply.headers["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    app.chat(&token, "no/such-model").await;
    app.fake.set("sk-openai-accounting", Behaviour::ServerError);
    app.chat(&token, PRICED)
        .await
        .assert_error(502, "upstream_error");

    let all = traces(&app, &credential, "").await;
    assert_eq!(all["total"], 3);
    let trace = app
        .get(&format!("/api/v1/traces/{request_id}"), Some(&credential))
        .await
        .body;
    assert_eq!(
        (
            trace["status"].as_str(),
            trace["agent_key_id"].as_i64(),
            trace["model"].as_str()
        ),
        (Some("success"), Some(id), Some("groq/llama-3.1-8b-instant"))
    );
    assert_eq!(
        (
            trace["prompt_tokens"].as_u64(),
            trace["completion_tokens"].as_u64(),
            trace["request_kind"].as_str()
        ),
        (Some(10), Some(5), Some("chat"))
    );
    let spans: Vec<&str> = trace["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(spans, ["auth", "limits", "route", "upstream", "tracking"]);
    assert_eq!(trace["attempts"][0]["status"], "ok");
    assert!(
        trace.get("request_body").is_none(),
        "bodies are off by default"
    );

    let errors = traces(&app, &credential, "?status=error").await;
    let codes: Vec<&str> = errors["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|t| t["error_code"].as_str().expect("code"))
        .collect();
    assert_eq!(codes, ["upstream_error", "model_not_found"], "newest first");
    let page = traces(&app, &credential, "?limit=1&offset=1").await;
    assert_eq!(
        (
            page["total"].as_u64(),
            page["data"].as_array().map(Vec::len)
        ),
        (Some(3), Some(1))
    );
    let by_model = traces(
        &app,
        &credential,
        &format!("?model={PRICED}&agent_key_id={id}"),
    )
    .await;
    assert_eq!(by_model["total"], 1);

    let summary = app
        .get("/api/v1/traces/summary", Some(&credential))
        .await
        .body;
    assert_eq!(
        (summary["total"].as_u64(), summary["errors"].as_u64()),
        (Some(3), Some(2))
    );
    assert!((summary["error_rate"].as_f64().expect("rate") - 2.0 / 3.0).abs() < 1e-9);
    for p in ["avg", "p50", "p95", "p99"] {
        assert!(summary["latency_ms"][p].is_number(), "{p}");
    }
    app.get("/api/v1/traces?limit=201", Some(&credential))
        .await
        .assert_error(400, "invalid_request");
}

#[actix_web::test]
async fn a_brand_never_sees_another_brands_traces() {
    let app = spawn_app().await;
    let (_, token, _) = setup(&app, json!({})).await;
    let (_, globex) = app.create_brand("Globex").await;
    let reply = app.chat(&token, "groq/llama-3.1-8b-instant").await;
    let request_id = reply.headers["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(traces(&app, &globex, "").await["total"], 0);
    app.get(&format!("/api/v1/traces/{request_id}"), Some(&globex))
        .await
        .assert_error(404, "not_found");
    assert_eq!(
        app.get("/api/v1/usage", Some(&globex)).await.body["totals"]["requests"],
        0
    );
}

#[actix_web::test]
async fn bodies_are_stored_only_when_configured_and_redacted() {
    let app = spawn_app_with(|config| config.traces.store_bodies = true).await;
    let (credential, token, _) = setup(&app, json!({})).await;
    let body = json!({ "model": "groq/llama-3.1-8b-instant", "messages": [{ "role": "user", "content": "hello there" }], "api_key": "sk-should-not-be-kept" });
    let reply = app
        .post("/api/gate/v1/chat/completions", Some(&token), body)
        .await;
    let id = reply.headers["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    app.state.usage.flush().await;
    let trace = app
        .get(&format!("/api/v1/traces/{id}"), Some(&credential))
        .await
        .body;
    let stored = trace["request_body"].as_str().expect("request body stored");
    assert!(
        stored.contains("hello there") && !stored.contains("sk-should-not-be-kept"),
        "{stored}"
    );
    assert!(
        trace["response_body"]
            .as_str()
            .is_some_and(|b| b.contains("spidergate_metadata"))
    );
}

#[actix_web::test]
async fn usage_reports_the_token_its_budget_and_the_brand() {
    let app = spawn_app().await;
    let (credential, token, id) = setup(
        &app,
        json!({ "monthly_budget_usd": 5, "rpm": 100, "rpd": 1000 }),
    )
    .await;
    for _ in 0..3 {
        chat(&app, &token, PRICED, 10).await;
    }
    app.chat(&token, "groq/llama-3.1-8b-instant").await;
    app.state.usage.flush().await;

    let mine = app.get("/api/gate/v1/usage", Some(&token)).await.body;
    assert_eq!(
        (
            mine["agent_key_id"].as_i64(),
            mine["requests"].as_u64(),
            mine["errors"].as_u64()
        ),
        (Some(id), Some(4), Some(0))
    );
    assert_eq!(
        (
            mine["prompt_tokens"].as_u64(),
            mine["completion_tokens"].as_u64()
        ),
        (Some(40), Some(20))
    );
    let cost = mine["cost_usd"].as_f64().expect("cost");
    assert!(cost > 0.0);
    assert_eq!(mine["budget"]["monthly_usd"], 5.0);
    assert_eq!(mine["budget"]["mode"], "hard");
    assert!((mine["budget"]["spent_usd"].as_f64().expect("spent") - cost).abs() < 1e-9);
    assert!(mine["budget"]["resets_at"].is_string());
    assert_eq!(
        (
            mine["rate_limits"]["rpm"].as_u64(),
            mine["rate_limits"]["remaining_minute"].as_u64()
        ),
        (Some(100), Some(96))
    );
    let by_model: Vec<&str> = mine["by_model"]
        .as_array()
        .expect("by_model")
        .iter()
        .map(|m| m["model"].as_str().expect("model"))
        .collect();
    assert_eq!(by_model, [PRICED, "groq/llama-3.1-8b-instant"]);

    let brand_view = app.get("/api/gate/v1/usage", Some(&credential)).await.body;
    assert!(brand_view.get("budget").is_none() && brand_view["agent_key_id"].is_null());
    assert_eq!(brand_view["requests"], 4);

    let brand = app
        .get("/api/v1/usage?bucket=hour", Some(&credential))
        .await
        .body;
    assert_eq!(brand["totals"]["requests"], 4);
    assert_eq!(brand["by_agent"][0]["agent_key_id"].as_i64(), Some(id));
    let providers: Vec<&str> = brand["by_provider"]
        .as_array()
        .expect("providers")
        .iter()
        .map(|p| p["provider"].as_str().expect("p"))
        .collect();
    assert_eq!(providers, ["openai", "groq"]);
    assert_eq!(brand["by_bucket"].as_array().map(Vec::len), Some(1));
    app.get("/api/v1/usage?bucket=week", Some(&credential))
        .await
        .assert_error(400, "invalid_request");
    let (scoped, _) = app
        .mint_token(
            &credential,
            json!({ "name": "no-usage", "scopes": ["gate:chat"] }),
        )
        .await;
    app.get("/api/gate/v1/usage", Some(&scoped))
        .await
        .assert_error(403, "insufficient_scope");
}

#[actix_web::test]
async fn a_spent_budget_is_still_refused_after_a_restart() {
    let app = spawn_app().await;
    let (_, token, _) = setup(&app, json!({ "monthly_budget_usd": 0.0001, "rpd": 50 })).await;
    let mut served = 0;
    while app
        .post(
            "/api/gate/v1/chat/completions",
            Some(&token),
            chat_body(PRICED, 20),
        )
        .await
        .status
        == StatusCode::OK
    {
        served += 1;
        assert!(served < 50, "the budget must run out");
    }
    let app = app.restart().await;
    chat(&app, &token, PRICED, 20)
        .await
        .assert_error(402, "budget_exceeded");
    let usage = app.get("/api/gate/v1/usage", Some(&token)).await.body;
    assert_eq!(
        usage["rate_limits"]["remaining_day"].as_u64(),
        Some(50 - served as u64),
        "the daily window survives too"
    );
}

#[actix_web::test]
async fn key_spend_limits_warn_or_block() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    let blocking = app.add_key(&credential, "openai", "sk-openai-blocking", json!({ "is_primary": true, "spend_limit_amount": 0.00001, "spend_limit_period": "daily", "spend_limit_action": "block" })).await;
    let warning = app
        .add_key(
            &credential,
            "openai",
            "sk-openai-warning",
            json!({ "spend_limit_amount": 0.00001, "spend_limit_action": "warn" }),
        )
        .await;
    for _ in 0..6 {
        assert_eq!(chat(&app, &token, PRICED, 10).await.status, StatusCode::OK);
    }
    let blocked = app
        .get(
            &format!("/api/v1/integrations/{blocking}"),
            Some(&credential),
        )
        .await
        .body["integration"]
        .clone();
    let warned = app
        .get(
            &format!("/api/v1/integrations/{warning}"),
            Some(&credential),
        )
        .await
        .body["integration"]
        .clone();
    assert_eq!(blocked["spend_limit_exceeded"], true);
    assert!(blocked["spend_today"].as_f64().expect("spend") >= 0.00001);
    assert_eq!(
        app.fake.calls("sk-openai-blocking"),
        3,
        "blocked once its daily spend reached the limit"
    );
    assert_eq!(
        (
            warned["spend_limit_exceeded"].as_bool(),
            app.fake.calls("sk-openai-warning")
        ),
        (Some(true), 3),
        "warn keeps serving"
    );
}

#[actix_web::test]
async fn a_stream_bills_what_was_generated_even_when_the_client_leaves() {
    let app = spawn_app().await;
    let (credential, token, _) = setup(&app, json!({})).await;
    app.fake.set("sk-openai-accounting", Behaviour::SlowStream);
    let body = json!({ "model": PRICED, "stream": true, "messages": [{ "role": "user", "content": "hi" }] });
    let mut response = app
        .client
        .post(format!("{}/api/gate/v1/chat/completions", app.address))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    for _ in 0..3 {
        response.chunk().await.expect("chunk");
    }
    drop(response);
    let path = format!("/api/v1/traces/{id}");
    eventually(
        "the trace written",
        std::time::Duration::from_secs(5),
        async || {
            app.state.usage.flush().await;
            app.get(&path, Some(&credential)).await.body["id"].is_string()
        },
    )
    .await;
    let trace = app.get(&path, Some(&credential)).await.body;
    assert_eq!(
        (trace["error_code"].as_str(), trace["streamed"].as_bool()),
        (Some("client_disconnected"), Some(true)),
        "{trace}"
    );
    assert!(
        trace["completion_tokens"].as_u64().is_some_and(|t| t >= 3)
            && trace["cost_usd"].as_f64().is_some_and(|c| c > 0.0),
        "{trace}"
    );
    assert!(trace["ttft_ms"].is_u64());
}

#[actix_web::test]
async fn a_keys_daily_count_and_spend_survive_a_restart() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    let key = app
        .add_key(
            &credential,
            "openai",
            "sk-openai-daily-3",
            json!({ "daily_limit": 3 }),
        )
        .await;
    for _ in 0..3 {
        assert_eq!(chat(&app, &token, PRICED, 10).await.status, StatusCode::OK);
    }
    let app = app.restart().await;
    chat(&app, &token, PRICED, 10)
        .await
        .assert_error(503, "no_available_key");
    let view = app
        .get(&format!("/api/v1/integrations/{key}"), Some(&credential))
        .await
        .body["integration"]
        .clone();
    assert_eq!(view["daily_count"], 3);
    assert!(
        view["spend_today"].as_f64().is_some_and(|s| s > 0.0)
            && view["spend_month"] == view["spend_today"],
        "{view}"
    );
}
