//! The Anthropic Messages dialect: OpenAI chat requests said as Messages requests, and Messages
//! answers and events said back as OpenAI completions and chunks.
//!
//! Translation points (Anthropic's Messages API reference): system and developer messages become
//! the top-level `system`; tool results become `tool_result` blocks in a user turn; adjacent turns
//! of one role merge (the API wants them alternating); `max_tokens` is required; `tool_use.input`
//! is an object where OpenAI's `arguments` is a JSON string; `input_tokens` excludes the cache
//! where OpenAI's `prompt_tokens` includes it.

use super::chat::{chunk_event, closing_events, error_event};
use super::{ErrorKind, Outgoing, ProviderError, Usage};
use crate::catalog::Model;
use bytes::Bytes;
use serde_json::{Map, Value, json};

/// The `anthropic-version` every request carries unless the client or catalog sends another.
pub const VERSION: &str = "2023-06-01";

fn refuse(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ErrorKind::Client, None, message)
}

/// The Messages request for an OpenAI chat request.
pub fn chat_body(out: &Outgoing<'_>) -> Result<Vec<u8>, ProviderError> {
    let request = out.request;
    let messages: Vec<Value> = request.field("messages").unwrap_or_default();
    let (system, messages) = conversation(&messages)?;
    let max_tokens =
        request.completion_limit(out.completion_limit, u64::from(out.model.max_output_tokens));
    let mut body = json!({
        "model": out.model.provider_model,
        "max_tokens": max_tokens.max(1),
        "messages": messages,
    });
    if !system.is_empty() {
        body["system"] = Value::Array(system);
    }
    if request.stream {
        body["stream"] = Value::Bool(true);
    }
    if let Some(t) = request.field::<f64>("temperature") {
        // Anthropic's range is 0–1 where OpenAI's is 0–2.
        body["temperature"] = json!(t.clamp(0.0, 1.0));
    }
    if let Some(p) = request.field::<f64>("top_p") {
        body["top_p"] = json!(p);
    }
    match request.field::<Value>("stop") {
        Some(Value::String(stop)) => body["stop_sequences"] = json!([stop]),
        Some(stops @ Value::Array(_)) => body["stop_sequences"] = stops,
        _ => {}
    }
    if let Some(user) = request.field::<String>("user") {
        body["metadata"] = json!({ "user_id": user });
    }
    if let Some(tools) = request.field::<Vec<Value>>("tools") {
        body["tools"] = Value::Array(tools.iter().map(tool).collect::<Result<_, _>>()?);
    }
    if let Some(choice) = tool_choice(
        request.field("tool_choice"),
        request.field("parallel_tool_calls"),
    ) {
        body["tool_choice"] = choice;
    }
    serde_json::to_vec(&body).map_err(|e| refuse(e.to_string()))
}

/// System blocks, and the alternating user/assistant turns.
fn conversation(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>), ProviderError> {
    let mut system = Vec::new();
    let mut turns: Vec<Value> = Vec::new();
    for message in messages {
        let role = message["role"].as_str().unwrap_or_default();
        let blocks = match role {
            "system" | "developer" => {
                system.extend(blocks(&message["content"])?);
                continue;
            }
            "user" => blocks(&message["content"])?,
            "assistant" => assistant_blocks(message)?,
            "tool" => vec![json!({
                "type": "tool_result",
                "tool_use_id": message["tool_call_id"].as_str().unwrap_or_default(),
                "content": text_of(&message["content"]),
            })],
            other => {
                return Err(refuse(format!(
                    "a `{other}` message cannot be sent to Anthropic"
                )));
            }
        };
        if blocks.is_empty() {
            continue;
        }
        let role = if role == "assistant" {
            "assistant"
        } else {
            "user"
        };
        push_turn(&mut turns, role, blocks);
    }
    Ok((system, turns))
}

/// Appends `blocks` as a turn of `role`, merging with the previous turn of the same role.
fn push_turn(turns: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if let Some(last) = turns.last_mut().filter(|t| t["role"] == role)
        && let Some(content) = last["content"].as_array_mut()
    {
        content.extend(blocks);
        return;
    }
    turns.push(json!({ "role": role, "content": blocks }));
}

/// OpenAI content (a string or parts) as Messages content blocks.
fn blocks(content: &Value) -> Result<Vec<Value>, ProviderError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(text) if text.is_empty() => Ok(Vec::new()),
        Value::String(text) => Ok(vec![json!({ "type": "text", "text": text })]),
        Value::Array(parts) => parts.iter().filter_map(part).collect(),
        _ => Err(refuse(
            "message `content` must be a string or an array of parts",
        )),
    }
}

