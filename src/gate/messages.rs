//! `POST /api/gate/v1/messages`: the Anthropic Messages API as a second front door, for Claude
//! Code and the Anthropic SDKs. Same pipeline as chat (allow-list, budgets, limits, routing,
//! fallback, traces). To an Anthropic upstream the request passes through, with the client's
//! `anthropic-version` and `anthropic-beta`; to any other provider it is translated to a chat
//! completion and the answer (or stream) back into Messages form.
//!
//! Tokens come as `x-api-key` or `Authorization: Bearer`; errors are Anthropic's
//! `{"type":"error","error":{…}}` with the gateway's status codes.

use super::call::GateCall;
use super::chat::{ChatAnswer, ChatJob, fallback_header};
use super::pipeline::{self, Job};
use super::stream::{self, Opened, Outbound, StreamReply};
use crate::auth::Principal;
use crate::catalog::{Api, Model};
use crate::error::{ApiError, ErrorCode};
use crate::json;
use crate::limits::Estimate;
use crate::providers::sse::{self, Event};
use crate::providers::{ChatRequest, Endpoint, ProviderError, Usage, anthropic};
use crate::raw::RawObject;
use crate::routing::{Plan, Served};
use crate::state::AppState;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::Arc;

/// Client headers forwarded to an Anthropic upstream.
const FORWARDED: [&str; 2] = ["anthropic-version", "anthropic-beta"];

/// An Anthropic Messages request (`stream: true` for its event stream).
#[utoipa::path(post, path = "/api/gate/v1/messages", tag = "gateway",
    request_body = super::openapi::MessagesRequest,
    responses(
        (status = 200, description = "The message (JSON), or its event stream",
            content((super::openapi::OpenAiObject = "application/json"), (super::openapi::StreamEvent = "text/event-stream"))),
        super::openapi::AnthropicFailed),
    security(("agent" = [])))]
pub async fn messages(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    json::Body(body): json::Body,
) -> Result<HttpResponse, ApiError> {
    let native = parse(&body)?;
    let model = native
        .get::<String>("model")
        .and_then(Result::ok)
        .unwrap_or_default();
    let model = anthropic_id(&state.catalog.load(), &model);
    let chat = ChatRequest::parse(&to_chat(&native, &model)?)?;
    let forwarded = FORWARDED
        .iter()
        .filter_map(|name| {
            let value = req.headers().get(*name)?.to_str().ok()?;
            Some((*name, value.to_owned()))
        })
        .collect();
    let job = MessagesJob {
        native,
        chat: ChatJob {
            request: chat,
            body_len: body.len(),
            include_route_trace: false,
        },
        forwarded,
    };
    pipeline::run(&state, &principal, &req, Some(&body), job).await
}

/// An estimate of the prompt's input tokens (`{"input_tokens": n}`), as Anthropic's
/// `count_tokens` answers: Claude Code asks before sending long contexts. The gateway has no
/// tokenizer for every provider, so this counts the bytes of the system prompt, messages and
/// tools at four a token, and calls no provider. The model must exist and the token may use it.
#[utoipa::path(post, path = "/api/gate/v1/messages/count_tokens", tag = "gateway",
    request_body = super::openapi::MessagesRequest,
    responses((status = 200, description = "The estimate", body = super::openapi::TokenCount),
        super::openapi::AnthropicFailed),
    security(("agent" = [])))]
pub async fn count_tokens(
    state: web::Data<AppState>,
    principal: Principal,
    json::Body(body): json::Body,
) -> Result<HttpResponse, ApiError> {
    let native = parse_fields(&body, false)?;
    let catalog = state.catalog.load();
    let requested = native
        .get::<String>("model")
        .and_then(Result::ok)
        .unwrap_or_default();
    let model = anthropic_id(&catalog, &requested);
    if !catalog.knows(&model) {
        return Err(ApiError::new(
            ErrorCode::ModelNotFound,
            format!("model `{model}` does not exist; see GET /api/gate/v1/models and /aliases"),
        )
        .with_param("model"));
    }
    crate::limits::check_model(&principal, &catalog, &model)?;
    let bytes: usize = ["system", "messages", "tools"]
        .iter()
        .filter_map(|field| native.raw(field))
        .map(str::len)
        .sum();
    Ok(HttpResponse::Ok().json(json!({ "input_tokens": bytes.div_ceil(4) })))
}

