//! The Google Gemini dialect (`models/{model}:generateContent`, `:streamGenerateContent?alt=sse`):
//! OpenAI chat requests said as `generateContent` requests, and its answers said back as OpenAI
//! completions and chunks.
//!
//! Translation points (Gemini API reference): the assistant's role is `model`; system messages
//! become `systemInstruction`; a tool result is a `functionResponse` that names its function, so
//! the conversation's call ids are mapped back to names; Gemini's calls have no ids, so ids are
//! made up; a call's `thoughtSignature` must come back on later turns, and travels in
//! `tool_calls[].extra_content.google.thought_signature` (the Gemini OpenAI layer's convention),
//! which keeps the gateway stateless; a prompt refused by the safety filters is an error.

use super::chat::{chunk_event, closing_events, error_event};
use super::{ErrorKind, Outgoing, ProviderError, Usage};
use crate::catalog::Model;
use bytes::Bytes;
use serde_json::{Map, Value, json};

fn refuse(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ErrorKind::Client, None, message)
}

/// The method path for `model`.
pub fn path(model: &Model, stream: bool) -> String {
    let method = if stream {
        "streamGenerateContent"
    } else {
        "generateContent"
    };
    format!("/models/{}:{method}", model.provider_model)
}

/// The `generateContent` request for an OpenAI chat request.
pub fn chat_body(out: &Outgoing<'_>) -> Result<Vec<u8>, ProviderError> {
    let request = out.request;
    let messages: Vec<Value> = request.field("messages").unwrap_or_default();
    let (system, contents) = conversation(&messages)?;
    let mut body = json!({ "contents": contents });
    if !system.is_empty() {
        body["systemInstruction"] = json!({ "parts": system });
    }
    let config = generation_config(out);
    if !config.is_empty() {
        body["generationConfig"] = Value::Object(config);
    }
    if let Some(tools) = request.field::<Vec<Value>>("tools") {
        let declarations: Vec<Value> = tools.iter().map(declaration).collect::<Result<_, _>>()?;
        body["tools"] = json!([{ "functionDeclarations": declarations }]);
    }
    if let Some(mode) = request.field::<Value>("tool_choice") {
        body["toolConfig"] = json!({ "functionCallingConfig": calling_config(&mode) });
    }
    serde_json::to_vec(&body).map_err(|e| refuse(e.to_string()))
}

fn generation_config(out: &Outgoing<'_>) -> Map<String, Value> {
    let request = out.request;
    let mut config = Map::new();
    let mut copy = |from: &str, to: &str| {
        if let Some(value) = request.field::<Value>(from) {
            config.insert(to.to_owned(), value);
        }
    };
    copy("temperature", "temperature");
    copy("top_p", "topP");
    copy("n", "candidateCount");
    copy("seed", "seed");
    copy("presence_penalty", "presencePenalty");
    copy("frequency_penalty", "frequencyPenalty");
    match request.field::<Value>("stop") {
        Some(Value::String(stop)) => {
            config.insert("stopSequences".into(), json!([stop]));
        }
        Some(stops @ Value::Array(_)) => {
            config.insert("stopSequences".into(), stops);
        }
        _ => {}
    }
    if let Some(limit) = out.completion_limit.or(request.max_tokens) {
        config.insert("maxOutputTokens".into(), json!(limit));
    }
    if let Some(format) = request.field::<Value>("response_format") {
        match format["type"].as_str() {
            Some("json_object") => {
                config.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                config.insert("responseMimeType".into(), json!("application/json"));
                if let Some(schema) = format["json_schema"].get("schema") {
                    config.insert("responseJsonSchema".into(), schema.clone());
                }
            }
            _ => {}
        }
    }
    config
}

