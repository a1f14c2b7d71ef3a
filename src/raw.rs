//! `RawObject`: a JSON object whose values stay as the bytes they arrived in.
//!
//! The gateway reads a handful of top-level fields (`model`, `stream`, `usage`, …) and rewrites
//! fewer; messages, tools and choices pass through without being decoded and re-encoded.

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

pub struct RawObject(BTreeMap<String, Box<RawValue>>);

impl RawObject {
    pub fn parse(bytes: &[u8]) -> Result<RawObject, serde_json::Error> {
        serde_json::from_slice(bytes).map(RawObject)
    }

    /// The field's raw JSON text.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.get())
    }

    /// Decodes one field; `None` when absent.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<Result<T, serde_json::Error>> {
        self.raw(key).map(serde_json::from_str)
    }

    /// Serializes the object with `replace(key)` substituted where it returns JSON text, fields
    /// it maps to `Some("")` dropped, and `append` added at the end.
    pub fn write(
        &self,
        replace: impl Fn(&str) -> Option<String>,
        append: &[(&str, String)],
    ) -> Vec<u8> {
        let size = self
            .0
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum::<usize>();
        let mut out = Vec::with_capacity(
            size + append
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>()
                + 2,
        );
        out.push(b'{');
        let mut first = true;
        let mut field = |out: &mut Vec<u8>, key: &str, value: &str| {
            if !first {
                out.push(b',');
            }
            first = false;
            // Keys were valid JSON strings on the way in; serializing a &str cannot fail.
            let _ = serde_json::to_writer(&mut *out, key);
            out.push(b':');
            out.extend_from_slice(value.as_bytes());
        };
        for (key, value) in &self.0 {
            match replace(key) {
                Some(text) if text.is_empty() => {}
                Some(text) => field(&mut out, key, &text),
                None => field(&mut out, key, value.get()),
            }
        }
        for (key, value) in append {
            field(&mut out, key, value);
        }
        out.push(b'}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::RawObject;

    #[test]
    fn untouched_fields_keep_their_bytes() {
        let object =
            RawObject::parse(br#"{"model":"a","messages":[{"content":"caf\u00e9  1.50"}],"n":2}"#)
                .expect("object");
        let out = object.write(
            |k| (k == "model").then(|| "\"b\"".to_owned()),
            &[("extra", "true".into())],
        );
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.contains(r#""messages":[{"content":"caf\u00e9  1.50"}]"#),
            "{text}"
        );
        let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(
            (
                value["model"].as_str(),
                value["n"].as_i64(),
                value["extra"].as_bool()
            ),
            (Some("b"), Some(2), Some(true))
        );
    }
}
