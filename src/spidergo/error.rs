//! SpiderGo's one error type: the seed's envelope `{"message": …}` with the seed's statuses
//! (400, 401, 403, 404, 409, 429, 500), and the key's quota headers when it has them.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use std::borrow::Cow;

/// What a SpiderGo handler returns on failure. `message` is for the caller; `source` is only
/// logged (a 500 says nothing more than "internal error").
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct GoError {
    status: StatusCode,
    message: Cow<'static, str>,
    quota: Option<Quota>,
    #[source]
    source: Option<anyhow::Error>,
}

impl GoError {
    fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> GoError {
        GoError {
            status,
            message: message.into(),
            quota: None,
            source: None,
        }
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> GoError {
        GoError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> GoError {
        GoError::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> GoError {
        GoError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<Cow<'static, str>>) -> GoError {
        GoError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<Cow<'static, str>>) -> GoError {
        GoError::new(StatusCode::CONFLICT, message)
    }

    /// 429: the key's day is spent; `Retry-After` comes from the quota.
    pub fn quota_spent(quota: Quota) -> GoError {
        let message = format!(
            "this API key's daily quota of {} requests is used up; it renews at 00:00 UTC",
            quota.limit
        );
        GoError::new(StatusCode::TOO_MANY_REQUESTS, message).with_quota(quota)
    }

    /// A 500 whose cause goes to the log, never to the caller.
    pub fn internal(cause: impl Into<anyhow::Error>) -> GoError {
        let mut err = GoError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        err.source = Some(cause.into());
        err
    }

    pub fn with_quota(mut self, quota: Quota) -> GoError {
        self.quota = Some(quota);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<sea_orm::DbErr> for GoError {
    fn from(err: sea_orm::DbErr) -> GoError {
        GoError::internal(err)
    }
}

impl ResponseError for GoError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(cause) = &self.source {
            tracing::error!("spidergo: {cause:#}");
        }
        let mut response = HttpResponse::build(self.status);
        if let Some(quota) = &self.quota {
            quota.apply(&mut response);
            if self.status == StatusCode::TOO_MANY_REQUESTS {
                response.insert_header(("retry-after", quota.reset_secs));
            }
        }
        response.json(serde_json::json!({ "message": self.message }))
    }
}

/// A key's day: its limit, what is left, and the seconds until 00:00 UTC renews it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
}

impl Quota {
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds, as the
    /// gateway's own `x-ratelimit-reset`).
    pub fn apply(&self, response: &mut HttpResponseBuilder) {
        response
            .insert_header(("x-ratelimit-limit", self.limit))
            .insert_header(("x-ratelimit-remaining", self.remaining))
            .insert_header(("x-ratelimit-reset", self.reset_secs));
    }
}

/// A JSON request body as `T`, or a 400 naming what is wrong (an unknown field, a missing one,
/// a wrong type) with its path.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, GoError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(GoError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let mut reader = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut reader).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path == "." {
            GoError::bad_request(format!("invalid request body: {inner}"))
        } else {
            GoError::bad_request(format!("invalid request body at `{path}`: {inner}"))
        }
    })
}