/// One content part; `None` for an empty text part (Anthropic refuses those).
fn part(part: &Value) -> Option<Result<Value, ProviderError>> {
    let mut block = match part["type"].as_str() {
        Some("text") => {
            let text = part["text"].as_str().unwrap_or_default();
            if text.is_empty() {
                return None;
            }
            json!({ "type": "text", "text": text })
        }
        Some("image_url") => {
            let url = part["image_url"]["url"]
                .as_str()
                .or(part["image_url"].as_str())
                .unwrap_or_default();
            json!({ "type": "image", "source": image_source(url) })
        }
        other => {
            return Some(Err(refuse(format!(
                "a `{}` content part cannot be sent to Anthropic",
                other.unwrap_or("untyped")
            ))));
        }
    };
    // Prompt caching, for clients that mark their parts the way Anthropic does.
    if let Some(cache) = part.get("cache_control") {
        block["cache_control"] = cache.clone();
    }
    Some(Ok(block))
}

/// A data URL as base64 source, any other URL as a URL source.
pub fn image_source(url: &str) -> Value {
    match parse_data_url(url) {
        Some((media_type, data)) => {
            json!({ "type": "base64", "media_type": media_type, "data": data })
        }
        None => json!({ "type": "url", "url": url }),
    }
}

/// `data:<type>;base64,<data>` → (type, data).
pub fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

fn assistant_blocks(message: &Value) -> Result<Vec<Value>, ProviderError> {
    let mut out = blocks(&message["content"])?;
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
        let input: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
        out.push(json!({
            "type": "tool_use",
            "id": call["id"],
            "name": call["function"]["name"],
            "input": if input.is_object() { input } else { json!({}) },
        }));
    }
    Ok(out)
}

/// Text of a tool result: a string, or the text parts joined.
pub fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn tool(tool: &Value) -> Result<Value, ProviderError> {
    let function = &tool["function"];
    let name = function["name"]
        .as_str()
        .ok_or_else(|| refuse("every tool needs `function.name`"))?;
    let mut out = json!({
        "name": name,
        "input_schema": function.get("parameters").filter(|p| p.is_object()).cloned()
            .unwrap_or_else(|| json!({ "type": "object", "properties": {} })),
    });
    if let Some(description) = function["description"].as_str() {
        out["description"] = json!(description);
    }
    Ok(out)
}

/// OpenAI's `tool_choice` (and `parallel_tool_calls: false`) as Anthropic's.
fn tool_choice(choice: Option<Value>, parallel: Option<bool>) -> Option<Value> {
    let mut out = match choice {
        Some(Value::String(mode)) => match mode.as_str() {
            "required" => json!({ "type": "any" }),
            "none" => json!({ "type": "none" }),
            _ => json!({ "type": "auto" }),
        },
        Some(Value::Object(object)) => {
            let name = object
                .get("function")
                .and_then(|f| f.get("name"))
                .cloned()
                .unwrap_or(Value::Null);
            json!({ "type": "tool", "name": name })
        }
        _ if parallel == Some(false) => json!({ "type": "auto" }),
        _ => return None,
    };
    if parallel == Some(false) && out["type"] != "none" {
        out["disable_parallel_tool_use"] = Value::Bool(true);
    }
    Some(out)
}

/// A Messages stop reason as an OpenAI finish reason.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// A Messages `usage` object in OpenAI's terms (cache tokens counted in the prompt).
pub fn usage(usage: &Value) -> Usage {
    let count = |name: &str| usage[name].as_u64().unwrap_or(0);
    let (read, written) = (
        count("cache_read_input_tokens"),
        count("cache_creation_input_tokens"),
    );
    Usage {
        prompt_tokens: count("input_tokens") + read + written,
        completion_tokens: count("output_tokens"),
        cache_read_tokens: read,
        cache_write_tokens: written,
    }
}

/// A Messages answer as an OpenAI `chat.completion` (JSON bytes).
pub fn chat_answer(bytes: &[u8], model: &Model) -> Result<Vec<u8>, ProviderError> {
    let answer: Value = serde_json::from_slice(bytes)
        .map_err(|_| ProviderError::malformed("with a body that is not JSON"))?;
    if answer["type"] == "error" {
        return Err(ProviderError::in_band(&answer["error"].to_string()));
    }
    let content = answer["content"]
        .as_array()
        .ok_or_else(|| ProviderError::malformed("without `content`"))?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for block in content {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("thinking") => reasoning.push_str(block["thinking"].as_str().unwrap_or_default()),
            Some("tool_use") => calls.push(json!({
                "id": block["id"],
                "type": "function",
                "function": { "name": block["name"], "arguments": block["input"].to_string() },
            })),
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) },
    });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    let completion = json!({
        "id": answer["id"],
        "object": "chat.completion",
        "created": crate::clock::unix_now(),
        "model": model.provider_model,
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": finish_reason(answer["stop_reason"].as_str().unwrap_or_default()),
        }],
        "usage": usage(&answer["usage"]).to_json(),
    });
    serde_json::to_vec(&completion).map_err(|e| refuse(e.to_string()))
}