/// System parts, and the user/model turns.
fn conversation(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>), ProviderError> {
    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    // Call id → function name, for the results that answer them.
    let mut names: Vec<(String, String)> = Vec::new();
    for message in messages {
        let role = message["role"].as_str().unwrap_or_default();
        let parts = match role {
            "system" | "developer" => {
                system.extend(parts(&message["content"])?);
                continue;
            }
            "user" => parts(&message["content"])?,
            "assistant" => {
                let mut parts = parts(&message["content"])?;
                for call in message["tool_calls"].as_array().into_iter().flatten() {
                    let name = call["function"]["name"].as_str().unwrap_or_default();
                    let id = call["id"].as_str().unwrap_or_default();
                    names.push((id.to_owned(), name.to_owned()));
                    let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
                    let args: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
                    let mut part = json!({ "functionCall": { "name": name, "args": args } });
                    if let Some(signature) = call.pointer("/extra_content/google/thought_signature")
                    {
                        part["thoughtSignature"] = signature.clone();
                    }
                    parts.push(part);
                }
                parts
            }
            "tool" => {
                let id = message["tool_call_id"].as_str().unwrap_or_default();
                let name = names
                    .iter()
                    .rev()
                    .find(|(call, _)| call == id)
                    .map(|(_, name)| name.clone())
                    .or_else(|| message["name"].as_str().map(str::to_owned))
                    .ok_or_else(|| {
                        refuse(format!(
                            "the tool result `{id}` answers no tool call of the conversation"
                        ))
                    })?;
                let text = super::anthropic::text_of(&message["content"]);
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(object @ Value::Object(_)) => object,
                    _ => json!({ "content": text }),
                };
                vec![json!({ "functionResponse": { "name": name, "response": response } })]
            }
            other => {
                return Err(refuse(format!(
                    "a `{other}` message cannot be sent to Gemini"
                )));
            }
        };
        if parts.is_empty() {
            continue;
        }
        let role = if role == "assistant" { "model" } else { "user" };
        match contents.last_mut().filter(|c| c["role"] == role) {
            Some(last) => {
                if let Some(existing) = last["parts"].as_array_mut() {
                    existing.extend(parts);
                }
            }
            None => contents.push(json!({ "role": role, "parts": parts })),
        }
    }
    Ok((system, contents))
}

fn parts(content: &Value) -> Result<Vec<Value>, ProviderError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(text) if text.is_empty() => Ok(Vec::new()),
        Value::String(text) => Ok(vec![json!({ "text": text })]),
        Value::Array(items) => items
            .iter()
            .filter(|p| p["type"] != "text" || p["text"].as_str().is_some_and(|t| !t.is_empty()))
            .map(|p| match p["type"].as_str() {
                Some("text") => Ok(json!({ "text": p["text"] })),
                Some("image_url") => {
                    let url = p["image_url"]["url"]
                        .as_str()
                        .or(p["image_url"].as_str())
                        .unwrap_or_default();
                    Ok(image(url))
                }
                other => Err(refuse(format!(
                    "a `{}` content part cannot be sent to Gemini",
                    other.unwrap_or("untyped")
                ))),
            })
            .collect(),
        _ => Err(refuse(
            "message `content` must be a string or an array of parts",
        )),
    }
}

fn image(url: &str) -> Value {
    match super::anthropic::parse_data_url(url) {
        Some((mime, data)) => json!({ "inlineData": { "mimeType": mime, "data": data } }),
        None => {
            let mime = match url
                .rsplit('.')
                .next()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("png") => "image/png",
                Some("webp") => "image/webp",
                Some("gif") => "image/gif",
                _ => "image/jpeg",
            };
            json!({ "fileData": { "mimeType": mime, "fileUri": url } })
        }
    }
}

/// A tool as a function declaration. JSON Schema keywords Gemini refuses are left out.
fn declaration(tool: &Value) -> Result<Value, ProviderError> {
    let function = &tool["function"];
    let name = function["name"]
        .as_str()
        .ok_or_else(|| refuse("every tool needs `function.name`"))?;
    let mut out = json!({ "name": name });
    if let Some(description) = function["description"].as_str() {
        out["description"] = json!(description);
    }
    if let Some(parameters) = function.get("parameters").filter(|p| p.is_object()) {
        let mut parameters = parameters.clone();
        strip_schema(&mut parameters);
        out["parameters"] = parameters;
    }
    Ok(out)
}

fn strip_schema(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            for keyword in ["$schema", "additionalProperties", "strict", "$id"] {
                map.remove(keyword);
            }
            map.values_mut().for_each(strip_schema);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_schema),
        _ => {}
    }
}

