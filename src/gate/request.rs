//! `ChatRequest`: the client's body kept as a JSON map, so every field OpenAI adds is forwarded
//! untouched; only `model`, `messages`, `stream` and `stream_options` are read.

use crate::catalog::Model;
use crate::error::ApiError;
use crate::json;
use serde_json::{Map, Value};

pub struct ChatRequest {
    body: Map<String, Value>,
    pub model: String,
    pub stream: bool,
    /// The client asked for the final usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// `max_completion_tokens` or `max_tokens`, for the budget hold.
    pub max_tokens: Option<u64>,
}

impl ChatRequest {
    pub fn parse(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
        let body: Map<String, Value> = json::parse(bytes)?;
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                ApiError::invalid_field("model", "is required: a model id or a task alias")
            })?
            .to_owned();
        let messages = body.get("messages").and_then(Value::as_array);
        if messages.is_none_or(Vec::is_empty) {
            return Err(ApiError::invalid_field(
                "messages",
                "is required: a non-empty array of messages",
            ));
        }
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(stream)) => *stream,
            Some(_) => return Err(ApiError::invalid_field("stream", "must be a boolean")),
        };
        let include_usage = body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            == Some(&Value::Bool(true));
        let max_tokens = ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|field| body.get(*field).and_then(Value::as_u64));
        Ok(ChatRequest {
            body,
            model,
            stream,
            include_usage,
            max_tokens,
        })
    }

    /// The prompt's size in tokens, estimated from the messages (4 bytes a token).
    pub fn prompt_estimate(&self) -> u64 {
        let bytes = self.body.get("messages").map_or(0, |m| m.to_string().len());
        (bytes / 4) as u64 + 1
    }

    /// The body sent to `model`'s provider: its own model name and, for streams, always a usage
    /// chunk so the gateway can meter it.
    pub fn upstream_body(&self, model: &Model) -> Vec<u8> {
        let mut body = self.body.clone();
        body.insert("model".into(), Value::String(model.provider_model.clone()));
        if self.stream {
            let options = body
                .entry("stream_options")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(options) = options.as_object_mut() {
                options.insert("include_usage".into(), Value::Bool(true));
            }
        }
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn unknown_fields_are_forwarded_and_streams_always_ask_for_usage() {
        let raw = br#"{"model":"spideriq/fast","messages":[{"role":"user","content":"hi"}],"stream":true,"seed":7,"tools":[{"type":"function"}]}"#;
        let request = ChatRequest::parse(raw).expect("valid");
        assert!(request.stream && !request.include_usage);
        let catalog = Catalog::load(&Default::default()).expect("catalog");
        let model = catalog.model("groq/llama-3.1-8b-instant").expect("model");
        let sent: Value = serde_json::from_slice(&request.upstream_body(model)).expect("json");
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