/// The Messages body, checked for what the gateway reads: `model`, `messages`, `max_tokens`.
fn parse(body: &[u8]) -> Result<RawObject, ApiError> {
    parse_fields(body, true)
}

/// `model` and `messages`, and `max_tokens` when `needs_limit`.
fn parse_fields(body: &[u8], needs_limit: bool) -> Result<RawObject, ApiError> {
    let native = RawObject::parse(body).map_err(|err| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("invalid JSON body: {err}"),
        )
    })?;
    if !matches!(native.get::<String>("model"), Some(Ok(m)) if !m.is_empty()) {
        return Err(ApiError::invalid_field(
            "model",
            "is required: a model id or a task alias",
        ));
    }
    if !matches!(native.get::<Vec<Value>>("messages"), Some(Ok(m)) if !m.is_empty()) {
        return Err(ApiError::invalid_field(
            "messages",
            "is required: a non-empty array of messages",
        ));
    }
    if needs_limit && !matches!(native.get::<u64>("max_tokens"), Some(Ok(n)) if n >= 1) {
        return Err(ApiError::invalid_field(
            "max_tokens",
            "is required: a positive integer",
        ));
    }
    Ok(native)
}

/// The catalog id for a model named as Anthropic names it: Claude Code and the SDKs send
/// `claude-sonnet-4-5` or a dated `claude-haiku-4-5-20251001` where the catalog says
/// `anthropic/claude-sonnet-4-5`. Any id the catalog knows (a model or an alias) stays as it is.
fn anthropic_id(catalog: &crate::catalog::Catalog, requested: &str) -> String {
    if catalog.knows(requested) {
        return requested.to_owned();
    }
    let undated = match requested.rsplit_once('-') {
        Some((name, date)) if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => requested,
    };
    [requested, undated]
        .iter()
        .map(|name| format!("anthropic/{name}"))
        .find(|id| catalog.model(id).is_some())
        .unwrap_or_else(|| requested.to_owned())
}

/// The Messages request as an OpenAI chat request (JSON) for `model`, for providers of other
/// dialects.
fn to_chat(native: &RawObject, model: &str) -> Result<Vec<u8>, ApiError> {
    let field = |name: &str| native.get::<Value>(name).and_then(Result::ok);
    let mut messages = Vec::new();
    match field("system") {
        Some(Value::String(text)) => messages.push(json!({ "role": "system", "content": text })),
        Some(blocks @ Value::Array(_)) => messages.push(json!({
            "role": "system",
            "content": anthropic::text_of(&blocks),
        })),
        _ => {}
    }
    for message in field("messages")
        .and_then(|m| m.as_array().cloned())
        .unwrap_or_default()
    {
        chat_messages(&message, &mut messages)?;
    }
    let mut chat = json!({
        "model": model,
        "messages": messages,
        "max_tokens": field("max_tokens"),
    });
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("stop_sequences", "stop"),
    ] {
        if let Some(value) = field(from) {
            chat[to] = value;
        }
    }
    if field("stream") == Some(Value::Bool(true)) {
        chat["stream"] = Value::Bool(true);
    }
    if let Some(user) = field("metadata").and_then(|m| m["user_id"].as_str().map(str::to_owned)) {
        chat["user"] = json!(user);
    }
    if let Some(Value::Array(tools)) = field("tools") {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| json!({ "type": "function", "function": {
                "name": t["name"],
                "description": t["description"].as_str().unwrap_or_default(),
                "parameters": t.get("input_schema").cloned().unwrap_or_else(|| json!({ "type": "object" })),
            }}))
            .collect();
        chat["tools"] = Value::Array(tools);
    }
    if let Some(choice) = field("tool_choice") {
        chat["tool_choice"] = match choice["type"].as_str() {
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => json!({ "type": "function", "function": { "name": choice["name"] } }),
            _ => json!("auto"),
        };
        if choice["disable_parallel_tool_use"] == true {
            chat["parallel_tool_calls"] = Value::Bool(false);
        }
    }
    serde_json::to_vec(&chat).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))
}