fn calling_config(choice: &Value) -> Value {
    match choice {
        Value::String(mode) if mode == "none" => json!({ "mode": "NONE" }),
        Value::String(mode) if mode == "required" => json!({ "mode": "ANY" }),
        Value::Object(_) => json!({ "mode": "ANY",
            "allowedFunctionNames": [choice["function"]["name"]] }),
        _ => json!({ "mode": "AUTO" }),
    }
}

/// A Gemini finish reason as an OpenAI finish reason.
fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ => "stop",
    }
}

/// `usageMetadata` in OpenAI's terms: thinking tokens are billed as output.
fn usage(metadata: &Value) -> Usage {
    let count = |name: &str| metadata[name].as_u64().unwrap_or(0);
    Usage {
        prompt_tokens: count("promptTokenCount"),
        completion_tokens: count("candidatesTokenCount") + count("thoughtsTokenCount"),
        cache_read_tokens: count("cachedContentTokenCount"),
        cache_write_tokens: 0,
    }
}

/// A refused prompt (`promptFeedback.blockReason` and no candidates) as an error.
fn blocked(answer: &Value) -> Option<ProviderError> {
    let reason = answer["promptFeedback"]["blockReason"].as_str()?;
    let empty = answer["candidates"].as_array().is_none_or(|c| c.is_empty());
    empty.then(|| refuse(format!("Gemini refused the prompt ({reason})")))
}

/// One candidate's parts as OpenAI message fields: text, reasoning, tool calls.
struct Said {
    text: String,
    reasoning: String,
    calls: Vec<Value>,
}

fn said(candidate: &Value, first_call: usize) -> Said {
    let mut said = Said {
        text: String::new(),
        reasoning: String::new(),
        calls: Vec::new(),
    };
    for part in candidate["content"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(call) = part.get("functionCall") {
            let mut tool = json!({
                "index": first_call + said.calls.len(),
                "id": format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..24]),
                "type": "function",
                "function": { "name": call["name"], "arguments": call["args"].to_string() },
            });
            if let Some(signature) = part.get("thoughtSignature") {
                tool["extra_content"] = json!({ "google": { "thought_signature": signature } });
            }
            said.calls.push(tool);
        } else if let Some(text) = part["text"].as_str() {
            if part["thought"] == true {
                said.reasoning.push_str(text);
            } else {
                said.text.push_str(text);
            }
        }
    }
    said
}

/// A `generateContent` answer as an OpenAI `chat.completion` (JSON bytes).
pub fn chat_answer(bytes: &[u8], model: &Model) -> Result<Vec<u8>, ProviderError> {
    let answer: Value = serde_json::from_slice(bytes)
        .map_err(|_| ProviderError::malformed("with a body that is not JSON"))?;
    if let Some(error) = answer.get("error").filter(|e| !e.is_null()) {
        return Err(ProviderError::in_band(&error.to_string()));
    }
    if let Some(refused) = blocked(&answer) {
        return Err(refused);
    }
    let candidates = answer["candidates"]
        .as_array()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ProviderError::malformed("without `candidates`"))?;
    let choices: Vec<Value> = candidates
        .iter()
        .enumerate()
        .map(|(index, candidate)| {
            let said = said(candidate, 0);
            let mut finish = finish_reason(candidate["finishReason"].as_str().unwrap_or("STOP"));
            let mut message = json!({ "role": "assistant", "content": said.text });
            if !said.calls.is_empty() {
                finish = "tool_calls";
                let calls: Vec<Value> = said
                    .calls
                    .into_iter()
                    .map(|mut c| {
                        c.as_object_mut().map(|o| o.remove("index"));
                        c
                    })
                    .collect();
                message["tool_calls"] = Value::Array(calls);
            }
            if !said.reasoning.is_empty() {
                message["reasoning_content"] = json!(said.reasoning);
            }
            json!({ "index": index, "message": message, "finish_reason": finish })
        })
        .collect();
    let completion = json!({
        "id": answer["responseId"].as_str().unwrap_or("gemini"),
        "object": "chat.completion",
        "created": crate::clock::unix_now(),
        "model": model.provider_model,
        "choices": choices,
        "usage": usage(&answer["usageMetadata"]).to_json(),
    });
    serde_json::to_vec(&completion).map_err(|e| refuse(e.to_string()))
}

