//! Streaming chat completions: SSE parsed exactly as the OpenAI SDK does, usage handling,
//! fallback before the first byte only, mid-stream failure, and client disconnect.

use crate::fake_provider::Behaviour;
use crate::helpers::{eventually, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

const MODEL: &str = "groq/llama-3.1-8b-instant";

/// Parses an SSE body the way the `openai` SDK does: events split on blank lines, `data:` lines
/// joined, `[DONE]` ends the stream, each other payload is a JSON chunk.
fn parse_sse(text: &str) -> (Vec<Value>, bool) {
    let mut chunks = Vec::new();
    for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim_start)
            .collect();
        let data = data.join("\n");
        if data == "[DONE]" {
            return (chunks, true);
        }
        chunks.push(
            serde_json::from_str(&data)
                .unwrap_or_else(|e| panic!("chunk is not JSON ({e}): {data}")),
        );
    }
    (chunks, false)
}

fn content(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn stream_body(include_usage: bool) -> Value {
    let mut body = json!({ "model": MODEL, "stream": true, "messages": [{ "role": "user", "content": "hi" }] });
    if include_usage {
        body["stream_options"] = json!({ "include_usage": true });
    }
    body
}

#[actix_web::test]
async fn a_stream_relays_every_chunk_and_hides_usage_unless_asked() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "groq", "gsk_streamer_001", json!({}))
        .await;

    let (status, headers, text) = app.chat_stream(&token, stream_body(false)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/event-stream");
    let (chunks, done) = parse_sse(&text);
    assert!(done, "ends with [DONE]: {text}");
    assert_eq!(content(&chunks), "hello from gsk_streamer_001");
    assert!(
        chunks
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null)),
        "usage chunk stripped: {text}"
    );
    assert_eq!(
        app.fake.requests()[0].body["stream_options"]["include_usage"],
        true,
        "the gateway always asks upstream for usage"
    );

    let (_, _, text) = app.chat_stream(&token, stream_body(true)).await;
    let (chunks, done) = parse_sse(&text);
    assert!(done);
    let usage = chunks
        .iter()
        .find(|c| c["usage"].is_object())
        .expect("usage chunk forwarded when asked");
    assert_eq!(
        (
            usage["usage"]["prompt_tokens"].as_u64(),
            usage["usage"]["completion_tokens"].as_u64()
        ),
        (Some(10), Some(3))
    );
}

#[actix_web::test]
async fn a_stream_falls_back_before_its_first_byte() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(
        &credential,
        "groq",
        "gsk_fails_first",
        json!({ "is_primary": true }),
    )
    .await;
    app.add_key(
        &credential,
        "groq",
        "gsk_hangs_second",
        json!({ "is_primary": true }),
    )
    .await;
    app.add_key(&credential, "groq", "gsk_serves_third", json!({}))
        .await;
    app.fake.set("gsk_fails_first", Behaviour::ServerError);
    app.fake.set("gsk_hangs_second", Behaviour::Hang);
    let (status, _, text) = app.chat_stream(&token, stream_body(false)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(content(&parse_sse(&text).0), "hello from gsk_serves_third");
    assert_eq!(
        (
            app.fake.calls("gsk_fails_first"),
            app.fake.calls("gsk_hangs_second")
        ),
        (1, 1)
    );
}

#[actix_web::test]
async fn a_failure_mid_stream_ends_with_an_error_event_and_no_fallback() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(
        &credential,
        "groq",
        "gsk_dies_midway",
        json!({ "is_primary": true }),
    )
    .await;
    app.add_key(&credential, "groq", "gsk_never_used_1", json!({}))
        .await;
    app.fake.set("gsk_dies_midway", Behaviour::DieMidStream);
    let (status, _, text) = app.chat_stream(&token, stream_body(false)).await;
    assert_eq!(status, StatusCode::OK);
    let (chunks, done) = parse_sse(&text);
    assert!(!done, "no [DONE] after a failure: {text}");
    assert_eq!(content(&chunks), "partial");
    let last = chunks.last().expect("error event");
    assert_eq!(last["error"]["code"], "upstream_error", "{text}");
    assert_eq!(
        app.fake.calls("gsk_never_used_1"),
        0,
        "no fallback once bytes were sent"
    );
}

#[actix_web::test]
async fn a_stream_with_no_key_is_a_plain_json_error() {
    let app = spawn_app().await;
    let (_, token) = app.brand_with_token().await;
    let (status, _, text) = app.chat_stream(&token, stream_body(false)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = serde_json::from_str(&text).expect("JSON error");
    assert_eq!(body["error"]["code"], "no_available_key");
}

#[actix_web::test]
async fn a_client_that_disconnects_cancels_the_upstream_call() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "groq", "gsk_slow_stream_1", json!({}))
        .await;
    app.fake.set("gsk_slow_stream_1", Behaviour::SlowStream);
    let mut response = app
        .client
        .post(format!("{}/api/gate/v1/chat/completions", app.address))
        .bearer_auth(&token)
        .json(&stream_body(false))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    response
        .chunk()
        .await
        .expect("first chunk")
        .expect("some bytes");
    drop(response);
    eventually(
        "the upstream stream dropped after the client left",
        std::time::Duration::from_secs(5),
        async || app.fake.slow_stream_dropped_after().is_some(),
    )
    .await;
    let sent = app.fake.slow_stream_dropped_after().unwrap_or_default();
    assert!(
        sent < 100,
        "upstream stopped early, after {sent} of 500 chunks"
    );
}