/// One Messages turn as chat messages: tool results become `tool` messages (before the turn's
/// other content), tool uses become `tool_calls`.
fn chat_messages(message: &Value, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let role = message["role"].as_str().unwrap_or_default();
    if role != "user" && role != "assistant" {
        return Err(ApiError::invalid_field(
            "messages",
            format!("role must be `user` or `assistant`, not `{role}`"),
        ));
    }
    let blocks = match &message["content"] {
        Value::String(text) => {
            out.push(json!({ "role": role, "content": text }));
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        _ => {
            return Err(ApiError::invalid_field(
                "messages",
                "content must be a string or an array of blocks",
            ));
        }
    };
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => parts.push(json!({ "type": "text", "text": block["text"] })),
            Some("image") => {
                let source = &block["source"];
                let url = match source["type"].as_str() {
                    Some("base64") => format!(
                        "data:{};base64,{}",
                        source["media_type"].as_str().unwrap_or("image/png"),
                        source["data"].as_str().unwrap_or_default()
                    ),
                    _ => source["url"].as_str().unwrap_or_default().to_owned(),
                };
                parts.push(json!({ "type": "image_url", "image_url": { "url": url } }));
            }
            Some("tool_use") => calls.push(json!({
                "id": block["id"],
                "type": "function",
                "function": { "name": block["name"], "arguments": block["input"].to_string() },
            })),
            Some("tool_result") => out.push(json!({
                "role": "tool",
                "tool_call_id": block["tool_use_id"],
                "content": anthropic::text_of(&block["content"]),
            })),
            // Thinking blocks and their signatures mean nothing to another provider.
            _ => {}
        }
    }
    if role == "assistant" {
        let text: String = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        let mut message = json!({ "role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) } });
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        if !text.is_empty() || message.get("tool_calls").is_some() {
            out.push(message);
        }
    } else if !parts.is_empty() {
        out.push(json!({ "role": "user", "content": parts }));
    }
    Ok(())
}

struct MessagesJob {
    /// The client's body, passed to an Anthropic upstream.
    native: RawObject,
    /// The same request in chat form, for every other provider: planned, held and tried as
    /// chat is.
    chat: ChatJob,
    forwarded: Vec<(&'static str, String)>,
}

enum MessagesAnswer {
    /// An Anthropic upstream's message, as it answered.
    Native(Value),
    NativeStream(Opened),
    /// Another provider's chat answer, to be said as a message.
    Chat(ChatAnswer),
}

impl Job for MessagesJob {
    type Answer = MessagesAnswer;

    fn kind(&self) -> &'static str {
        "messages"
    }

    fn requested(&self) -> &str {
        self.chat.requested()
    }

    fn plan(&self, state: &AppState, principal: &Principal) -> Result<Plan, ApiError> {
        self.chat.plan(state, principal)
    }

    fn estimate(&self, plan: &Plan) -> Estimate {
        self.chat.estimate(plan)
    }

    async fn attempt(
        &self,
        state: &AppState,
        endpoint: Endpoint,
        model: Arc<Model>,
        completion_limit: Option<u64>,
    ) -> Result<MessagesAnswer, ProviderError> {
        if endpoint.api != Api::Anthropic {
            return self
                .chat
                .attempt(state, endpoint, model, completion_limit)
                .await
                .map(MessagesAnswer::Chat);
        }
        let model_name = Value::String(model.provider_model.clone()).to_string();
        let limit = completion_limit.map(|l| l.to_string());
        let body = self.native.write(
            |key| match key {
                "model" => Some(model_name.clone()),
                "max_tokens" => limit.clone(),
                _ => None,
            },
            &[],
        );
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &self.forwarded {
            if let Ok(value) = reqwest::header::HeaderValue::from_str(value) {
                headers.insert(*name, value);
            }
        }
        let request = endpoint
            .request(&state.upstream.client(), reqwest::Method::POST, "/messages")
            .headers(headers)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let timeout = state.config.upstream.timeout();
        if self.chat.request.stream {
            return stream::open(&endpoint, request, &model, timeout)
                .await
                .map(MessagesAnswer::NativeStream);
        }
        let response = endpoint.send(request.timeout(timeout), None).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| endpoint.scrub(ProviderError::from_reqwest(e)))?;
        // Judged as the chat path would judge it: a 2xx without content is a failed attempt.
        anthropic::chat_answer(&bytes, &model).map_err(|e| endpoint.scrub(e))?;
        let message = serde_json::from_slice(&bytes)
            .map_err(|_| ProviderError::malformed("with a body that is not JSON"))?;
        Ok(MessagesAnswer::Native(message))
    }

    fn respond(
        self,
        state: &AppState,
        mut call: GateCall,
        plan: &Plan,
        served: Served<MessagesAnswer>,
    ) -> Result<HttpResponse, ApiError> {
        let mut response = HttpResponse::Ok();
        fallback_header(&mut response, plan, &served.model.id);
        let model = served.model;
        let reply = |native| StreamReply {
            model: model.clone(),
            prompt_estimate: self.chat.request.prompt_estimate(),
            idle_timeout: state.config.upstream.stream_idle_timeout(),
            native,
        };
        let outbound = || Box::new(MessagesOut::new(&model.id));
        let mut message = match served.value {
            MessagesAnswer::NativeStream(opened) => {
                return Ok(reply(true).respond(call, response, opened, outbound()));
            }
            MessagesAnswer::Chat(ChatAnswer::Stream(opened)) => {
                return Ok(reply(false).respond(call, response, opened, outbound()));
            }
            MessagesAnswer::Native(message) => message,
            MessagesAnswer::Chat(ChatAnswer::Whole(answer)) => to_message(&answer),
        };
        message["model"] = json!(model.id);
        let usage = anthropic::usage(&message["usage"]);
        call.succeed(&model, usage);
        let bytes = message.to_string().into_bytes();
        call.store_response_body(&bytes);
        call.headers(&mut response);
        Ok(response.content_type("application/json").body(bytes))
    }
}

