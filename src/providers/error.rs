//! `ProviderError`: every upstream failure, classified once. The fallback loop asks `retryable()`
//! and `key_failure()`; it never matches status codes itself.

use crate::health::FailureKind;
use std::time::Duration;

/// How long a key rests after a 429 that carried no usable `Retry-After`.
const DEFAULT_RATE_LIMIT_REST: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Could not connect, or the connection broke.
    Connect,
    /// No answer (or no first byte) in time; also upstream 408.
    Timeout,
    /// 429.
    RateLimited,
    /// 5xx.
    Server,
    /// 401/403: the key is bad.
    Auth,
    /// 404: the model is not served there; try the next model.
    NotFound,
    /// Another 4xx: the request itself is wrong; no other key or model will do better.
    Client,
    /// 2xx whose body is not what the API promises.
    Decode,
}

#[derive(Debug, Clone)]
pub struct ProviderError {
    pub kind: ErrorKind,
    pub status: Option<u16>,
    /// Safe to show: no URL, no credential.
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, status: Option<u16>, message: impl Into<String>) -> Self {
        ProviderError {
            kind,
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// From an HTTP status and body text (already scrubbed of the key).
    pub fn from_status(status: u16, body: &str, retry_after: Option<Duration>) -> Self {
        let kind = match status {
            401 | 403 => ErrorKind::Auth,
            404 => ErrorKind::NotFound,
            408 => ErrorKind::Timeout,
            429 => ErrorKind::RateLimited,
            500.. => ErrorKind::Server,
            _ => ErrorKind::Client,
        };
        let detail = upstream_message(body);
        let mut err = ProviderError::new(
            kind,
            Some(status),
            format!("upstream answered {status}: {detail}"),
        );
        err.retry_after = retry_after;
        err
    }

    /// A 2xx answer whose body is `{"error": …}` (`error` is that field's JSON): the upstream
    /// failed in-band. A failed attempt of the key like a 5xx.
    pub fn in_band(error: &str) -> Self {
        let detail = upstream_message(&format!("{{\"error\":{error}}}"));
        ProviderError::new(
            ErrorKind::Server,
            None,
            format!("upstream answered 2xx with an error: {detail}"),
        )
    }

    /// A 2xx answer without what the API promises (`what`: "without `choices`", …).
    pub fn malformed(what: &str) -> Self {
        ProviderError::new(
            ErrorKind::Decode,
            None,
            format!("upstream answered 2xx {what}"),
        )
    }

    /// From a transport error. `without_url` because a URL may carry a key (query or path).
    pub fn from_reqwest(err: reqwest::Error) -> Self {
        let kind = if err.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::Connect
        };
        let err = err.without_url();
        let mut message = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
        ProviderError::new(kind, None, message)
    }

    /// Worth trying another key or model.
    pub fn retryable(&self) -> bool {
        self.kind != ErrorKind::Client
    }

    /// What this failure says about the key that made the call; `None` when the key is fine.
    pub fn key_failure(&self) -> Option<FailureKind> {
        match self.kind {
            ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::Server | ErrorKind::Decode => {
                Some(FailureKind::Transient)
            }
            ErrorKind::RateLimited => Some(FailureKind::RateLimited {
                retry_after: self.retry_after.unwrap_or(DEFAULT_RATE_LIMIT_REST),
            }),
            ErrorKind::Auth => Some(FailureKind::Auth),
            ErrorKind::NotFound | ErrorKind::Client => None,
        }
    }

    /// A short code for traces: the status, or the kind of transport failure.
    pub fn code(&self) -> String {
        match (self.status, self.kind) {
            (Some(status), _) => status.to_string(),
            (None, ErrorKind::Timeout) => "timeout".into(),
            (None, ErrorKind::Decode) => "decode".into(),
            (None, _) => "connect".into(),
        }
    }

    /// Removes every occurrence of `secret` (an upstream may echo the key it refused).
    pub fn scrub(mut self, secret: &str) -> Self {
        if secret.len() >= 4 && self.message.contains(secret) {
            self.message = self.message.replace(secret, "[redacted]");
        }
        self
    }
}

/// OpenAI's `{"error":{"message":…}}`, or the start of the body.
fn upstream_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or(v["error"].as_str())
                .or(v["message"].as_str())
        })
        .unwrap_or(body);
    message.chars().take(300).collect()
}

/// Seconds from a `Retry-After` header (delta-seconds form).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_once() {
        let cases = [
            (401, ErrorKind::Auth, true),
            (403, ErrorKind::Auth, true),
            (404, ErrorKind::NotFound, true),
            (408, ErrorKind::Timeout, true),
            (429, ErrorKind::RateLimited, true),
            (500, ErrorKind::Server, true),
            (503, ErrorKind::Server, true),
            // Anthropic's "overloaded".
            (529, ErrorKind::Server, true),
            (400, ErrorKind::Client, false),
            (422, ErrorKind::Client, false),
        ];
        for (status, kind, retryable) in cases {
            let err = ProviderError::from_status(status, "{}", None);
            assert_eq!((err.kind, err.retryable()), (kind, retryable), "{status}");
        }
    }

    #[test]
    fn a_429_rests_the_key_for_retry_after_and_messages_are_scrubbed() {
        let err = ProviderError::from_status(
            429,
            r#"{"error":{"message":"slow down, sk-live-123456"}}"#,
            Some(Duration::from_secs(9)),
        );
        assert_eq!(
            err.key_failure(),
            Some(FailureKind::RateLimited {
                retry_after: Duration::from_secs(9)
            })
        );
        let err = err.scrub("sk-live-123456");
        assert!(
            err.message.contains("slow down") && !err.message.contains("sk-live"),
            "{}",
            err.message
        );
        assert_eq!(
            ProviderError::from_status(400, "bad", None).key_failure(),
            None
        );
    }
}
