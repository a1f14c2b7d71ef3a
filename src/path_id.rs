//! `PathId`: the `{id}` segment of a route, decimal digits only.
//!
//! `web::Path<i32>` parses with `i32::from_str`, which also takes `+1` (so
//! `DELETE /api/v1/agent-keys/+1` revoked token 1). An id is `[0-9]+` that fits an `i32`;
//! anything else is 404 `not_found`, since no object can have it.

use crate::error::{ApiError, ErrorCode};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use std::future::{Ready, ready};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathId(i32);

impl PathId {
    pub fn parse(segment: &str) -> Option<PathId> {
        if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        segment.parse().ok().map(PathId)
    }
}

impl std::ops::Deref for PathId {
    type Target = i32;

    fn deref(&self) -> &i32 {
        &self.0
    }
}

impl FromRequest for PathId {
    type Error = ApiError;
    type Future = Ready<Result<PathId, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let segment = req.match_info().get("id").unwrap_or_default();
        ready(PathId::parse(segment).ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                "no such object: ids are decimal digits",
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::PathId;

    #[test]
    fn only_plain_decimal_digits_are_ids() {
        assert_eq!(PathId::parse("42").map(|id| *id), Some(42));
        assert_eq!(PathId::parse("007").map(|id| *id), Some(7));
        for bad in ["+1", "-1", " 1", "1 ", "0x1", "1e3", "", "99999999999", "١"] {
            assert_eq!(PathId::parse(bad), None, "{bad:?}");
        }
    }
}