/// An OpenAI stop reason as a Messages one.
fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Usage in Messages terms: `input_tokens` without the cache.
fn messages_usage(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.prompt_tokens
            .saturating_sub(usage.cache_read_tokens + usage.cache_write_tokens),
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    })
}

/// A chat completion as a Messages answer.
fn to_message(answer: &RawObject) -> Value {
    let choice = answer
        .get::<Vec<Value>>("choices")
        .and_then(Result::ok)
        .and_then(|c| c.into_iter().next())
        .unwrap_or_default();
    let message = &choice["message"];
    let mut content = Vec::new();
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({ "type": "text", "text": text }));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
        content.push(json!({
            "type": "tool_use",
            "id": call["id"],
            "name": call["function"]["name"],
            "input": serde_json::from_str::<Value>(arguments).unwrap_or_else(|_| json!({})),
        }));
    }
    let usage = answer
        .get::<Usage>("usage")
        .and_then(Result::ok)
        .unwrap_or_default();
    json!({
        "id": answer.get::<String>("id").and_then(Result::ok).unwrap_or_else(|| "msg".into()),
        "type": "message",
        "role": "assistant",
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
        "stop_sequence": null,
        "usage": messages_usage(&usage),
    })
}

/// OpenAI chunks as Messages stream events.
struct MessagesOut {
    model: String,
    started: bool,
    /// The open content block: its index and, for a tool use, the tool call's index.
    open: Option<(usize, Option<u64>)>,
    blocks: usize,
    stop_reason: &'static str,
    usage: Usage,
}

impl MessagesOut {
    fn new(model: &str) -> MessagesOut {
        MessagesOut {
            model: model.to_owned(),
            started: false,
            open: None,
            blocks: 0,
            stop_reason: "end_turn",
            usage: Usage::default(),
        }
    }

    fn send(out: &mut VecDeque<Bytes>, kind: &str, data: &Value) {
        out.push_back(Bytes::from(format!("event: {kind}\ndata: {data}\n\n")));
    }