/// `streamGenerateContent?alt=sse` events (each a partial answer) as OpenAI chunks.
pub struct ChunkDecoder {
    id: String,
    model: String,
    usage: Usage,
    calls: usize,
    started: bool,
    finish: Option<&'static str>,
}

impl ChunkDecoder {
    pub fn new(model: &Model) -> ChunkDecoder {
        ChunkDecoder {
            id: String::from("gemini"),
            model: model.provider_model.clone(),
            usage: Usage::default(),
            calls: 0,
            started: false,
            finish: None,
        }
    }
}

impl super::StreamDecoder for ChunkDecoder {
    fn decode(&mut self, event: &[u8], out: &mut Vec<Bytes>) {
        let Some(data) = super::sse::data_of(event) else {
            return;
        };
        let Ok(answer) = serde_json::from_slice::<Value>(data) else {
            out.push(Bytes::copy_from_slice(event));
            return;
        };
        if let Some(error) = answer.get("error").filter(|e| !e.is_null()) {
            let message = error["message"]
                .as_str()
                .unwrap_or("the upstream stream failed");
            out.push(error_event(message, "api_error"));
            return;
        }
        if let Some(refused) = blocked(&answer) {
            out.push(error_event(&refused.message, "invalid_request_error"));
            return;
        }
        if let Some(id) = answer["responseId"].as_str() {
            self.id = id.to_owned();
        }
        if answer.get("usageMetadata").is_some() {
            self.usage = usage(&answer["usageMetadata"]);
        }
        let candidate = &answer["candidates"][0];
        if !self.started {
            self.started = true;
            out.push(chunk_event(
                &self.id,
                &self.model,
                json!({ "role": "assistant", "content": "" }),
                None,
            ));
        }
        let said = said(candidate, self.calls);
        if !said.text.is_empty() {
            out.push(chunk_event(
                &self.id,
                &self.model,
                json!({ "content": said.text }),
                None,
            ));
        }
        if !said.reasoning.is_empty() {
            out.push(chunk_event(
                &self.id,
                &self.model,
                json!({ "reasoning_content": said.reasoning }),
                None,
            ));
        }
        if !said.calls.is_empty() {
            self.calls += said.calls.len();
            out.push(chunk_event(
                &self.id,
                &self.model,
                json!({ "tool_calls": said.calls }),
                None,
            ));
        }
        if let Some(reason) = candidate["finishReason"].as_str() {
            let finish = if self.calls > 0 {
                "tool_calls"
            } else {
                finish_reason(reason)
            };
            self.finish = Some(finish);
            out.push(chunk_event(&self.id, &self.model, json!({}), Some(finish)));
        }
    }