/// Messages stream events as OpenAI chunks.
pub struct ChunkDecoder {
    id: String,
    model: String,
    usage: Usage,
    /// Content-block index → tool-call index, for the blocks that are tool calls.
    tools: Vec<(u64, usize)>,
    finish: Option<&'static str>,
}

impl ChunkDecoder {
    pub fn new(model: &Model) -> ChunkDecoder {
        ChunkDecoder {
            id: String::new(),
            model: model.provider_model.clone(),
            usage: Usage::default(),
            tools: Vec::new(),
            finish: None,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Bytes {
        chunk_event(&self.id, &self.model, delta, finish)
    }

    fn tool_index(&self, block: u64) -> Option<usize> {
        self.tools
            .iter()
            .find(|(b, _)| *b == block)
            .map(|(_, t)| *t)
    }
}

impl super::StreamDecoder for ChunkDecoder {
    fn decode(&mut self, event: &[u8], out: &mut Vec<Bytes>) {
        let Some(data) = super::sse::data_of(event) else {
            return;
        };
        let Ok(event) = serde_json::from_slice::<Map<String, Value>>(data) else {
            // Not JSON: passed on for the relay to judge as malformed.
            out.push(Bytes::copy_from_slice(event));
            return;
        };
        let field = |name: &str| event.get(name).unwrap_or(&Value::Null);
        match field("type").as_str().unwrap_or_default() {
            "message_start" => {
                let message = field("message");
                self.id = message["id"].as_str().unwrap_or("msg").to_owned();
                self.usage = usage(&message["usage"]);
                out.push(self.chunk(json!({ "role": "assistant", "content": "" }), None));
            }
            "content_block_start" => {
                let block = field("content_block");
                let index = field("index").as_u64().unwrap_or(0);
                match block["type"].as_str() {
                    Some("tool_use") => {
                        let tool = self.tools.len();
                        self.tools.push((index, tool));
                        out.push(self.chunk(
                            json!({ "tool_calls": [{ "index": tool, "id": block["id"], "type": "function",
                                "function": { "name": block["name"], "arguments": "" } }] }),
                            None,
                        ));
                    }
                    Some("text") if block["text"].as_str().is_some_and(|t| !t.is_empty()) => {
                        out.push(self.chunk(json!({ "content": block["text"] }), None));
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = field("delta");
                let index = field("index").as_u64().unwrap_or(0);
                let chunk = match delta["type"].as_str() {
                    Some("text_delta") => json!({ "content": delta["text"] }),
                    Some("thinking_delta") => json!({ "reasoning_content": delta["thinking"] }),
                    Some("input_json_delta") => match self.tool_index(index) {
                        Some(tool) => json!({ "tool_calls": [{ "index": tool,
                            "function": { "arguments": delta["partial_json"] } }] }),
                        None => return,
                    },
                    _ => return,
                };
                out.push(self.chunk(chunk, None));
            }
            "message_delta" => {
                let reported = field("usage");
                if let Some(output) = reported["output_tokens"].as_u64() {
                    self.usage.completion_tokens = output;
                }
                if reported.get("input_tokens").is_some() {
                    let prompt = usage(reported);
                    self.usage.prompt_tokens = prompt.prompt_tokens;
                    self.usage.cache_read_tokens = prompt.cache_read_tokens;
                    self.usage.cache_write_tokens = prompt.cache_write_tokens;
                }
                let reason = field("delta")["stop_reason"].as_str().map(finish_reason);
                self.finish = reason.or(self.finish);
                out.push(self.chunk(json!({}), Some(self.finish.unwrap_or("stop"))));
            }
            "message_stop" => closing_events(&self.id, &self.model, &self.usage, out),
            "error" => {
                let error = field("error");
                out.push(error_event(
                    error["message"]
                        .as_str()
                        .unwrap_or("the upstream stream failed"),
                    error["type"].as_str().unwrap_or("api_error"),
                ));
            }
            // ping, content_block_stop, and event types added later.
            _ => {}
        }
    }

    fn finish(&mut self, _out: &mut Vec<Bytes>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::providers::{ChatRequest, StreamDecoder};

    fn sonnet() -> Model {
        let catalog = Catalog::load(&Default::default()).expect("catalog");
        catalog
            .models()
            .iter()
            .find(|m| m.provider == "anthropic")
            .expect("a claude")
            .as_ref()
            .clone()
    }

    fn body(request: &Value, limit: Option<u64>) -> Value {
        let model = sonnet();
        let request = ChatRequest::parse(request.to_string().as_bytes()).expect("valid");
        let out = Outgoing {
            request: &request,
            model: &model,
            completion_limit: limit,
        };
        serde_json::from_slice(&chat_body(&out).expect("translates")).expect("json")
    }

    #[test]
    fn system_tools_and_tool_results_take_anthropics_shape() {
        let sent = body(
            &json!({
                "model": "x", "temperature": 1.6, "stop": "END", "parallel_tool_calls": false,
                "tool_choice": "required",
                "tools": [{ "type": "function", "function": { "name": "get_weather", "description": "d",
                    "parameters": { "type": "object", "properties": { "city": { "type": "string" } } } } }],
                "messages": [
                    { "role": "system", "content": "be brief" },
                    { "role": "user", "content": [{ "type": "text", "text": "weather?" },
                        { "type": "image_url", "image_url": { "url": "data:image/png;base64,AAAA" } }] },
                    { "role": "assistant", "content": null, "tool_calls": [{ "id": "toolu_1", "type": "function",
                        "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } }] },
                    { "role": "tool", "tool_call_id": "toolu_1", "content": "sunny" },
                    { "role": "user", "content": "thanks" }
                ]
            }),
            Some(50),
        );
        assert_eq!(
            sent["system"],
            json!([{ "type": "text", "text": "be brief" }])
        );
        assert_eq!(
            (sent["max_tokens"].as_u64(), sent["temperature"].as_f64()),
            (Some(50), Some(1.0))
        );
        assert_eq!(sent["stop_sequences"], json!(["END"]));
        assert_eq!(
            sent["tool_choice"],
            json!({ "type": "any", "disable_parallel_tool_use": true })
        );
        assert_eq!(
            sent["tools"][0]["input_schema"]["properties"]["city"]["type"],
            "string"
        );
        let turns = sent["messages"].as_array().expect("turns");
        assert_eq!(turns.len(), 3, "{turns:?}");
        assert_eq!(
            turns[0]["content"][1]["source"],
            json!({ "type": "base64", "media_type": "image/png", "data": "AAAA" })
        );
        assert_eq!(turns[1]["content"][0]["input"], json!({ "city": "Paris" }));
        // The tool result and the next user text share one user turn.
        assert_eq!(turns[2]["content"][0]["type"], "tool_result");
        assert_eq!(turns[2]["content"][1]["text"], "thanks");
    }

    #[test]
    fn an_answer_with_a_tool_call_and_cache_usage_reads_as_openai() {
        let model = sonnet();
        let answer = json!({ "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{ "type": "text", "text": "Checking." },
                { "type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": { "city": "Oslo" } }],
            "stop_reason": "tool_use",
            "usage": { "input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5 } });
        let out: Value = serde_json::from_slice(
            &chat_answer(answer.to_string().as_bytes(), &model).expect("answer"),
        )
        .expect("json");
        let choice = &out["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(
            choice["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Oslo\"}"
        );
        assert_eq!(out["usage"]["prompt_tokens"], 115);
        assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
        let overloaded = json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } });
        assert!(chat_answer(overloaded.to_string().as_bytes(), &model).is_err());
    }

    #[test]
    fn stream_events_become_chunks_with_tool_call_deltas_and_usage() {
        let model = sonnet();
        let mut decoder = ChunkDecoder::new(&model);
        let events = [
            json!({"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":12,"output_tokens":1}}}),
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}),
            json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}),
            json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}),
            json!({"type":"ping"}),
            json!({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":30}}),
            json!({"type":"message_stop"}),
        ];
        let mut out = Vec::new();
        for event in &events {
            decoder.decode(
                format!(
                    "event: {}\ndata: {event}\n\n",
                    event["type"].as_str().unwrap()
                )
                .as_bytes(),
                &mut out,
            );
        }
        let data: Vec<String> = out
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        assert_eq!(data.len(), 7, "{data:?}");
        assert!(data[1].contains("\"content\":\"Hi\""), "{}", data[1]);
        assert!(
            data[2].contains("\"id\":\"toolu_1\"") && data[3].contains("{\\\"a\\\":"),
            "{data:?}"
        );
        assert!(
            data[4].contains("\"finish_reason\":\"tool_calls\""),
            "{}",
            data[4]
        );
        assert!(
            data[5].contains("\"prompt_tokens\":12")
                && data[5].contains("\"completion_tokens\":30"),
            "{}",
            data[5]
        );
        assert_eq!(data[6], "data: [DONE]\n\n");
    }
}
