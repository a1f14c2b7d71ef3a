//! A provider's OAuth token endpoint (RFC 6749): exchanging an authorization code with its PKCE
//! verifier (RFC 7636), and refreshing an access token. Used by the invite pages for the first
//! grant and by the vault for every refresh after it.
//!
//! The client authenticates with HTTP Basic (the method RFC 6749 section 2.3.1 makes every server
//! support), or, as a public client without a secret, by its `client_id` in the form. Nothing the
//! endpoint answers is logged or returned except its `error` code and description.

use crate::config::OAuthClient;
use crate::secret::Secret;
use crate::vault::Credentials;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::time::Duration;

/// Why the token endpoint gave no tokens.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The provider refused the grant or the client (a 4xx such as `invalid_grant`): for a
    /// stored key, an authentication failure.
    #[error("the provider refused the grant ({0})")]
    Refused(String),
    /// The endpoint could not be reached, timed out, or answered 5xx or nonsense: try later.
    #[error("the provider's token endpoint is unavailable ({0})")]
    Unavailable(String),
}

/// Tokens granted by the endpoint.
pub struct Grant {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub expires_in: Option<u64>,
}

impl Grant {
    /// The credential to store, issued at `now`. A refresh that names no new refresh token keeps
    /// `previous`; a first grant without one cannot be refreshed and is refused.
    pub fn into_credentials(
        self,
        now: DateTime<Utc>,
        previous: Option<&str>,
    ) -> Result<Credentials, OAuthError> {
        let refresh = self
            .refresh_token
            .or_else(|| previous.map(Secret::new))
            .ok_or_else(|| {
                OAuthError::Refused(
                    "no refresh token was granted; the client's scopes may lack offline access"
                        .into(),
                )
            })?;
        let expires_at = self
            .expires_in
            .map(|secs| now + chrono::Duration::seconds(secs.min(i32::MAX as u64) as i64));
        Ok(Credentials::oauth(refresh, self.access_token, expires_at))
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct ErrorAnswer {
    error: Option<String>,
    error_description: Option<String>,
}

pub struct TokenEndpoint<'a> {
    pub client: &'a OAuthClient,
    pub http: &'a reqwest::Client,
    pub timeout: Duration,
}

impl TokenEndpoint<'_> {
    /// Exchanges an authorization code (RFC 6749 section 4.1.3, with RFC 7636's verifier).
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<Grant, OAuthError> {
        self.request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .await
    }

    /// A new access token for `refresh_token` (RFC 6749 section 6).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Grant, OAuthError> {
        self.request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    async fn request(&self, form: &[(&str, &str)]) -> Result<Grant, OAuthError> {
        let client = self.client;
        let mut form = form.to_vec();
        let mut request = self
            .http
            .post(&client.token_url)
            .header(reqwest::header::ACCEPT, "application/json");
        if client.client_secret.is_empty() {
            form.push(("client_id", &client.client_id));
        } else {
            request = request.basic_auth(
                form_encode(&client.client_id),
                Some(form_encode(client.client_secret.expose())),
            );
        }
        let sending = request.form(&form).send();
        let response = tokio::time::timeout(self.timeout, sending)
            .await
            .map_err(|_| OAuthError::Unavailable("no answer in time".into()))?
            .map_err(|e| OAuthError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        let body = tokio::time::timeout(self.timeout, response.bytes())
            .await
            .map_err(|_| OAuthError::Unavailable("no answer in time".into()))?
            .map_err(|e| OAuthError::Unavailable(e.without_url().to_string()))?;
        if status.is_success() {
            return parse_grant(&body);
        }
        let answer: ErrorAnswer = serde_json::from_slice(&body).unwrap_or_default();
        let mut described = describe(status.as_u16(), answer);
        // A server that echoes what it was sent must not put a token into our logs.
        let secrets = form
            .iter()
            .filter(|(k, _)| matches!(*k, "code" | "code_verifier" | "refresh_token"))
            .map(|(_, v)| *v);
        for secret in secrets.chain([client.client_secret.expose()]) {
            if secret.len() >= 8 {
                described = described.replace(secret, "[redacted]");
            }
        }
        if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(OAuthError::Refused(described))
        } else {
            Err(OAuthError::Unavailable(described))
        }
    }
}

fn parse_grant(body: &[u8]) -> Result<Grant, OAuthError> {
    let answer: TokenAnswer = serde_json::from_slice(body)
        .map_err(|_| OAuthError::Unavailable("the answer is not JSON".into()))?;
    let access_token = answer
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::Unavailable("the answer has no access_token".into()))?;
    // Some servers send `expires_in` as a string.
    let expires_in = answer.expires_in.and_then(|v| match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    });
    Ok(Grant {
        access_token: Secret::new(access_token),
        refresh_token: answer
            .refresh_token
            .filter(|t| !t.is_empty())
            .map(Secret::new),
        expires_in,
    })
}

/// `HTTP 400 invalid_grant: the refresh token was revoked`, bounded, from the error fields only.
fn describe(status: u16, answer: ErrorAnswer) -> String {
    let mut text = format!("HTTP {status}");
    if let Some(error) = answer.error {
        text.push(' ');
        text.push_str(&error);
    }
    if let Some(description) = answer.error_description {
        text.push_str(": ");
        text.push_str(&description);
    }
    text.chars().take(300).collect()
}

/// RFC 6749 section 2.3.1: the client id and secret are form-encoded before Basic encoding.
fn form_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_parsed_leniently_and_errors_keep_only_their_codes() {
        let grant =
            parse_grant(br#"{"access_token":"at","expires_in":"3600","token_type":"bearer"}"#)
                .expect("grant");
        assert_eq!(
            (grant.expires_in, grant.refresh_token.is_none()),
            (Some(3600), true)
        );
        assert!(parse_grant(b"{}").is_err());
        assert!(parse_grant(b"<html>").is_err());
        let text = describe(
            400,
            ErrorAnswer {
                error: Some("invalid_grant".into()),
                error_description: Some("revoked".into()),
            },
        );
        assert_eq!(text, "HTTP 400 invalid_grant: revoked");
        assert_eq!(form_encode("a b:c"), "a+b%3Ac");
    }

    #[test]
    fn a_refresh_without_a_new_refresh_token_keeps_the_old_one() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let grant = || Grant {
            access_token: Secret::new("at-2"),
            refresh_token: None,
            expires_in: Some(60),
        };
        let kept = grant().into_credentials(now, Some("rt-1")).expect("kept");
        assert_eq!(kept.refresh_token(), Some("rt-1"));
        assert_eq!(
            kept.access_expires_at(),
            Some(now + chrono::Duration::seconds(60))
        );
        assert!(matches!(
            grant().into_credentials(now, None),
            Err(OAuthError::Refused(_))
        ));
    }
}
