//! `GET /metrics`: Prometheus text with what the gateway did, behind `metrics.token` when set.

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::json;
use spidergate::secret::Secret;
use std::collections::HashMap;

const MODEL: &str = "gpt-4o-mini";
const KEY: &str = "sk-openai-metrics-9";

/// The scrape as `series → value` (`name{labels}` exactly as rendered), and the raw text.
async fn scrape(app: &TestApp, bearer: Option<&str>) -> (StatusCode, HashMap<String, f64>, String) {
    let mut request = app.client.get(format!("{}/metrics", app.address));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let response = request.send().await.expect("scrape");
    let status = response.status();
    let text = response.text().await.expect("text");
    let series = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter_map(|(series, value)| Some((series.to_owned(), value.parse().ok()?)))
        .collect();
    (status, series, text)
}

fn value(series: &HashMap<String, f64>, name: &str) -> f64 {
    *series
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {:#?}", series.keys().collect::<Vec<_>>()))
}

#[actix_web::test]
async fn metrics_count_requests_overhead_upstream_time_tokens_spend_and_refusals() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    app.add_key(&credential, "openai", KEY, json!({})).await;
    let (token, key) = app
        .mint_token(&credential, json!({ "name": "agent", "rpm": 2 }))
        .await;
    for _ in 0..2 {
        assert_eq!(app.chat(&token, MODEL).await.status, StatusCode::OK);
    }
    app.chat(&token, MODEL)
        .await
        .assert_error(429, "rate_limit_exceeded");
    app.chat("sk-not-a-token", MODEL)
        .await
        .assert_error(401, "invalid_token_format");

    let (status, series, text) = scrape(&app, None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let route = "route=\"/api/gate/v1/chat/completions\"";
    assert_eq!(
        value(
            &series,
            &format!("spidergate_requests_total{{{route},status=\"200\"}}")
        ),
        2.0
    );
    assert_eq!(
        value(
            &series,
            &format!("spidergate_requests_total{{{route},status=\"429\"}}")
        ),
        1.0
    );
    assert_eq!(
        value(
            &series,
            &format!("spidergate_requests_total{{{route},status=\"401\"}}")
        ),
        1.0
    );
    let served = "gen_ai_provider_name=\"openai\"";
    assert_eq!(
        value(
            &series,
            &format!("spidergate_overhead_seconds_count{{route=\"chat\",{served}}}")
        ),
        2.0
    );
    let upstream = format!(
        "gen_ai_operation_name=\"chat\",{served},gen_ai_request_model=\"{MODEL}\",error_type=\"\""
    );
    assert_eq!(
        value(
            &series,
            &format!("gen_ai_client_operation_duration_seconds_count{{{upstream}}}")
        ),
        2.0
    );
    assert_eq!(
        value(
            &series,
            "spidergate_rate_limited_total{route=\"chat\",error_code=\"rate_limit_exceeded\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &series,
            "spidergate_key_health{provider=\"openai\",state=\"healthy\"}"
        ),
        1.0
    );
    assert_eq!(
        value(&series, "spidergate_active_requests"),
        1.0,
        "the scrape itself"
    );

    // Tokens and spend agree with the ledger's account of the token.
    app.state.usage.flush().await;
    let id = key["id"].as_i64().expect("id");
    let account = app
        .get(&format!("/api/v1/agent-keys/{id}"), Some(&credential))
        .await
        .body;
    let spent = account["spend"]["month_usd"].as_f64().expect("spend");
    let metric_spend = value(
        &series,
        &format!("spidergate_spend_usd_total{{provider=\"openai\",model=\"{MODEL}\"}}"),
    );
    assert!(
        spent > 0.0 && (metric_spend - spent).abs() < 1e-9,
        "{metric_spend} vs {spent}"
    );
    let tokens = |kind: &str| {
        value(
            &series,
            &format!(
                "gen_ai_client_token_usage_count{{gen_ai_token_type=\"{kind}\",{served},gen_ai_request_model=\"{MODEL}\"}}"
            ),
        )
    };
    assert_eq!((tokens("input"), tokens("output")), (2.0, 2.0));
    assert!(
        !text.contains(KEY) && !text.contains(&token) && !text.contains("token_id="),
        "no secret and no per-token series by default"
    );
}

#[actix_web::test]
async fn metrics_can_want_a_token_show_per_token_series_or_be_off() {
    let app = spawn_app_with(|config| {
        config.metrics.token = Secret::new("scrape-secret");
        config.metrics.per_token = true;
    })
    .await;
    let (_, credential) = app.create_brand("Acme").await;
    app.add_key(&credential, "openai", KEY, json!({})).await;
    let (token, key) = app
        .mint_token(&credential, json!({ "name": "agent" }))
        .await;
    assert_eq!(app.chat(&token, MODEL).await.status, StatusCode::OK);

    let (status, _, text) = scrape(&app, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(text.contains("missing_api_key"), "{text}");
    let (status, _, text) = scrape(&app, Some("not-it")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.contains("invalid_api_key"), "{text}");
    let (status, series, _) = scrape(&app, Some("scrape-secret")).await;
    assert_eq!(status, StatusCode::OK);
    let id = key["id"].as_i64().expect("id");
    assert_eq!(
        value(
            &series,
            &format!("spidergate_token_requests_total{{token_id=\"{id}\",status=\"200\"}}")
        ),
        1.0
    );

    let off = spawn_app_with(|config| config.metrics.enabled = false).await;
    let (status, _, text) = scrape(&off, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(text.contains("not_found"), "{text}");
}

#[actix_web::test]
async fn fallbacks_failed_upstream_calls_and_first_tokens_have_their_series() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    app.add_key(
        &credential,
        "openai",
        "sk-openai-broken-7",
        json!({ "is_primary": true }),
    )
    .await;
    app.add_key(&credential, "openai", KEY, json!({})).await;
    let (token, _) = app
        .mint_token(&credential, json!({ "name": "agent" }))
        .await;
    app.fake.set(
        "sk-openai-broken-7",
        crate::fake_provider::Behaviour::ServerError,
    );
    assert_eq!(app.chat(&token, MODEL).await.status, StatusCode::OK);
    let body = json!({ "model": MODEL, "stream": true, "messages": [{ "role": "user", "content": "hi" }] });
    let (status, _, _) = app.chat_stream(&token, body).await;
    assert_eq!(status, StatusCode::OK);

    let (_, series, text) = scrape(&app, None).await;
    assert_eq!(
        value(
            &series,
            "spidergate_fallbacks_total{route=\"chat\",to=\"key\"}"
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(
            &series,
            "spidergate_key_health{provider=\"openai\",state=\"degraded\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &series,
            &format!(
                "gen_ai_server_time_to_first_token_seconds_count{{gen_ai_operation_name=\"chat\",gen_ai_request_model=\"{MODEL}\"}}"
            )
        ),
        1.0
    );
}
