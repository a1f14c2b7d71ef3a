//! `Credentials`: a provider credential's fields (api_key, account_id, …), validated against the
//! provider's catalog entry, held as secrets, shown only as masked previews.
//!
//! A credential obtained by OAuth sign-in holds `refresh_token`, `access_token` and
//! `access_expires_at` (unix seconds) instead of an `api_key`. The access token and its expiry
//! change at every refresh, so they are left out of the preview and the fingerprint: the
//! refresh token is what identifies such a key.

use crate::catalog::Provider;
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

const API_KEY: &str = "api_key";
const REFRESH_TOKEN: &str = "refresh_token";
const ACCESS_TOKEN: &str = "access_token";
const ACCESS_EXPIRES_AT: &str = "access_expires_at";
/// Fields that change at every refresh: neither shown nor fingerprinted.
const EPHEMERAL: [&str; 2] = [ACCESS_TOKEN, ACCESS_EXPIRES_AT];

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
                    if name == crate::providers::BASE_URL_FIELD {
                        crate::providers::check_base_url(text)?;
                    }
                    fields.insert(name.clone(), Secret::new(text));
                }
                None | Some("") if provider.optional_credential_fields.contains(name) => {}
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

    /// An OAuth credential. `expires_at: None` is an access token that does not expire.
    pub fn oauth(
        refresh_token: Secret,
        access_token: Secret,
        expires_at: Option<DateTime<Utc>>,
    ) -> Credentials {
        let mut fields = BTreeMap::from([
            (REFRESH_TOKEN.to_owned(), refresh_token),
            (ACCESS_TOKEN.to_owned(), access_token),
        ]);
        if let Some(at) = expires_at {
            fields.insert(
                ACCESS_EXPIRES_AT.to_owned(),
                Secret::new(at.timestamp().to_string()),
            );
        }
        Credentials(fields)
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(Secret::expose)
    }

    /// The token upstream calls carry: the OAuth access token, else the API key.
    pub fn bearer(&self) -> Option<&str> {
        self.get(ACCESS_TOKEN).or_else(|| self.get(API_KEY))
    }

    /// The OAuth refresh token; `None` for a pasted key.
    pub fn refresh_token(&self) -> Option<&str> {
        self.get(REFRESH_TOKEN)
    }

    /// When the OAuth access token expires; `None` when it does not (or for a pasted key).
    pub fn access_expires_at(&self) -> Option<DateTime<Utc>> {
        let seconds = self.get(ACCESS_EXPIRES_AT)?.parse().ok()?;
        DateTime::from_timestamp(seconds, 0)
    }

    /// The JSON form that is encrypted (fields in sorted order).
    pub fn to_json(&self) -> Secret {
        self.json_of(|_| true)
    }

    /// The JSON of the fields that identify the key, for its fingerprint.
    pub fn identity_json(&self) -> Secret {
        self.json_of(|field| !EPHEMERAL.contains(&field))
    }

    fn json_of(&self, keep: impl Fn(&str) -> bool) -> Secret {
        let map: serde_json::Map<String, serde_json::Value> = self
            .0
            .iter()
            .filter(|(k, _)| keep(k))
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
            .filter(|(k, _)| !EPHEMERAL.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), mask(v.expose())))
            .collect()
    }
}

fn field_list(provider: &Provider) -> String {
    let names: Vec<String> = provider
        .credential_fields
        .iter()
        .map(|f| match provider.optional_credential_fields.contains(f) {
            true => format!("`{f}` (optional)"),
            false => format!("`{f}`"),
        })
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

    #[test]
    fn an_oauth_credential_shows_and_identifies_itself_by_its_refresh_token() {
        let expires = DateTime::from_timestamp(1_900_000_000, 0).expect("time");
        let oauth = |access: &str| {
            Credentials::oauth(
                Secret::new("refresh-token-0001"),
                Secret::new(access),
                Some(expires),
            )
        };
        let first = oauth("access-token-aaaa");
        assert_eq!(first.bearer(), Some("access-token-aaaa"));
        assert_eq!(first.refresh_token(), Some("refresh-token-0001"));
        assert_eq!(first.access_expires_at(), Some(expires));
        assert_eq!(
            first.preview(),
            BTreeMap::from([("refresh_token".to_owned(), "refr...001".to_owned())])
        );
        let refreshed = oauth("access-token-bbbb");
        assert_eq!(
            first.identity_json().expose(),
            refreshed.identity_json().expose()
        );
        assert_ne!(first.to_json().expose(), refreshed.to_json().expose());
        let round_trip = Credentials::from_json(&first.to_json()).expect("json");
        assert_eq!(round_trip.access_expires_at(), Some(expires));

        let pasted =
            Credentials::from_request(&provider("groq"), &json!({"api_key": "gsk_x"})).expect("ok");
        assert_eq!(
            (pasted.bearer(), pasted.refresh_token()),
            (Some("gsk_x"), None)
        );
    }
}
