//! `Credentials`: a provider credential's fields (api_key, account_id, …), validated against the
//! provider's catalog entry, held as secrets, shown only as masked previews.

use crate::catalog::Provider;
use crate::secret::Secret;
use std::collections::BTreeMap;

#[derive(Clone, Default)]
pub struct Credentials(BTreeMap<String, Secret>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Credentials {
    /// Validates a request's `credentials` object: exactly the provider's fields, non-empty strings.
    pub fn from_request(
        provider: &Provider,
        value: &serde_json::Value,
    ) -> Result<Credentials, String> {
        let Some(object) = value.as_object() else {
            return Err(format!(
                "credentials must be an object with {}",
                field_list(provider)
            ));
        };
        let mut fields = BTreeMap::new();
        for name in &provider.credential_fields {
            match object.get(name).and_then(|v| v.as_str()).map(str::trim) {
                Some(text) if !text.is_empty() && text.len() <= 4096 => {
                    fields.insert(name.clone(), Secret::new(text));
                }
                _ => {
                    return Err(format!(
                        "credentials for {} need {}",
                        provider.id,
                        field_list(provider)
                    ));
                }
            }
        }
        if let Some(extra) = object
            .keys()
            .find(|k| !provider.credential_fields.contains(k))
        {
            return Err(format!(
                "credentials for {} do not take `{extra}`; expected {}",
                provider.id,
                field_list(provider)
            ));
        }
        Ok(Credentials(fields))
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(Secret::expose)
    }

    /// The JSON form that is encrypted and fingerprinted (fields in sorted order).
    pub fn to_json(&self) -> Secret {
        let map: serde_json::Map<String, serde_json::Value> = self
            .0
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().into()))
            .collect();
        Secret::new(serde_json::Value::Object(map).to_string())
    }

    pub fn from_json(json: &Secret) -> anyhow::Result<Credentials> {
        let map: BTreeMap<String, String> = serde_json::from_str(json.expose())
            .map_err(|_| anyhow::anyhow!("stored credential is not a JSON object of strings"))?;
        Ok(Credentials(
            map.into_iter().map(|(k, v)| (k, Secret::new(v))).collect(),
        ))
    }

    /// `{"api_key": "sk-o...123"}`: enough to recognise a key, never enough to use it.
    pub fn preview(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), mask(v.expose())))
            .collect()
    }
}

fn field_list(provider: &Provider) -> String {
    let names: Vec<String> = provider
        .credential_fields
        .iter()
        .map(|f| format!("`{f}`"))
        .collect();
    names.join(" and ")
}

/// First 4 and last 3 characters of a long value; short values are fully masked.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < 12 {
        return "****".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 3..].iter().collect();
    format!("{head}...{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use serde_json::json;

    fn provider(id: &str) -> Provider {
        Catalog::load(&Default::default())
            .expect("catalog")
            .provider(id)
            .expect("provider")
            .clone()
    }

    #[test]
    fn previews_match_the_seed_and_hide_short_values() {
        assert_eq!(mask("sk-or-v1-abc123"), "sk-o...123");
        assert_eq!(mask("short"), "****");
    }

    #[test]
    fn fields_are_validated_against_the_provider() {
        let cloudflare = provider("cloudflare");
        assert!(
            Credentials::from_request(&cloudflare, &json!({"api_key": "k", "account_id": "a"}))
                .is_ok()
        );
        let missing =
            Credentials::from_request(&cloudflare, &json!({"api_key": "k"})).expect_err("missing");
        assert!(missing.contains("account_id"), "{missing}");
        let extra =
            Credentials::from_request(&provider("groq"), &json!({"api_key": "k", "x": "y"}))
                .expect_err("extra");
        assert!(extra.contains("`x`"), "{extra}");
        assert!(Credentials::from_request(&provider("groq"), &json!("gsk_x")).is_err());
        assert_eq!(
            format!(
                "{:?}",
                Credentials::from_request(&provider("groq"), &json!({"api_key": "gsk_secret"}))
                    .expect("ok")
            ),
            "[\"api_key\"]"
        );
    }
}
