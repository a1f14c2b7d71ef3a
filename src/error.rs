//! The one table of error codes, the one error type handlers return, and the one JSON envelope.
//!
//! `ErrorCode` mirrors the error table of `docs/API.md` line for line (a test holds it to the file).
//! Every error a client can see, extractor failures and unknown routes included, is rendered by
//! [`ApiError::error_response`] as `{"error":{"message","type","param","code"}}`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use std::borrow::Cow;
use std::time::Duration;

/// Every error code SpiderGate returns: wire name, OpenAI `type`, HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    MissingApiKey,
    InvalidTokenFormat,
    InvalidApiKey,
    InsufficientScope,
    ModelNotAllowed,
    BudgetExceeded,
    InvalidRequest,
    InvalidVoice,
    InvalidResponseFormat,
    ModelNotFound,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    DuplicateKey,
    PayloadTooLarge,
    RateLimitExceeded,
    DailyRateLimitExceeded,
    UpstreamError,
    NoAvailableKey,
    NoOpenaiKey,
    ServiceUnavailable,
    UpstreamTimeout,
    Internal,
}

impl ErrorCode {
    /// Every code, for the table test and the README.
    pub const ALL: [ErrorCode; 23] = [
        Self::MissingApiKey,
        Self::InvalidTokenFormat,
        Self::InvalidApiKey,
        Self::InsufficientScope,
        Self::ModelNotAllowed,
        Self::BudgetExceeded,
        Self::InvalidRequest,
        Self::InvalidVoice,
        Self::InvalidResponseFormat,
        Self::ModelNotFound,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::RequestTimeout,
        Self::DuplicateKey,
        Self::PayloadTooLarge,
        Self::RateLimitExceeded,
        Self::DailyRateLimitExceeded,
        Self::UpstreamError,
        Self::NoAvailableKey,
        Self::NoOpenaiKey,
        Self::ServiceUnavailable,
        Self::UpstreamTimeout,
        Self::Internal,
    ];

    /// The table: (wire code, HTTP status). `kind` follows from the status.
    const fn row(self) -> (&'static str, u16) {
        match self {
            Self::MissingApiKey => ("missing_api_key", 401),
            Self::InvalidTokenFormat => ("invalid_token_format", 401),
            Self::InvalidApiKey => ("invalid_api_key", 401),
            Self::InsufficientScope => ("insufficient_scope", 403),
            Self::ModelNotAllowed => ("model_not_allowed", 403),
            Self::BudgetExceeded => ("budget_exceeded", 402),
            Self::InvalidRequest => ("invalid_request", 400),
            Self::InvalidVoice => ("invalid_voice", 400),
            Self::InvalidResponseFormat => ("invalid_response_format", 400),
            Self::ModelNotFound => ("model_not_found", 404),
            Self::NotFound => ("not_found", 404),
            Self::MethodNotAllowed => ("method_not_allowed", 405),
            Self::RequestTimeout => ("request_timeout", 408),
            Self::DuplicateKey => ("duplicate_key", 409),
            Self::PayloadTooLarge => ("payload_too_large", 413),
            Self::RateLimitExceeded => ("rate_limit_exceeded", 429),
            Self::DailyRateLimitExceeded => ("daily_rate_limit_exceeded", 429),
            Self::UpstreamError => ("upstream_error", 502),
            Self::NoAvailableKey => ("no_available_key", 503),
            Self::NoOpenaiKey => ("no_openai_key", 503),
            Self::ServiceUnavailable => ("service_unavailable", 503),
            Self::UpstreamTimeout => ("upstream_timeout", 504),
            Self::Internal => ("internal_error", 500),
        }
    }

    pub fn as_str(self) -> &'static str {
        self.row().0
    }

    pub fn status(self) -> StatusCode {
        StatusCode::from_u16(self.row().1).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// OpenAI's `error.type` for this code, by status as `API.md` section 2 assigns them.
    pub fn kind(self) -> &'static str {
        match self.row().1 {
            401 => "authentication_error",
            402 => "budget_error",
            403 => "permission_error",
            429 => "rate_limit_error",
            500.. => "api_error",
            _ => "invalid_request_error",
        }
    }
}

/// What a handler returns on failure. `message` is for the caller; `source` only for the logs.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    code: ErrorCode,
    message: Cow<'static, str>,
    param: Option<String>,
    retry_after: Option<Duration>,
    rate_limit: Option<RateHeaders>,
    #[source]
    source: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            param: None,
            retry_after: None,
            rate_limit: None,
            source: None,
        }
    }

    /// A 500 with an opaque message; the cause is logged once when the response is rendered.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let mut err = Self::new(ErrorCode::Internal, "internal server error");
        err.source = Some(cause.into());
        err
    }

    /// 400 `invalid_request` naming the offending field in both `message` and `param`.
    pub fn invalid_field(field: &str, problem: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::InvalidRequest, format!("`{field}`: {problem}")).with_param(field)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn with_rate_limit(mut self, headers: RateHeaders) -> Self {
        self.rate_limit = Some(headers);
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

/// `X-RateLimit-Limit-Requests`, `X-RateLimit-Remaining-Requests`, `X-RateLimit-Reset` (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    pub limit: u32,
    pub remaining: u32,
    pub reset: Duration,
}

