//! `ChatRequest`: the gateway's request in OpenAI form, as every adapter reads it. The client's
//! body is kept as a JSON map, so every field OpenAI adds is forwarded untouched to an OpenAI
//! dialect; only `model`, `messages`, `stream` and `stream_options` are read here.

use crate::catalog::Model;
use crate::error::{ApiError, ErrorCode};
use crate::raw::RawObject;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

/// What one image part of a prompt can cost, in tokens: the dearest rendering we know of
/// (gpt-4o-mini bills a high-detail image as up to ~25,500 tokens).
pub const IMAGE_PART_TOKENS: u64 = 25_600;
/// What a provider may add when it renders one tool's schema into the prompt.
pub const TOOL_TOKENS: u64 = 64;
/// What a provider may add around the messages (roles, separators, the reply's priming).
const PROMPT_FRAMING_TOKENS: u64 = 16;

pub struct ChatRequest {
    body: RawObject,
    pub model: String,
    pub stream: bool,
    /// The client asked for the final usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// `max_completion_tokens` or `max_tokens`, for the budget hold.
    pub max_tokens: Option<u64>,
    stream_options: Option<Map<String, Value>>,
}

impl ChatRequest {
    pub fn parse(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
        if bytes.is_empty() {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "request body is empty; expected JSON",
            ));
        }
        let body = RawObject::parse(bytes).map_err(|err| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("invalid JSON body: {err}"),
            )
        })?;
        let field = |name: &str| ApiError::invalid_field(name, "has the wrong type");
        let model = match body.get::<String>("model") {
            Some(Ok(model)) if !model.is_empty() => model,
            _ => {
                return Err(ApiError::invalid_field(
                    "model",
                    "is required: a model id or a task alias",
                ));
            }
        };
        let messages = body.get::<Vec<IgnoredAny>>("messages").and_then(Result::ok);
        if messages.is_none_or(|m| m.is_empty()) {
            return Err(ApiError::invalid_field(
                "messages",
                "is required: a non-empty array of messages",
            ));
        }
        let stream = match body.get::<Option<bool>>("stream") {
            None => false,
            Some(Ok(stream)) => stream.unwrap_or(false),
            Some(Err(_)) => return Err(ApiError::invalid_field("stream", "must be a boolean")),
        };
        let stream_options = body
            .get::<Option<Map<String, Value>>>("stream_options")
            .transpose()
            .map_err(|_| field("stream_options"))?
            .flatten();
        let include_usage = stream_options.as_ref().and_then(|o| o.get("include_usage"))
            == Some(&Value::Bool(true));
        let max_tokens = ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|name| body.get::<u64>(name).and_then(Result::ok));
        Ok(ChatRequest {
            body,
            model,
            stream,
            include_usage,
            max_tokens,
            stream_options,
        })
    }

    /// The body as the client sent it.
    pub fn body(&self) -> &RawObject {
        &self.body
    }

    /// One field of the body, decoded (`None` when absent, `null` or of another type).
    pub fn field<T: serde::de::DeserializeOwned>(&self, name: &str) -> Option<T> {
        self.body
            .get::<Option<T>>(name)
            .and_then(Result::ok)
            .flatten()
    }

    /// The completion limit to send: a hard budget's, else the client's, else `default`.
    pub fn completion_limit(&self, imposed: Option<u64>, default: u64) -> u64 {
        imposed.or(self.max_tokens).unwrap_or(default)
    }

    /// The prompt's size in tokens, estimated from the messages (4 bytes a token): what a
    /// stream cut short before its usage chunk is billed for.
    pub fn prompt_estimate(&self) -> u64 {
        (self.body.raw("messages").map_or(0, str::len) / 4) as u64 + 1
    }

    /// The most prompt tokens this request can be billed for, for the budget hold: every byte
    /// of the body counts as a token (no tokenizer makes fewer bytes than tokens, and the body
    /// holds the messages, tools and schemas), except that an image part counts
    /// `IMAGE_PART_TOKENS` instead of its URL or data, and each tool adds `TOOL_TOKENS` for the
    /// provider's rendering of its schema.
    pub fn prompt_bound(&self, body_len: usize) -> u64 {
        let tools = self
            .body
            .get::<Vec<IgnoredAny>>("tools")
            .and_then(Result::ok)
            .map_or(0, |tools| tools.len() as u64);
        let messages = self.body.raw("messages").unwrap_or_default();
        let (images, image_bytes) = if messages.contains("image_url") {
            image_parts(messages)
        } else {
            (0, 0)
        };
        (body_len as u64).saturating_sub(image_bytes)
            + images * IMAGE_PART_TOKENS
            + tools * TOOL_TOKENS
            + PROMPT_FRAMING_TOKENS
    }

    /// The body sent to `model`'s provider: its own model name, the completion limit a hard
    /// budget imposes (when given), and for streams always a usage chunk so the gateway can meter
    /// it. Every other field is forwarded byte for byte.
    pub fn upstream_body(&self, model: &Model, completion_limit: Option<u64>) -> Vec<u8> {
        let model_name = Value::String(model.provider_model.clone()).to_string();
        let options = self.stream.then(|| {
            let mut options = self.stream_options.clone().unwrap_or_default();
            options.insert("include_usage".into(), Value::Bool(true));
            Value::Object(options).to_string()
        });
        let limit = completion_limit.map(|l| l.to_string());
        let replace = |key: &str| match key {
            "model" => Some(model_name.clone()),
            "stream_options" => options.clone(),
            "max_tokens" | "max_completion_tokens" => limit.clone(),
            _ => None,
        };
        let mut append: Vec<(&str, String)> = match (&options, self.body.raw("stream_options")) {
            (Some(options), None) => vec![("stream_options", options.clone())],
            _ => Vec::new(),
        };
        let sent_a_limit = ["max_tokens", "max_completion_tokens"]
            .iter()
            .any(|name| self.body.raw(name).is_some());
        if let (Some(limit), false) = (limit.clone(), sent_a_limit) {
            // OpenAI's reasoning models refuse `max_tokens`; most others only know it.
            let name = if model.provider == "openai" {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            append.push((name, limit));
        }
        self.body.write(replace, &append)
    }
}

