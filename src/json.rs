//! `Json<T>` and `Body`: the request-body extractors every handler uses instead of `web::Json`
//! and `web::Bytes`.
//!
//! It exists so a bad body always gets the envelope with the offending field named
//! (`serde_path_to_error`), an oversized one gets 413 `payload_too_large` before it is read, and a
//! client never sees actix's plain-text extractor errors.

use crate::error::{ApiError, ErrorCode};
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

/// A JSON body deserialized into `T`.
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // `web::Bytes` honours the app's `PayloadConfig` limit, checking Content-Length up front.
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = body.await.map_err(body_error)?;
            parse(&bytes).map(Json)
        })
    }
}

/// The raw body, as `web::Bytes` reads it (the app's `PayloadConfig` limit, Content-Length checked
/// up front, a chunked body cut off at the limit), with its failures in the envelope: 413
/// `payload_too_large`, 408 for a body too slow to arrive (see `body::guard`).
pub struct Body(pub web::Bytes);

impl FromRequest for Body {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move { body.await.map(Body).map_err(body_error) })
    }
}

/// For `#[serde(default, deserialize_with = "crate::json::present")]` on `Option<Option<T>>`:
/// tells an absent field (`None`) from an explicit `null` (`Some(None)`), as PATCH bodies need.
pub fn present<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// A request-count limit: at least 1, or `None` for unlimited (0 would silently block everything).
pub fn positive_limit(field: &str, value: Option<u32>) -> Result<Option<u32>, ApiError> {
    match value {
        Some(0) => Err(ApiError::invalid_field(
            field,
            "must be at least 1 (or null for no limit)",
        )),
        other => Ok(other),
    }
}

/// Deserializes `bytes`, naming the field that failed.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "request body is empty; expected JSON",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("invalid JSON body: {inner}"),
            )
        } else if path == "." {
            ApiError::new(ErrorCode::InvalidRequest, inner.to_string())
        } else {
            ApiError::invalid_field(&path, inner)
        }
    })?;
    de.end().map_err(|err| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("invalid JSON body: {err}"),
        )
    })?;
    Ok(value)
}

fn body_error(err: actix_web::Error) -> ApiError {
    match err.as_error::<PayloadError>() {
        Some(PayloadError::Overflow) => ApiError::new(
            ErrorCode::PayloadTooLarge,
            "request body is larger than the configured limit",
        ),
        Some(PayloadError::Io(io)) if io.kind() == std::io::ErrorKind::TimedOut => ApiError::new(
            ErrorCode::RequestTimeout,
            "the request body arrived too slowly",
        ),
        _ => ApiError::new(
            ErrorCode::InvalidRequest,
            format!("could not read the request body: {err}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::error::ErrorCode;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        rpm: Option<u32>,
    }

    #[test]
    fn errors_name_the_field_or_say_the_json_is_broken() {
        let cases: [(&[u8], &str); 5] = [
            (b"{\"name\":\"a\",\"rpm\":1e400}", "invalid JSON"),
            (b"{\"name\":\"a\",\"rpm\":99999999999999999999}", "`rpm`"),
            (b"{\"rpm\":1}", "`name`"),
            (b"\xff\xfe garbage", "invalid JSON"),
            (b"{\"name\":\"a\"} trailing", "invalid JSON"),
        ];
        for (body, expected) in cases {
            let err = parse::<Body>(body).expect_err("must fail");
            assert_eq!(err.code(), ErrorCode::InvalidRequest);
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
    }
}