impl RateHeaders {
    /// Ours (`x-ratelimit-reset`, whole seconds) and the OpenAI SDKs' (`x-ratelimit-reset-requests`,
    /// a duration such as `1s` or `6m0s`).
    pub fn apply(&self, response: &mut actix_web::HttpResponseBuilder) {
        let reset = self.reset.as_secs() + u64::from(self.reset.subsec_nanos() > 0);
        response
            .insert_header(("x-ratelimit-limit-requests", self.limit))
            .insert_header(("x-ratelimit-remaining-requests", self.remaining))
            .insert_header(("x-ratelimit-reset", reset))
            .insert_header(("x-ratelimit-reset-requests", sdk_duration(self.reset)));
    }
}

/// A duration as OpenAI writes it: `250ms` under a second, else `7s`, `6m0s`, `1h2m3s` (whole
/// seconds, rounded up, so a client never retries early).
pub fn sdk_duration(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        let ms =
            duration.as_millis() + u128::from(!duration.subsec_nanos().is_multiple_of(1_000_000));
        return format!("{ms}ms");
    }
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<&'a str>,
    code: &'static str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        match &self.source {
            Some(cause) => tracing::error!(code = self.code.as_str(), "{cause:#}"),
            None if self.code.status().is_server_error() => {
                tracing::warn!(code = self.code.as_str(), "{}", self.message)
            }
            None => tracing::debug!(code = self.code.as_str(), "{}", self.message),
        }
        let mut response = HttpResponse::build(self.status_code());
        if self.code.status() == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if let Some(headers) = &self.rate_limit {
            headers.apply(&mut response);
        }
        // Every 429 and 503 says when to come back (1 s unless the cause knows better).
        let status = self.code.status();
        let retry_after = self
            .retry_after
            .or_else(|| matches!(status.as_u16(), 429 | 503).then_some(Duration::from_secs(1)));
        if let Some(after) = retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response.insert_header((header::RETRY_AFTER, secs.max(1)));
        }
        // The SDKs retry what is not 4xx; a spent budget stays spent.
        if status == StatusCode::PAYMENT_REQUIRED {
            response.insert_header(("x-should-retry", "false"));
        }
        response.json(Envelope {
            error: Body {
                message: &self.message,
                kind: self.code.kind(),
                param: self.param.as_deref(),
                code: self.code.as_str(),
            },
        })
    }
}

/// A database failure on an admin path: 500 to the caller, the cause to the log.
impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        ApiError::internal(err)
    }
}

/// Query strings that do not parse: 400 naming the problem, in the envelope.
pub fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(
        ErrorCode::InvalidRequest,
        format!("invalid query string: {err}"),
    )
    .into()
}

/// Path segments that do not parse (a non-numeric id, bytes that are not UTF-8): 404, since no
/// object can have that id.
pub fn path_error(err: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(ErrorCode::NotFound, format!("no such object: {err}")).into()
}

/// The JSON 404 for routes that do not exist.
pub async fn unknown_route(req: HttpRequest) -> HttpResponse {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no route for {} {}", req.method(), req.path()),
    )
    .error_response()
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;
    use std::collections::BTreeSet;

    /// `(status, code)` pairs from the error table of the repository's `docs/API.md`.
    fn api_md_codes() -> BTreeSet<(u16, String)> {
        let text = include_str!("../docs/API.md");
        let mut pairs = BTreeSet::new();
        for line in text
            .lines()
            .filter(|l| l.starts_with("| 4") || l.starts_with("| 5"))
        {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let status: u16 = cells[1].parse().expect("status column");
            for code in cells[2].split('`').skip(1).step_by(2) {
                pairs.insert((status, code.to_owned()));
            }
        }
        pairs
    }

    #[test]
    fn the_table_matches_api_md_line_for_line() {
        let ours: BTreeSet<(u16, String)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.status().as_u16(), c.as_str().to_owned()))
            .collect();
        assert_eq!(ours, api_md_codes());
    }

    #[test]
    fn types_follow_api_md_section_2() {
        let cases = [
            (ErrorCode::InvalidApiKey, "authentication_error"),
            (ErrorCode::BudgetExceeded, "budget_error"),
            (ErrorCode::ModelNotAllowed, "permission_error"),
            (ErrorCode::RateLimitExceeded, "rate_limit_error"),
            (ErrorCode::NotFound, "invalid_request_error"),
            (ErrorCode::DuplicateKey, "invalid_request_error"),
            (ErrorCode::UpstreamTimeout, "api_error"),
        ];
        for (code, kind) in cases {
            assert_eq!(code.kind(), kind, "{code:?}");
        }
    }
}

#[cfg(test)]
mod sdk_tests {
    use super::sdk_duration;
    use std::time::Duration;

    #[test]
    fn durations_read_as_the_openai_sdks_write_them() {
        let ms = Duration::from_millis;
        assert_eq!(sdk_duration(ms(250)), "250ms");
        assert_eq!(sdk_duration(Duration::from_micros(1)), "1ms");
        assert_eq!(sdk_duration(ms(1000)), "1s");
        assert_eq!(
            sdk_duration(ms(1001)),
            "2s",
            "rounded up: never retry early"
        );
        assert_eq!(sdk_duration(ms(360_000)), "6m0s");
        assert_eq!(sdk_duration(ms(3_723_000)), "1h2m3s");
    }
}
