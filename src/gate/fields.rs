//! Type and range checks of the request fields the gateway forwards, so a token holder cannot
//! make the brand's keys fail (and count against their health) with poisoned bodies. `null` is
//! always allowed (it means "the default"); a field that fails is a 400 naming it.

use crate::error::ApiError;
use crate::raw::RawObject;
use serde_json::Value;

/// What a field must hold.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// A whole number in the range.
    Integer(i64, i64),
    /// Any number in the range.
    Number(f64, f64),
    Bool,
    String,
    /// A string, or an array of strings.
    Strings,
    Object,
    Array,
    /// A string, or an object (`tool_choice`).
    StringOrObject,
}

pub type Fields = &'static [(&'static str, Rule)];

/// `POST /chat/completions`, with OpenAI's documented ranges (wider where providers differ).
pub const CHAT: Fields = &[
    ("n", Rule::Integer(1, 128)),
    ("max_tokens", Rule::Integer(1, 100_000_000)),
    ("max_completion_tokens", Rule::Integer(1, 100_000_000)),
    ("temperature", Rule::Number(0.0, 2.0)),
    ("top_p", Rule::Number(0.0, 1.0)),
    ("presence_penalty", Rule::Number(-2.0, 2.0)),
    ("frequency_penalty", Rule::Number(-2.0, 2.0)),
    ("logprobs", Rule::Bool),
    ("top_logprobs", Rule::Integer(0, 20)),
    ("seed", Rule::Integer(i64::MIN, i64::MAX)),
    ("stop", Rule::Strings),
    ("user", Rule::String),
    ("logit_bias", Rule::Object),
    ("response_format", Rule::Object),
    ("tools", Rule::Array),
    ("tool_choice", Rule::StringOrObject),
    ("parallel_tool_calls", Rule::Bool),
    ("reasoning_effort", Rule::String),
];

/// `POST /embeddings`.
pub const EMBEDDINGS: Fields = &[
    ("dimensions", Rule::Integer(1, 65_536)),
    ("encoding_format", Rule::String),
    ("user", Rule::String),
];

/// `POST /images/generations`.
pub const IMAGES: Fields = &[
    ("n", Rule::Integer(1, 10)),
    ("size", Rule::String),
    ("quality", Rule::String),
    ("style", Rule::String),
    ("response_format", Rule::String),
    ("user", Rule::String),
];

/// Checks every listed field present in a raw body.
pub fn check(body: &RawObject, fields: Fields) -> Result<(), ApiError> {
    for (name, rule) in fields {
        if let Some(raw) = body.raw(name) {
            let value: Value = serde_json::from_str(raw)
                .map_err(|_| ApiError::invalid_field(name, "is not valid JSON"))?;
            check_value(name, *rule, &value)?;
        }
    }
    Ok(())
}

/// Checks every listed field present in a decoded body.
pub fn check_map(body: &serde_json::Map<String, Value>, fields: Fields) -> Result<(), ApiError> {
    for (name, rule) in fields {
        if let Some(value) = body.get(*name) {
            check_value(name, *rule, value)?;
        }
    }
    Ok(())
}

fn check_value(name: &str, rule: Rule, value: &Value) -> Result<(), ApiError> {
    if value.is_null() || fits(rule, value) {
        return Ok(());
    }
    Err(ApiError::invalid_field(name, describe(rule)))
}

fn fits(rule: Rule, value: &Value) -> bool {
    match rule {
        // `as_i64` is `None` for fractions and for integers outside i64 (2^63, 1e308).
        Rule::Integer(min, max) => value.as_i64().is_some_and(|n| (min..=max).contains(&n)),
        Rule::Number(min, max) => value.as_f64().is_some_and(|n| (min..=max).contains(&n)),
        Rule::Bool => value.is_boolean(),
        Rule::String => value.is_string(),
        Rule::Strings => {
            value.is_string()
                || value
                    .as_array()
                    .is_some_and(|a| a.iter().all(Value::is_string))
        }
        Rule::Object => value.is_object(),
        Rule::Array => value.is_array(),
        Rule::StringOrObject => value.is_string() || value.is_object(),
    }
}

fn describe(rule: Rule) -> String {
    match rule {
        Rule::Integer(i64::MIN, i64::MAX) => "must be an integer".into(),
        Rule::Integer(min, max) => format!("must be an integer from {min} to {max}"),
        Rule::Number(min, max) => format!("must be a number from {min} to {max}"),
        Rule::Bool => "must be a boolean".into(),
        Rule::String => "must be a string".into(),
        Rule::Strings => "must be a string or an array of strings".into(),
        Rule::Object => "must be an object".into(),
        Rule::Array => "must be an array".into(),
        Rule::StringOrObject => "must be a string or an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(extra: &str) -> Result<(), ApiError> {
        let raw = format!(r#"{{"model":"x","messages":[{{}}],{extra}}}"#);
        check(&RawObject::parse(raw.as_bytes()).expect("json"), CHAT)
    }

    #[test]
    fn absurd_numbers_and_wrong_types_are_refused_naming_the_field() {
        for (extra, field) in [
            (r#""n":1e308"#, "n"),
            (r#""n":9223372036854775808"#, "n"),
            (r#""n":"1; DROP TABLE traces""#, "n"),
            (r#""n":0"#, "n"),
            (r#""n":1.5"#, "n"),
            (r#""temperature":3"#, "temperature"),
            (r#""max_tokens":-1"#, "max_tokens"),
            (r#""stop":[1]"#, "stop"),
            (r#""seed":1e19"#, "seed"),
        ] {
            let err = chat(extra).expect_err(extra);
            assert!(err.to_string().contains(field), "{extra}: {err}");
        }
    }

    #[test]
    fn sane_values_and_nulls_pass() {
        for extra in [
            r#""n":2,"temperature":0.7,"max_tokens":100,"stop":"\n""#,
            r#""n":null,"seed":-5,"stop":["a","b"],"tool_choice":"auto""#,
            r#""top_logprobs":20,"logprobs":true,"user":"u1""#,
        ] {
            assert!(chat(extra).is_ok(), "{extra}");
        }
    }
}
