//! Providers that do not speak OpenAI's API, through the adapters: Anthropic Messages and Gemini
//! `generateContent` behind chat completions (plain, streamed, with a tool-call round trip, and
//! a broken stream), the Anthropic front door `/api/gate/v1/messages`, and the catalog's
//! per-provider knobs (param mappings, local servers with their own base URL and no key).

use crate::fake_dialects::{ANTHROPIC_USAGE, CITY, SIGNATURE};
use crate::fake_provider::{Behaviour, Logged};
use crate::helpers::{TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};
use spidergate::catalog::Catalog;
use spidergate::providers::Usage;

const CLAUDE: &str = "anthropic/claude-sonnet-4-5";
const GEMINI: &str = "google_gemini/gemini-2.5-flash";

fn weather_tool() -> Value {
    json!([{ "type": "function", "function": { "name": "get_weather", "description": "Weather for a city",
        "parameters": { "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] } } }])
}

/// The last request the fake received on a path ending with `suffix`.
fn last_to(app: &TestApp, suffix: &str) -> Logged {
    app.fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path.ends_with(suffix) || r.path.contains(suffix))
        .unwrap_or_else(|| panic!("no request to …{suffix}"))
}

/// The data of each SSE event of a stream, in order.
fn events(stream: &str) -> Vec<String> {
    stream
        .split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_owned)
        .collect()
}

/// Content, tool-call arguments and the final usage chunk of an OpenAI stream.
fn assemble(stream: &str) -> (String, String, Option<Value>, Vec<String>) {
    let (mut text, mut arguments, mut usage, mut finishes) =
        (String::new(), String::new(), None, vec![]);
    for data in events(stream) {
        if data == "[DONE]" {
            continue;
        }
        let chunk: Value =
            serde_json::from_str(&data).unwrap_or_else(|_| panic!("not JSON: {data}"));
        if !chunk["usage"].is_null() {
            usage = Some(chunk["usage"].clone());
        }
        let choice = &chunk["choices"][0];
        text.push_str(choice["delta"]["content"].as_str().unwrap_or_default());
        for call in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            arguments.push_str(call["function"]["arguments"].as_str().unwrap_or_default());
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            finishes.push(finish.to_owned());
        }
    }
    (text, arguments, usage, finishes)
}

#[actix_web::test]
async fn claude_serves_chat_completions_with_a_tool_call_round_trip_billed_at_cache_prices() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "anthropic", "sk-ant-round-trip", json!({}))
        .await;
    let first = app
        .post(
            "/api/gate/v1/chat/completions",
            Some(&token),
            json!({
            "model": CLAUDE, "tools": weather_tool(), "tool_choice": "auto",
            "messages": [{ "role": "system", "content": "Answer briefly." },
                { "role": "user", "content": "Weather in Paris?" }] }),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let choice = &first.body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{}", first.body);
    let call = &choice["message"]["tool_calls"][0];
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().expect("arguments"))
            .expect("JSON arguments");
    assert_eq!(
        (
            call["function"]["name"].as_str(),
            arguments["city"].as_str()
        ),
        (Some("get_weather"), Some(CITY))
    );
    assert_eq!(first.body["model"], CLAUDE);

    // What Anthropic was sent: its own auth, version, system prompt and tool shape.
    let sent = last_to(&app, "/anthropic/v1/messages");
    assert_eq!(
        sent.headers.get("x-api-key").map(String::as_str),
        Some("sk-ant-round-trip")
    );
    assert!(!sent.header_names.contains(&"authorization".to_owned()));
    assert_eq!(
        sent.headers.get("anthropic-version").map(String::as_str),
        Some("2023-06-01")
    );
    assert_eq!(sent.body["system"][0]["text"], "Answer briefly.");
    assert_eq!(sent.body["model"], "claude-sonnet-4-5");
    assert!(
        sent.body["max_tokens"].as_u64().is_some_and(|n| n > 0),
        "max_tokens is required by Anthropic"
    );
    assert_eq!(
        sent.body["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );

    // The tool's result goes back; Claude answers in text.
    let mut messages = vec![
        json!({ "role": "user", "content": "Weather in Paris?" }),
        choice["message"].clone(),
        json!({ "role": "tool", "tool_call_id": call["id"], "content": "sunny, 21°C" }),
    ];
    let second = app
        .post(
            "/api/gate/v1/chat/completions",
            Some(&token),
            json!({ "model": CLAUDE, "tools": weather_tool(), "messages": messages.clone() }),
        )
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        second.body["choices"][0]["message"]["content"],
        "hello from sk-ant-round-trip"
    );
    let sent = last_to(&app, "/anthropic/v1/messages");
    let turns = sent.body["messages"].as_array().expect("turns");
    let tool_use = turns[1]["content"]
        .as_array()
        .expect("blocks")
        .iter()
        .find(|b| b["type"] == "tool_use")
        .expect("the tool use goes back");
    assert_eq!(tool_use["input"]["city"], CITY);
    assert_eq!(
        turns[2]["content"][0],
        json!({ "type": "tool_result", "tool_use_id": call["id"], "content": "sunny, 21°C" })
    );

    // Usage: cache reads and writes are part of the prompt, and priced at the cache prices.
    let (fresh, read, written, output) = ANTHROPIC_USAGE;
    let usage = &second.body["usage"];
    assert_eq!(
        usage["prompt_tokens"].as_u64(),
        Some(fresh + read + written)
    );
    assert_eq!(
        usage["prompt_tokens_details"]["cached_tokens"].as_u64(),
        Some(read)
    );
    let catalog = Catalog::load(&Default::default()).expect("catalog");
    let model = catalog.model(CLAUDE).expect("claude");
    let expected = model.bill(&Usage {
        prompt_tokens: fresh + read + written,
        completion_tokens: output,
        cache_read_tokens: read,
        cache_write_tokens: written,
    });
    let billed = second.body["spidergate_metadata"]["cost_usd"]
        .as_f64()
        .expect("cost");
    assert!(
        (billed - expected.as_usd()).abs() < 1e-9,
        "billed {billed}, expected {}",
        expected.as_usd()
    );
    assert!(
        expected < model.cost(fresh + read + written, output),
        "cache reads are cheaper than fresh input"
    );
    messages.clear();

    // The trace keeps the cache counts beside the prompt they are part of.
    app.state.usage.flush().await;
    let traces = app
        .get("/api/v1/traces?limit=1", Some(&credential))
        .await
        .body;
    let trace = &traces["data"][0];
    let counts = (
        trace["prompt_tokens"].as_u64(),
        trace["cache_read_tokens"].as_u64(),
        trace["cache_write_tokens"].as_u64(),
    );
    assert_eq!(
        counts,
        (Some(fresh + read + written), Some(read), Some(written)),
        "{trace}"
    );
    assert!((trace["cost_usd"].as_f64().expect("cost") - expected.as_usd()).abs() < 1e-9);
}

#[actix_web::test]
async fn claude_streams_text_and_tool_call_deltas_as_openai_chunks() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "anthropic", "sk-ant-streamer", json!({}))
        .await;
    let (status, headers, body) = app
        .chat_stream(
            &token,
            json!({ "model": CLAUDE, "stream": true, "tools": weather_tool(),
            "stream_options": { "include_usage": true },
            "messages": [{ "role": "user", "content": "Weather in Paris?" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["content-type"], "text/event-stream");
    let (text, arguments, usage, finishes) = assemble(&body);
    assert_eq!(text, "hello from sk-ant-streamer");
    let arguments: Value =
        serde_json::from_str(&arguments).expect("the argument deltas join into JSON");
    assert_eq!(arguments["city"], CITY);
    assert_eq!(finishes, ["tool_calls"]);
    let (fresh, read, written, output) = ANTHROPIC_USAGE;
    let usage = usage.expect("the usage chunk asked for");
    assert_eq!(
        (
            usage["prompt_tokens"].as_u64(),
            usage["completion_tokens"].as_u64()
        ),
        (Some(fresh + read + written), Some(output))
    );
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    assert_eq!(last_to(&app, "/anthropic/v1/messages").body["stream"], true);
}

#[actix_web::test]
async fn a_native_stream_cut_short_ends_with_one_error_event_for_either_dialect() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    for (provider, model, key) in [
        ("anthropic", CLAUDE, "sk-ant-dies"),
        ("google_gemini", GEMINI, "AIza-dies"),
    ] {
        app.add_key(&credential, provider, key, json!({})).await;
        app.fake.set(key, Behaviour::DieMidStream);
        let (status, _, body) = app
            .chat_stream(&token, json!({ "model": model, "stream": true, "messages": [{ "role": "user", "content": "hi" }] }))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let data = events(&body);
        let last: Value = serde_json::from_str(data.last().expect("events")).expect("JSON");
        assert_eq!(
            last["error"]["code"], "upstream_error",
            "{provider}: {body}"
        );
        assert!(
            !body.contains("[DONE]"),
            "{provider}: a cut stream is not completed"
        );
        assert_eq!(
            data.iter().filter(|d| d.contains("\"error\"")).count(),
            1,
            "{body}"
        );
    }
}

#[actix_web::test]
async fn gemini_round_trips_a_tool_call_with_its_thought_signature() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "google_gemini", "AIza-round-trip", json!({}))
        .await;
    let first = app
        .post("/api/gate/v1/chat/completions", Some(&token), json!({
            "model": GEMINI, "tools": weather_tool(), "max_tokens": 256,
            "messages": [{ "role": "system", "content": "Be terse." }, { "role": "user", "content": "Weather in Paris?" }] }))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let message = &first.body["choices"][0]["message"];
    let call = &message["tool_calls"][0];
    assert_eq!(first.body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        call["extra_content"]["google"]["thought_signature"],
        SIGNATURE
    );
    assert!(
        call["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("call_"))
    );
    let sent = last_to(&app, ":generateContent");
    assert_eq!(
        sent.path,
        "/google_gemini/v1/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        sent.headers.get("x-goog-api-key").map(String::as_str),
        Some("AIza-round-trip")
    );
    assert_eq!(
        sent.body["systemInstruction"]["parts"][0]["text"],
        "Be terse."
    );
    assert_eq!(sent.body["generationConfig"]["maxOutputTokens"], 256);
    assert_eq!(
        sent.body["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );
    // Thinking tokens are billed as output.
    assert_eq!(first.body["usage"]["completion_tokens"], 8);

    let second = app
        .post("/api/gate/v1/chat/completions", Some(&token), json!({ "model": GEMINI, "tools": weather_tool(),
            "messages": [{ "role": "user", "content": "Weather in Paris?" }, message.clone(),
                { "role": "tool", "tool_call_id": call["id"], "content": "{\"sky\":\"clear\"}" }] }))
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(
        second.body["choices"][0]["message"]["content"],
        "hello from AIza-round-trip"
    );
    let sent = last_to(&app, ":generateContent");
    let contents = sent.body["contents"].as_array().expect("contents");
    assert_eq!(contents[1]["role"], "model");
    assert_eq!(
        contents[1]["parts"][0]["thoughtSignature"], SIGNATURE,
        "the signature goes back"
    );
    assert_eq!(
        contents[2]["parts"][0]["functionResponse"],
        json!({ "name": "get_weather", "response": { "sky": "clear" } })
    );
}

#[actix_web::test]
async fn gemini_streams_as_openai_chunks_closed_with_usage() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "google_gemini", "AIza-streamer", json!({}))
        .await;
    let (status, _, body) = app
        .chat_stream(
            &token,
            json!({ "model": GEMINI, "stream": true, "stream_options": { "include_usage": true },
            "messages": [{ "role": "user", "content": "hi" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (text, _, usage, finishes) = assemble(&body);
    assert_eq!(text, "hello from AIza-streamer!");
    assert_eq!(finishes, ["stop"]);
    assert_eq!(usage.expect("usage")["prompt_tokens"], 12);
    assert!(body.trim_end().ends_with("data: [DONE]"));
    let sent = last_to(&app, ":streamGenerateContent");
    assert_eq!(sent.query, "alt=sse");
}

#[actix_web::test]
async fn a_failing_claude_key_falls_back_to_the_next_key_and_a_refused_request_does_not() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(
        &credential,
        "anthropic",
        "sk-ant-broken-1",
        json!({ "is_primary": true }),
    )
    .await;
    app.add_key(&credential, "anthropic", "sk-ant-healthy-2", json!({}))
        .await;
    app.fake.set("sk-ant-broken-1", Behaviour::ServerError);
    let reply = app.chat(&token, CLAUDE).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body["choices"][0]["message"]["content"],
        "hello from sk-ant-healthy-2"
    );
    assert_eq!(app.fake.calls("sk-ant-broken-1"), 1);

    // A conversation Anthropic cannot carry is refused before any call.
    let before = app.fake.requests().len();
    let refused = app
        .post("/api/gate/v1/chat/completions", Some(&token), json!({ "model": CLAUDE,
            "messages": [{ "role": "user", "content": [{ "type": "input_audio", "input_audio": { "data": "AA", "format": "wav" } }] }] }))
        .await;
    refused.assert_error(400, "invalid_request");
    assert!(
        refused.message().contains("input_audio"),
        "{}",
        refused.body
    );
    assert_eq!(app.fake.requests().len(), before);
}

/// `POST /api/gate/v1/messages` with the Anthropic SDK's headers.
async fn messages(
    app: &TestApp,
    token: &str,
    body: Value,
    beta: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}/api/gate/v1/messages", app.address))
        .header("x-api-key", token)
        .header("anthropic-version", "2023-06-01")
        .json(&body);
    if let Some(beta) = beta {
        request = request.header("anthropic-beta", beta);
    }
    request.send().await.expect("request")
}

#[actix_web::test]
async fn messages_pass_through_to_anthropic_with_the_clients_headers() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "anthropic", "sk-ant-native", json!({}))
        .await;
    let body = json!({ "model": CLAUDE, "max_tokens": 300, "system": [{ "type": "text", "text": "cached", "cache_control": { "type": "ephemeral" } }],
        "messages": [{ "role": "user", "content": "hi" }], "top_k": 5 });
    let response = messages(&app, &token, body, Some("prompt-caching-2024-07-31")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let message: Value = response.json().await.expect("json");
    assert_eq!(
        (message["type"].as_str(), message["model"].as_str()),
        (Some("message"), Some(CLAUDE))
    );
    assert_eq!(message["content"][0]["text"], "hello from sk-ant-native");
    assert_eq!(
        message["usage"]["cache_read_input_tokens"],
        ANTHROPIC_USAGE.1
    );
    let sent = last_to(&app, "/anthropic/v1/messages");
    assert_eq!(
        sent.headers.get("anthropic-beta").map(String::as_str),
        Some("prompt-caching-2024-07-31")
    );
    assert_eq!(
        sent.headers.get("x-api-key").map(String::as_str),
        Some("sk-ant-native")
    );
    // Passed through: fields the gateway does not know, the client's cache markers, its limit.
    assert_eq!(
        (
            sent.body["top_k"].as_u64(),
            sent.body["max_tokens"].as_u64()
        ),
        (Some(5), Some(300))
    );
    assert_eq!(sent.body["system"][0]["cache_control"]["type"], "ephemeral");
    assert_eq!(sent.body["model"], "claude-sonnet-4-5");

    // Claude Code's names for Anthropic's models (bare, or dated) resolve to the catalog's.
    let response = messages(
        &app,
        &token,
        json!({ "model": "claude-sonnet-4-5-20250929", "max_tokens": 20,
        "messages": [{ "role": "user", "content": "hi" }] }),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let message: Value = response.json().await.expect("json");
    assert_eq!(message["model"], CLAUDE);

    // Streamed, the upstream's events are forwarded as they came.
    let response = messages(
        &app,
        &token,
        json!({ "model": CLAUDE, "max_tokens": 50, "stream": true,
        "messages": [{ "role": "user", "content": "hi" }] }),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("stream");
    assert!(text.starts_with("event: message_start"), "{text}");
    assert!(
        text.contains("event: ping")
            && text
                .trim_end()
                .ends_with("data: {\"type\":\"message_stop\"}"),
        "{text}"
    );
}

#[actix_web::test]
async fn messages_to_another_dialect_are_translated_both_ways_with_tools_streamed_or_not() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(
        &credential,
        "openai",
        "sk-openai-for-claude-code",
        json!({}),
    )
    .await;
    let tools = json!([{ "name": "get_weather", "description": "Weather", "input_schema": { "type": "object", "properties": { "city": { "type": "string" } } } }]);
    let body = json!({ "model": "gpt-4o-mini", "max_tokens": 64, "system": "be brief", "tools": tools,
        "tool_choice": { "type": "any" },
        "messages": [
            { "role": "user", "content": "Weather?" },
            { "role": "assistant", "content": [{ "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": { "city": CITY } }] },
            { "role": "user", "content": [{ "type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny" }] }] });
    let response = messages(&app, &token, body.clone(), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let message: Value = response.json().await.expect("json");
    assert_eq!(
        message["content"][0],
        json!({ "type": "text", "text": "hello from sk-openai-for-claude-code" })
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(
        (
            message["usage"]["input_tokens"].as_u64(),
            message["usage"]["output_tokens"].as_u64()
        ),
        (Some(10), Some(5))
    );
    let sent = last_to(&app, "/openai/v1/chat/completions");
    let chat = sent.body["messages"].as_array().expect("messages");
    assert_eq!(chat[0], json!({ "role": "system", "content": "be brief" }));
    assert_eq!(chat[2]["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(
        chat[3],
        json!({ "role": "tool", "tool_call_id": "toolu_1", "content": "sunny" })
    );
    assert_eq!(sent.body["tool_choice"], "required");
    assert_eq!(
        sent.body["tools"][0]["function"]["parameters"]["properties"]["city"]["type"],
        "string"
    );

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let response = messages(&app, &token, streamed, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("stream");
    let kinds: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("event: ")?.lines().next())
        .collect();
    assert_eq!(kinds.first(), Some(&"message_start"), "{text}");
    assert_eq!(
        &kinds[kinds.len() - 2..],
        ["message_delta", "message_stop"],
        "{text}"
    );
    let deltas: String = events(&text)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|e| e["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(deltas, "hello from sk-openai-for-claude-code");
    assert!(
        text.contains("\"output_tokens\":3"),
        "the usage chunk reaches message_delta: {text}"
    );
}

#[actix_web::test]
async fn messages_errors_take_anthropics_shape_with_the_gateways_status() {
    let app = spawn_app().await;
    let (_, token) = app.brand_with_token().await;
    let no_key = app
        .client
        .post(format!("{}/api/gate/v1/messages", app.address))
        .json(&json!({ "model": CLAUDE, "max_tokens": 5, "messages": [{ "role": "user", "content": "hi" }] }))
        .send()
        .await
        .expect("request");
    assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);
    let body: Value = no_key.json().await.expect("json");
    assert_eq!(
        (body["type"].as_str(), body["error"]["type"].as_str()),
        (Some("error"), Some("authentication_error"))
    );

    let missing = messages(
        &app,
        &token,
        json!({ "model": CLAUDE, "messages": [{ "role": "user", "content": "hi" }] }),
        None,
    )
    .await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_tokens")),
        "{body}"
    );

    // No key for the model: 503 with a whole-second retry-after, as Anthropic's overloaded.
    let unavailable = messages(&app, &token, json!({ "model": CLAUDE, "max_tokens": 5, "messages": [{ "role": "user", "content": "hi" }] }), None).await;
    assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry = unavailable.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(retry.parse::<u64>().is_ok(), "{retry}");
    let body: Value = unavailable.json().await.expect("json");
    assert_eq!(body["error"]["type"], "overloaded_error");
}

#[actix_web::test]
async fn param_mappings_rename_fields_and_local_servers_use_their_own_url_without_a_key() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "deepseek", "sk-deepseek-mapped", json!({}))
        .await;
    let deepseek = Catalog::load(&Default::default())
        .expect("catalog")
        .models()
        .iter()
        .find(|m| m.provider == "deepseek")
        .expect("a deepseek model")
        .id
        .clone();
    let reply = app
        .post(
            "/api/gate/v1/chat/completions",
            Some(&token),
            json!({ "model": deepseek, "max_completion_tokens": 77,
            "messages": [{ "role": "user", "content": "hi" }] }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let sent = last_to(&app, "/deepseek/v1/chat/completions");
    assert_eq!(sent.body["max_tokens"], 77);
    assert!(
        sent.body.get("max_completion_tokens").is_none(),
        "{}",
        sent.body
    );

    // A local server: the key's own base URL, and no key at all.
    let own_url = format!("{}/my-ollama/v1", app.fake.url);
    let reply = app
        .post(
            "/api/v1/integrations",
            Some(&credential),
            json!({ "provider_name": "ollama", "credentials": { "base_url": own_url } }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let ollama = Catalog::load(&Default::default())
        .expect("catalog")
        .models()
        .iter()
        .find(|m| m.provider == "ollama")
        .expect("an ollama model")
        .id
        .clone();
    let reply = app.chat(&token, &ollama).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let sent = last_to(&app, "/my-ollama/v1/chat/completions");
    assert!(
        !sent.header_names.contains(&"authorization".to_owned()),
        "no key, no auth header"
    );

    // A metadata address is refused when the key is saved.
    let refused = app
        .post("/api/v1/integrations", Some(&credential), json!({ "provider_name": "vllm", "credentials": { "base_url": "http://169.254.169.254/v1" } }))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(
        refused.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("metadata")),
        "{}",
        refused.body
    );
}

#[actix_web::test]
async fn embeddings_route_to_any_openai_dialect_provider_with_the_capability() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "mistral", "mistral-embedder-key", json!({}))
        .await;
    let reply = app
        .post(
            "/api/gate/v1/embeddings",
            Some(&token),
            json!({ "model": "mistral/mistral-embed", "input": "hello" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["model"], "mistral/mistral-embed");
    let sent = last_to(&app, "/mistral/v1/embeddings");
    assert_eq!(sent.body["model"], "mistral-embed");
    // No Mistral key: "no usable key", not OpenAI's code.
    let (_, other) = app.brand_with_token().await;
    app.post(
        "/api/gate/v1/embeddings",
        Some(&other),
        json!({ "model": "mistral/mistral-embed", "input": "x" }),
    )
    .await
    .assert_error(503, "no_available_key");
}

#[actix_web::test]
async fn custom_providers_serve_their_listed_and_discovered_models_like_built_ins() {
    use spidergate::config::{CustomModel, CustomModelSpec, CustomProvider};
    let app = crate::helpers::spawn_app_with(|config| {
        // Every built-in points at the fake; the custom provider does too, under its own path.
        let fake = config.providers["openai"]
            .base_url
            .clone()
            .expect("fake URL");
        let fake = fake.trim_end_matches("/openai/v1").to_owned();
        config.custom_providers.insert(
            "team_vllm".into(),
            CustomProvider {
                api: Default::default(),
                base_url: format!("{fake}/team_vllm/v1"),
                label: Some("Team vLLM".into()),
                auth: None,
                headers: [("x-team".to_owned(), "ml".to_owned())].into(),
                query: Default::default(),
                param_mappings: Default::default(),
                models: vec![
                    CustomModel::Name("llama-local".into()),
                    CustomModel::Spec(CustomModelSpec {
                        name: "priced".into(),
                        display_name: None,
                        context_window: Some(8192),
                        max_output_tokens: Some(512),
                        capabilities: None,
                        input_per_mtok: 1.0,
                        output_per_mtok: 2.0,
                    }),
                ],
                discover_models: true,
                discovery_key: spidergate::secret::Secret::new("discovery-key"),
            },
        );
    })
    .await;
    let listed = last_to(&app, "/team_vllm/v1/models");
    assert_eq!(
        listed.headers.get("authorization").map(String::as_str),
        Some("Bearer discovery-key")
    );

    let providers = app.get("/api/gate/v1/providers", None).await.body;
    let custom = providers["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|p| p["id"] == "team_vllm")
        .expect("the custom provider is listed")
        .clone();
    assert_eq!(
        (custom["label"].as_str(), custom["category"].as_str()),
        (Some("Team vLLM"), Some("custom"))
    );
    let models = app.get("/api/gate/v1/models?limit=500", None).await.body;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    for id in [
        "team_vllm/llama-local",
        "team_vllm/priced",
        "team_vllm/fake-model",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }

    // A key without an api_key (the server takes none), then a call to a discovered model.
    let (credential, token) = app.brand_with_token().await;
    let reply = app
        .post(
            "/api/v1/integrations",
            Some(&credential),
            json!({ "provider_name": "team_vllm", "credentials": {} }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = app.chat(&token, "team_vllm/fake-model").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let sent = last_to(&app, "/team_vllm/v1/chat/completions");
    assert_eq!(sent.body["model"], "fake-model");
    assert_eq!(sent.headers.get("x-team").map(String::as_str), Some("ml"));
    assert!(!sent.header_names.contains(&"authorization".to_owned()));
    // The priced model bills at the operator's prices (the fake reports 10 prompt, 5 completion).
    let reply = app.chat(&token, "team_vllm/priced").await;
    let cost = reply.body["spidergate_metadata"]["cost_usd"]
        .as_f64()
        .expect("cost");
    assert!(
        (cost - (10.0 * 1.0 + 5.0 * 2.0) / 1e6).abs() < 1e-12,
        "{cost}"
    );
}

#[actix_web::test]
async fn count_tokens_estimates_without_calling_a_provider_and_names_unknown_models() {
    let app = spawn_app().await;
    let (_, token) = app.brand_with_token().await;
    let count = |text: String| {
        let app = &app;
        let token = token.clone();
        async move {
            let response = app
                .client
                .post(format!("{}/api/gate/v1/messages/count_tokens", app.address))
                .header("x-api-key", token)
                .json(&json!({ "model": "claude-sonnet-4-5", "messages": [{ "role": "user", "content": text }] }))
                .send()
                .await
                .expect("request");
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.expect("json")["input_tokens"]
                .as_u64()
                .expect("count")
        }
    };
    let short = count("hi".into()).await;
    let long = count("word ".repeat(400)).await;
    assert!(short > 0 && long >= short + 450, "{short} then {long}");
    assert!(app.fake.requests().is_empty(), "no provider is asked");
    let unknown = app
        .client
        .post(format!("{}/api/gate/v1/messages/count_tokens", app.address))
        .header("x-api-key", &token)
        .json(
            &json!({ "model": "no-such-model", "messages": [{ "role": "user", "content": "x" }] }),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body: Value = unknown.json().await.expect("json");
    assert_eq!(body["error"]["type"], "not_found_error");
}
