//! `ChatRequest`: the client's body kept as a JSON map, so every field OpenAI adds is forwarded
//! untouched; only `model`, `messages`, `stream` and `stream_options` are read.

use super::raw::RawObject;
use crate::catalog::Model;
use crate::error::{ApiError, ErrorCode};
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

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

    /// The prompt's size in tokens, estimated from the messages (4 bytes a token).
    pub fn prompt_estimate(&self) -> u64 {
        (self.body.raw("messages").map_or(0, str::len) / 4) as u64 + 1
    }

    /// The body sent to `model`'s provider: its own model name and, for streams, always a usage
    /// chunk so the gateway can meter it. Every other field is forwarded byte for byte.
    pub fn upstream_body(&self, model: &Model) -> Vec<u8> {
        let model_name = Value::String(model.provider_model.clone()).to_string();
        let options = self.stream.then(|| {
            let mut options = self.stream_options.clone().unwrap_or_default();
            options.insert("include_usage".into(), Value::Bool(true));
            Value::Object(options).to_string()
        });
        let replace = |key: &str| match key {
            "model" => Some(model_name.clone()),
            "stream_options" => options.clone(),
            _ => None,
        };
        let append: Vec<(&str, String)> = match (&options, self.body.raw("stream_options")) {
            (Some(options), None) => vec![("stream_options", options.clone())],
            _ => Vec::new(),
        };
        self.body.write(replace, &append)
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