    /// Gemini ends a stream by closing it: complete if the last candidate said why it stopped.
    fn finish(&mut self, out: &mut Vec<Bytes>) {
        if self.finish.is_some() {
            closing_events(&self.id, &self.model, &self.usage, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::providers::{ChatRequest, StreamDecoder};

    fn flash() -> Model {
        let catalog = Catalog::load(&Default::default()).expect("catalog");
        catalog
            .models()
            .iter()
            .find(|m| m.provider == "google_gemini")
            .expect("a gemini")
            .as_ref()
            .clone()
    }

    #[test]
    fn roles_system_images_tools_and_signatures_take_geminis_shape() {
        let model = flash();
        let request = json!({ "model": "x", "max_tokens": 64, "tool_choice": "required",
            "tools": [{ "type": "function", "function": { "name": "lookup",
                "parameters": { "type": "object", "additionalProperties": false, "properties": { "q": { "type": "string" } } } } }],
            "messages": [
                { "role": "system", "content": "terse" },
                { "role": "user", "content": [{ "type": "text", "text": "see" },
                    { "type": "image_url", "image_url": { "url": "data:image/jpeg;base64,QUJD" } }] },
                { "role": "assistant", "content": null, "tool_calls": [{ "id": "call_a", "type": "function",
                    "function": { "name": "lookup", "arguments": "{\"q\":\"rust\"}" },
                    "extra_content": { "google": { "thought_signature": "sig==" } } }] },
                { "role": "tool", "tool_call_id": "call_a", "content": "found it" }
            ] });
        let request = ChatRequest::parse(request.to_string().as_bytes()).expect("valid");
        let out = Outgoing {
            request: &request,
            model: &model,
            completion_limit: None,
        };
        let sent: Value =
            serde_json::from_slice(&chat_body(&out).expect("translates")).expect("json");
        assert_eq!(
            sent["systemInstruction"],
            json!({ "parts": [{ "text": "terse" }] })
        );
        assert_eq!(sent["generationConfig"]["maxOutputTokens"], 64);
        assert_eq!(
            sent["contents"][0]["parts"][1]["inlineData"]["mimeType"],
            "image/jpeg"
        );
        assert_eq!(sent["contents"][1]["role"], "model");
        assert_eq!(sent["contents"][1]["parts"][0]["thoughtSignature"], "sig==");
        assert_eq!(
            sent["contents"][2]["parts"][0]["functionResponse"],
            json!({ "name": "lookup", "response": { "content": "found it" } })
        );
        assert_eq!(sent["toolConfig"]["functionCallingConfig"]["mode"], "ANY");
        let schema = &sent["tools"][0]["functionDeclarations"][0]["parameters"];
        assert!(
            schema.get("additionalProperties").is_none() && schema["properties"]["q"].is_object()
        );
    }

    #[test]
    fn answers_calls_and_safety_blocks_read_as_openai() {
        let model = flash();
        let answer = json!({ "responseId": "r1", "candidates": [{ "content": { "role": "model", "parts": [
                { "functionCall": { "name": "lookup", "args": { "q": "x" } }, "thoughtSignature": "s1" }] },
                "finishReason": "STOP" }],
            "usageMetadata": { "promptTokenCount": 20, "candidatesTokenCount": 4, "thoughtsTokenCount": 6, "cachedContentTokenCount": 8 } });
        let out: Value = serde_json::from_slice(
            &chat_answer(answer.to_string().as_bytes(), &model).expect("answer"),
        )
        .expect("json");
        let call = &out["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(
            (
                call["function"]["name"].as_str(),
                out["choices"][0]["finish_reason"].as_str()
            ),
            (Some("lookup"), Some("tool_calls"))
        );
        assert_eq!(call["extra_content"]["google"]["thought_signature"], "s1");
        assert!(call.get("index").is_none());
        assert_eq!(
            (
                out["usage"]["prompt_tokens"].as_u64(),
                out["usage"]["completion_tokens"].as_u64()
            ),
            (Some(20), Some(10))
        );
        let blocked = json!({ "promptFeedback": { "blockReason": "SAFETY" } });
        let err = chat_answer(blocked.to_string().as_bytes(), &model).expect_err("blocked");
        assert_eq!(err.kind, ErrorKind::Client);
        assert!(err.message.contains("SAFETY"), "{}", err.message);
    }

    #[test]
    fn a_stream_closes_only_when_the_last_candidate_said_why_it_stopped() {
        let model = flash();
        let events = [
            json!({ "candidates": [{ "content": { "parts": [{ "text": "Hel" }] } }] }),
            json!({ "candidates": [{ "content": { "parts": [{ "text": "lo" }] }, "finishReason": "STOP" }],
                "usageMetadata": { "promptTokenCount": 3, "candidatesTokenCount": 2 } }),
        ];
        let mut decoder = ChunkDecoder::new(&model);
        let mut out = Vec::new();
        decoder.decode(format!("data: {}\r\n\r\n", events[0]).as_bytes(), &mut out);
        let mut cut = Vec::new();
        ChunkDecoder::new(&model).finish(&mut cut);
        assert!(cut.is_empty(), "a stream cut short is not completed");
        decoder.decode(format!("data: {}\r\n\r\n", events[1]).as_bytes(), &mut out);
        decoder.finish(&mut out);
        let text: Vec<String> = out
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        assert!(
            text[1].contains("\"Hel\"") && text[2].contains("\"lo\""),
            "{text:?}"
        );
        assert!(text[3].contains("\"finish_reason\":\"stop\""), "{text:?}");
        assert!(text[4].contains("\"prompt_tokens\":3"), "{text:?}");
        assert_eq!(text.last().map(String::as_str), Some("data: [DONE]\n\n"));
    }
}
