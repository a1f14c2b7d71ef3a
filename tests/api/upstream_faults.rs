//! Upstream answers that are not answers: a 200 carrying an error, a 200 without `choices`, a
//! stream of non-JSON lines, a body that never ends. Each is a failed attempt of that key: the
//! next key serves, the key's health counts it, and when nothing serves the trace is an error.

use crate::fake_provider::Behaviour;
use crate::helpers::{TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const MODEL: &str = "groq/llama-3.1-8b-instant";
const BROKEN: &str = "gsk_not_an_answer_01";
const WORKING: &str = "gsk_answers_well_01";

/// A brand whose primary Groq key misbehaves as `behaviour` and whose second key works.
async fn broken_then_working(app: &TestApp, behaviour: Behaviour) -> (String, String, i64) {
    let (credential, token) = app.brand_with_token().await;
    let broken = app
        .add_key(&credential, "groq", BROKEN, json!({ "is_primary": true }))
        .await;
    app.add_key(&credential, "groq", WORKING, json!({})).await;
    app.fake.set(BROKEN, behaviour);
    (credential, token, broken)
}

async fn failures_of(app: &TestApp, credential: &str, id: i64) -> Option<u64> {
    app.get(&format!("/api/v1/integrations/{id}"), Some(credential))
        .await
        .body["integration"]["consecutive_failures"]
        .as_u64()
}

async fn last_trace(app: &TestApp, credential: &str) -> Value {
    app.state.usage.flush().await;
    app.get("/api/v1/traces?limit=1", Some(credential))
        .await
        .body["data"][0]
        .clone()
}

#[actix_web::test]
async fn a_200_with_an_error_or_without_choices_falls_back_and_counts_against_the_key() {
    for behaviour in [Behaviour::ErrorIn200, Behaviour::NoChoices] {
        let app = spawn_app().await;
        let (credential, token, broken) = broken_then_working(&app, behaviour.clone()).await;
        let reply = app.chat(&token, MODEL).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{behaviour:?}: {}",
            reply.body
        );
        assert_eq!(
            reply.body["choices"][0]["message"]["content"],
            format!("hello from {WORKING}"),
            "{behaviour:?}"
        );
        assert_eq!(app.fake.calls(BROKEN), 1, "{behaviour:?}");
        assert_eq!(
            failures_of(&app, &credential, broken).await,
            Some(1),
            "{behaviour:?}"
        );
        let trace = last_trace(&app, &credential).await;
        assert_eq!(
            trace["attempts"][0]["status"], "error",
            "{behaviour:?}: {trace}"
        );
    }
}

#[actix_web::test]
async fn when_only_a_key_that_answers_with_an_error_remains_the_request_fails_and_is_traced_so() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "groq", BROKEN, json!({})).await;
    app.fake.set(BROKEN, Behaviour::ErrorIn200);
    let reply = app.chat(&token, MODEL).await;
    reply.assert_error(502, "upstream_error");
    assert!(reply.message().contains("overloaded"), "{}", reply.body);
    let trace = last_trace(&app, &credential).await;
    assert_eq!(
        (trace["status"].as_str(), trace["error_code"].as_str()),
        (Some("error"), Some("upstream_error")),
        "{trace}"
    );
}

#[actix_web::test]
async fn a_stream_of_non_json_lines_falls_back_before_anything_is_relayed() {
    let app = spawn_app().await;
    let (credential, token, broken) = broken_then_working(&app, Behaviour::GarbageStream).await;
    let body =
        json!({ "model": MODEL, "stream": true, "messages": [{ "role": "user", "content": "x" }] });
    let (status, _, text) = app.chat_stream(&token, body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains(WORKING) && !text.contains("<html>"),
        "served by the working key only: {text}"
    );
    assert_eq!(failures_of(&app, &credential, broken).await, Some(1));
    let trace = last_trace(&app, &credential).await;
    assert_eq!(trace["status"], "success", "{trace}");
}

#[actix_web::test]
async fn an_embeddings_body_that_never_ends_times_out_and_falls_back() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(
        &credential,
        "openai",
        "sk-endless-body-01",
        json!({ "is_primary": true }),
    )
    .await;
    app.add_key(&credential, "openai", "sk-whole-body-01", json!({}))
        .await;
    app.fake.set("sk-endless-body-01", Behaviour::EndlessBody);
    let embed = json!({ "model": "text-embedding-3-small", "input": "hello" });
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        app.post("/api/gate/v1/embeddings", Some(&token), embed.clone()),
    )
    .await
    .expect("the body read is bounded by upstream.timeout_secs");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        app.fake.calls("sk-whole-body-01"),
        1,
        "the second key served"
    );

    app.fake.set("sk-whole-body-01", Behaviour::ErrorIn200);
    let reply = app
        .post("/api/gate/v1/embeddings", Some(&token), embed)
        .await;
    assert!(
        reply.status == StatusCode::BAD_GATEWAY || reply.status == StatusCode::GATEWAY_TIMEOUT,
        "nothing served: {}",
        reply.body
    );
    assert_eq!(last_trace(&app, &credential).await["status"], "error");
}