/// The image parts of the messages and the bytes their URLs (or inline data) take.
fn image_parts(messages: &str) -> (u64, u64) {
    let Ok(messages) = serde_json::from_str::<Vec<Value>>(messages) else {
        return (0, 0);
    };
    let parts = messages
        .iter()
        .filter_map(|m| m.get("content")?.as_array())
        .flatten()
        .filter(|part| part.get("type").and_then(Value::as_str) == Some("image_url"));
    parts.fold((0, 0), |(count, bytes), part| {
        let url = part.get("image_url").map_or(0, |image| match image {
            Value::String(url) => url.len(),
            other => other.get("url").and_then(Value::as_str).map_or(0, str::len),
        });
        (count + 1, bytes + url as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn the_prompt_bound_counts_a_token_per_byte_and_a_ceiling_per_image_and_tool() {
        let text = br#"{"model":"x","messages":[{"role":"user","content":"hello there"}]}"#;
        let request = ChatRequest::parse(text).expect("valid");
        assert_eq!(request.prompt_bound(text.len()), text.len() as u64 + 16);
        let data = "A".repeat(100_000);
        let image = format!(
            r#"{{"model":"x","messages":[{{"role":"user","content":[{{"type":"text","text":"what is this"}},{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{data}"}}}}]}}],"tools":[{{"type":"function","function":{{"name":"f"}}}}]}}"#
        );
        let request = ChatRequest::parse(image.as_bytes()).expect("valid");
        let url = "data:image/png;base64,".len() + data.len();
        assert_eq!(
            request.prompt_bound(image.len()),
            (image.len() - url) as u64 + IMAGE_PART_TOKENS + TOOL_TOKENS + 16
        );
    }

    #[test]
    fn a_hard_budgets_completion_limit_replaces_the_clients_or_is_added() {
        let catalog = Catalog::load(&Default::default()).expect("catalog");
        let openai = catalog.model("gpt-4o-mini").expect("model");
        let groq = catalog.model("groq/llama-3.1-8b-instant").expect("model");
        let sent = |raw: &str, model: &Model, limit| -> Value {
            let request = ChatRequest::parse(raw.as_bytes()).expect("valid");
            serde_json::from_slice(&request.upstream_body(model, limit)).expect("json")
        };
        let with_max = r#"{"model":"x","messages":[{}],"max_tokens":500}"#;
        assert_eq!(sent(with_max, groq, Some(40))["max_tokens"], 40);
        assert_eq!(sent(with_max, groq, None)["max_tokens"], 500);
        let bare = r#"{"model":"x","messages":[{}]}"#;
        assert_eq!(sent(bare, openai, Some(7))["max_completion_tokens"], 7);
        assert_eq!(sent(bare, groq, Some(7))["max_tokens"], 7);
        assert!(sent(bare, groq, None).get("max_tokens").is_none());
    }

    #[test]
    fn unknown_fields_are_forwarded_and_streams_always_ask_for_usage() {
        let raw = br#"{"model":"spideriq/fast","messages":[{"role":"user","content":"hi"}],"stream":true,"seed":7,"tools":[{"type":"function"}]}"#;
        let request = ChatRequest::parse(raw).expect("valid");
        assert!(request.stream && !request.include_usage);
        let catalog = Catalog::load(&Default::default()).expect("catalog");
        let model = catalog.model("groq/llama-3.1-8b-instant").expect("model");
        let sent: Value =
            serde_json::from_slice(&request.upstream_body(model, None)).expect("json");
        assert_eq!(sent["model"], "llama-3.1-8b-instant");
        assert_eq!(
            (sent["seed"].as_i64(), sent["tools"][0]["type"].as_str()),
            (Some(7), Some("function"))
        );
        assert_eq!(sent["stream_options"]["include_usage"], true);
    }

    #[test]
    fn missing_or_mistyped_fields_are_named() {
        for (raw, field) in [
            (&br#"{"messages":[{}]}"#[..], "model"),
            (br#"{"model":"x"}"#, "messages"),
            (br#"{"model":"x","messages":[{}],"stream":"yes"}"#, "stream"),
        ] {
            let err = ChatRequest::parse(raw).err().expect("invalid");
            assert!(err.to_string().contains(field), "{err}");
        }
    }
}
