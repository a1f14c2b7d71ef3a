//! `Principal`: the authenticated caller, as handlers see it.

use super::cache::TokenEntry;
use super::scope::{Scope, Scopes};
use crate::error::{ApiError, ErrorCode};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use std::future::{Ready, ready};
use std::sync::Arc;

/// Who is calling: always a brand; with `token` set when the caller used an agent token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub brand_id: i32,
    pub client_id: Arc<str>,
    pub scopes: Scopes,
    /// The agent token used, with its limits; `None` for a client credential.
    pub token: Option<Arc<TokenEntry>>,
}

impl Principal {
    /// 403 `insufficient_scope` unless the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(scope) {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorCode::InsufficientScope,
            format!(
                "this token lacks the `{}` scope needed here",
                scope.as_str()
            ),
        ))
    }
}

/// Reads the `Principal` the authentication middleware stored. Only routes behind
/// [`super::require`] have one; elsewhere this is a programming error, answered as 500.
impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let principal = req.extensions().get::<Principal>().cloned();
        ready(principal.ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "route {} is not behind authentication",
                req.path()
            ))
        }))
    }
}
