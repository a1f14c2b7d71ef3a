//! The fake provider's Anthropic Messages and Gemini `generateContent` dialects, in the wire
//! shapes of the providers' public API references: JSON answers, named SSE events (Anthropic),
//! `alt=sse` partial answers (Gemini), a tool call when the request offers tools and the
//! conversation holds no tool result yet, and a stream cut short.

use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use std::time::Duration;

/// The city every fake tool call asks about.
pub const CITY: &str = "Paris";
/// The thought signature the fake Gemini puts on its function calls.
pub const SIGNATURE: &str = "c2lnbmVkLWJ5LWdlbWluaQ==";

/// Usage the fake Anthropic reports: fresh, cache-read and cache-written prompt tokens, output.
pub const ANTHROPIC_USAGE: (u64, u64, u64, u64) = (10, 40, 6, 5);

fn sse(events: Vec<String>, cut_short: bool) -> HttpResponse {
    let count = events.len();
    let keep = if cut_short { 3.min(count) } else { count };
    let items = events
        .into_iter()
        .take(keep)
        .map(Some)
        .chain(cut_short.then_some(None));
    let chunks = stream::iter(items).then(|event| async move {
        // Paced, so a cut comes after the events before it left the socket.
        tokio::time::sleep(Duration::from_millis(5)).await;
        event
            .map(Bytes::from)
            .ok_or_else(|| actix_web::error::ErrorInternalServerError("connection lost"))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(chunks)
}

/// Whether the request offers tools and the conversation has not answered one yet.
fn wants_tool(tools: &Value, conversation: &str, answered: &str) -> bool {
    tools.as_array().is_some_and(|t| !t.is_empty()) && !conversation.contains(answered)
}

/// `POST …/messages`.
pub fn anthropic(api_key: &str, body: &Value, cut_short: bool) -> HttpResponse {
    let (input, read, written, output) = ANTHROPIC_USAGE;
    let usage = json!({ "input_tokens": input, "output_tokens": output,
        "cache_read_input_tokens": read, "cache_creation_input_tokens": written });
    let tool =
        wants_tool(&body["tools"], &body["messages"].to_string(), "tool_result").then(|| {
            body["tools"][0]["name"]
                .as_str()
                .unwrap_or("tool")
                .to_owned()
        });
    let text = format!("hello from {api_key}");
    if body["stream"] != true {
        let content = match &tool {
            Some(name) => json!([{ "type": "text", "text": "Let me check." },
                { "type": "tool_use", "id": "toolu_fake_1", "name": name, "input": { "city": CITY } }]),
            None => json!([{ "type": "text", "text": text }]),
        };
        return HttpResponse::Ok().json(json!({
            "id": "msg_fake_1", "type": "message", "role": "assistant", "model": body["model"],
            "content": content, "stop_reason": if tool.is_some() { "tool_use" } else { "end_turn" },
            "stop_sequence": null, "usage": usage,
        }));
    }
    let event = |data: Value| {
        format!(
            "event: {}\ndata: {data}\n\n",
            data["type"].as_str().unwrap_or("")
        )
    };
    let mut events = vec![
        event(
            json!({ "type": "message_start", "message": { "id": "msg_fake_1", "type": "message",
            "role": "assistant", "content": [], "model": body["model"], "stop_reason": null, "stop_sequence": null,
            "usage": { "input_tokens": input, "output_tokens": 1,
                "cache_read_input_tokens": read, "cache_creation_input_tokens": written } } }),
        ),
        event(
            json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
        ),
        event(json!({ "type": "ping" })),
    ];
    for piece in ["hello ", "from ", api_key] {
        events.push(event(json!({ "type": "content_block_delta", "index": 0,
            "delta": { "type": "text_delta", "text": piece } })));
    }
    events.push(event(json!({ "type": "content_block_stop", "index": 0 })));
    if let Some(name) = &tool {
        events.push(event(json!({ "type": "content_block_start", "index": 1,
            "content_block": { "type": "tool_use", "id": "toolu_fake_1", "name": name, "input": {} } })));
        for piece in ["{\"city\": ", &format!("\"{CITY}\"}}")] {
            events.push(event(json!({ "type": "content_block_delta", "index": 1,
                "delta": { "type": "input_json_delta", "partial_json": piece } })));
        }
        events.push(event(json!({ "type": "content_block_stop", "index": 1 })));
    }
    events.push(event(json!({ "type": "message_delta",
        "delta": { "stop_reason": if tool.is_some() { "tool_use" } else { "end_turn" }, "stop_sequence": null },
        "usage": { "output_tokens": output } })));
    events.push(event(json!({ "type": "message_stop" })));
    sse(events, cut_short)
}

/// `POST …/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`.
pub fn gemini(api_key: &str, path: &str, body: &Value, cut_short: bool) -> HttpResponse {
    let tool = wants_tool(
        &body["tools"],
        &body["contents"].to_string(),
        "functionResponse",
    )
    .then(|| body["tools"][0]["functionDeclarations"][0]["name"].clone());
    let usage = json!({ "promptTokenCount": 12, "candidatesTokenCount": 5, "thoughtsTokenCount": 3, "totalTokenCount": 20 });
    let call_part = |name: &Value| {
        json!({ "functionCall": { "name": name, "args": { "city": CITY } },
        "thoughtSignature": SIGNATURE })
    };
    if !path.contains(":streamGenerateContent") {
        let parts = match &tool {
            Some(name) => json!([call_part(name)]),
            None => json!([{ "text": format!("hello from {api_key}") }]),
        };
        return HttpResponse::Ok().json(json!({
            "candidates": [{ "content": { "role": "model", "parts": parts }, "finishReason": "STOP", "index": 0 }],
            "usageMetadata": usage, "modelVersion": "gemini-fake", "responseId": "resp_fake_1",
        }));
    }
    let event = |data: Value| format!("data: {data}\r\n\r\n");
    let mut events: Vec<String> = ["hello ", "from ", api_key]
        .iter()
        .map(|piece| event(json!({ "candidates": [{ "content": { "role": "model", "parts": [{ "text": piece }] }, "index": 0 }],
            "responseId": "resp_fake_1" })))
        .collect();
    let last_parts = match &tool {
        Some(name) => json!([call_part(name)]),
        None => json!([{ "text": "!" }]),
    };
    events.push(event(json!({ "candidates": [{ "content": { "role": "model", "parts": last_parts },
        "finishReason": "STOP", "index": 0 }], "usageMetadata": usage, "responseId": "resp_fake_1" })));
    sse(events, cut_short)
}