    fn start(&mut self, id: &str, out: &mut VecDeque<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        Self::send(
            out,
            "message_start",
            &json!({ "type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": { "input_tokens": 0, "output_tokens": 0 } } }),
        );
    }

    fn close_block(&mut self, out: &mut VecDeque<Bytes>) {
        if let Some((index, _)) = self.open.take() {
            Self::send(
                out,
                "content_block_stop",
                &json!({ "type": "content_block_stop", "index": index }),
            );
        }
    }

    /// Opens a block unless the open one is the same kind (text, or this tool call).
    fn open_block(&mut self, tool: Option<u64>, block: Value, out: &mut VecDeque<Bytes>) -> usize {
        if let Some((index, open_tool)) = self.open
            && open_tool == tool
        {
            return index;
        }
        self.close_block(out);
        let index = self.blocks;
        self.blocks += 1;
        self.open = Some((index, tool));
        Self::send(
            out,
            "content_block_start",
            &json!({ "type": "content_block_start", "index": index, "content_block": block }),
        );
        index
    }

    fn delta(out: &mut VecDeque<Bytes>, index: usize, delta: Value) {
        Self::send(
            out,
            "content_block_delta",
            &json!({ "type": "content_block_delta", "index": index, "delta": delta }),
        );
    }

    fn chunk(&mut self, chunk: &Value, out: &mut VecDeque<Bytes>) {
        self.start(chunk["id"].as_str().unwrap_or("msg"), out);
        if let Some(usage) = chunk.get("usage").and_then(Usage::from_json) {
            self.usage = usage;
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return;
        };
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            let index = self.open_block(None, json!({ "type": "text", "text": "" }), out);
            Self::delta(out, index, json!({ "type": "text_delta", "text": text }));
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let tool = call["index"].as_u64().unwrap_or(0);
            let block = json!({ "type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": {} });
            let index = self.open_block(Some(tool), block, out);
            if let Some(arguments) = call["function"]["arguments"]
                .as_str()
                .filter(|a| !a.is_empty())
            {
                Self::delta(
                    out,
                    index,
                    json!({ "type": "input_json_delta", "partial_json": arguments }),
                );
            }
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            self.stop_reason = stop_reason(finish);
        }
    }

    fn end(&mut self, out: &mut VecDeque<Bytes>) {
        self.start("msg", out);
        self.close_block(out);
        Self::send(
            out,
            "message_delta",
            &json!({ "type": "message_delta",
            "delta": { "stop_reason": self.stop_reason, "stop_sequence": null },
            "usage": messages_usage(&self.usage) }),
        );
        Self::send(out, "message_stop", &json!({ "type": "message_stop" }));
    }
}

impl Outbound for MessagesOut {
    fn emit(&mut self, event: Bytes, kind: &Event, out: &mut VecDeque<Bytes>) {
        match kind {
            Event::Chunk(_) | Event::Usage(_) => {
                let chunk = sse::data_of(&event)
                    .and_then(|data| serde_json::from_slice::<Value>(data).ok())
                    .unwrap_or_default();
                self.chunk(&chunk, out);
            }
            Event::Done => self.end(out),
            Event::Error => {
                let error = sse::data_of(&event)
                    .and_then(|data| serde_json::from_slice::<Value>(data).ok())
                    .unwrap_or_default();
                let message = error["error"]["message"]
                    .as_str()
                    .unwrap_or("the upstream failed");
                out.push_back(self.error(message));
            }
            Event::Malformed | Event::Other => {}
        }
    }

    fn error(&mut self, message: &str) -> Bytes {
        let data = json!({ "type": "error", "error": { "type": "api_error", "message": message } });
        Bytes::from(format!("event: error\ndata: {data}\n\n"))
    }
}

/// `x-api-key: <token>` (how the Anthropic SDKs send a key) is taken as `Authorization: Bearer`.
pub async fn x_api_key_as_bearer(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !req.headers().contains_key(header::AUTHORIZATION)
        && let Some(key) = req.headers().get("x-api-key")
        && let Ok(bearer) =
            HeaderValue::from_str(&format!("Bearer {}", key.to_str().unwrap_or_default()))
    {
        req.headers_mut().insert(header::AUTHORIZATION, bearer);
    }
    next.call(req).await
}

/// Every error of this route in Anthropic's shape, status and headers kept: the SDKs read
/// `error.type` and `error.message`.
pub async fn anthropic_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let response = next.call(req).await?.map_into_boxed_body();
    let status = response.status();
    if !status.is_client_error() && !status.is_server_error() {
        return Ok(response);
    }
    let (req, response) = response.into_parts();
    let (head, body) = response.into_parts();
    let bytes = actix_web::body::to_bytes(body).await.unwrap_or_default();
    let envelope: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let message = envelope["error"]["message"]
        .as_str()
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error"));
    let data = json!({ "type": "error", "error": { "type": error_type(status.as_u16()), "message": message } });
    let mut rebuilt = head.set_body(data.to_string()).map_into_boxed_body();
    rebuilt.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(ServiceResponse::new(req, rebuilt))
}

/// Anthropic's error type for a status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 415 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}
