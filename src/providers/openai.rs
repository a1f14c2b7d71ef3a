//! The OpenAI dialect, which most catalog providers speak: the client's body goes out byte for
//! byte but for the model name, limits and the provider's `param_mappings`; answers and stream
//! events come back as they are.

use super::{Outgoing, ProviderError};
use crate::raw::RawObject;
use serde::de::IgnoredAny;
use std::collections::BTreeMap;

/// The body for `/chat/completions`.
pub fn chat_body(out: &Outgoing<'_>, mappings: &BTreeMap<String, String>) -> Vec<u8> {
    let body = out.request.upstream_body(out.model, out.completion_limit);
    rename_fields(body, mappings)
}

/// Renames (or, mapped to `""`, drops) top-level fields. Costs nothing without mappings.
fn rename_fields(body: Vec<u8>, mappings: &BTreeMap<String, String>) -> Vec<u8> {
    if mappings.is_empty() {
        return body;
    }
    let Ok(object) = RawObject::parse(&body) else {
        return body;
    };
    let mut renamed: Vec<(&str, String)> = Vec::new();
    let drop = |key: &str| mappings.contains_key(key).then(String::new);
    for (from, to) in mappings {
        // A field the client sent under the target name wins over the renamed one.
        if let Some(value) = object
            .raw(from)
            .filter(|_| !to.is_empty() && object.raw(to).is_none())
        {
            renamed.push((to.as_str(), value.to_owned()));
        }
    }
    object.write(drop, &renamed)
}

/// An answer is an object with a non-empty `choices` and no `error`.
pub fn chat_answer(bytes: &[u8]) -> Result<RawObject, ProviderError> {
    let answer = RawObject::parse(bytes)
        .map_err(|_| ProviderError::malformed("with a body that is not a JSON object"))?;
    if let Some(error) = answer.raw("error").filter(|e| *e != "null") {
        return Err(ProviderError::in_band(error));
    }
    match answer.get::<Vec<IgnoredAny>>("choices") {
        Some(Ok(choices)) if !choices.is_empty() => Ok(answer),
        _ => Err(ProviderError::malformed("without `choices`")),
    }
}

#[cfg(test)]
mod tests {
    use super::rename_fields;
    use std::collections::BTreeMap;

    #[test]
    fn param_mappings_rename_or_drop_fields_and_keep_the_rest() {
        let mappings = BTreeMap::from([
            ("max_completion_tokens".to_owned(), "max_tokens".to_owned()),
            ("logit_bias".to_owned(), String::new()),
        ]);
        let body = br#"{"model":"m","max_completion_tokens":9,"logit_bias":{"1":2},"seed":3}"#;
        let out: serde_json::Value =
            serde_json::from_slice(&rename_fields(body.to_vec(), &mappings)).expect("json");
        assert_eq!(
            out,
            serde_json::json!({"model": "m", "max_tokens": 9, "seed": 3})
        );
    }
}
