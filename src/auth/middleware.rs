//! The authentication middlewares mounted by `routes.rs` on whole scopes, so a route cannot
//! forget them and 401 always comes before any body is read or validated.

use super::bearer::{Credential, parse_bearer};
use super::principal::Principal;
use super::scope::Scope;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use futures_util::future::LocalBoxFuture;

/// Marks a request authenticated as the operator (set by [`operator_only`]).
#[derive(Debug, Clone, Copy)]
pub struct Operator;

type MiddlewareFuture = LocalBoxFuture<'static, Result<ServiceResponse<BoxBody>, Error>>;

/// Brand routes: a client credential or an agent token holding `scope`, else 401/403.
pub fn require(scope: Scope) -> impl Fn(ServiceRequest, Next<BoxBody>) -> MiddlewareFuture {
    move |req, next| {
        Box::pin(async move {
            let principal = match authenticate(&req).and_then(|p| p.require(scope).map(|()| p)) {
                Ok(principal) => principal,
                Err(refused) => return refuse(req, refused),
            };
            req.extensions_mut().insert(principal);
            next.call(req).await
        })
    }
}

/// Public routes that also accept a token: without an Authorization header the request passes
/// anonymously; with one, it must authenticate and hold `scope` (so a brand sees its own view).
pub fn optional(scope: Scope) -> impl Fn(ServiceRequest, Next<BoxBody>) -> MiddlewareFuture {
    move |req, next| {
        Box::pin(async move {
            if req.headers().contains_key(AUTHORIZATION) {
                match authenticate(&req).and_then(|p| p.require(scope).map(|()| p)) {
                    Ok(principal) => req.extensions_mut().insert(principal),
                    Err(refused) => return refuse(req, refused),
                };
            }
            next.call(req).await
        })
    }
}

/// Operator routes: the configured admin token, compared as a digest in constant time.
pub async fn operator_only(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    match operator(&req) {
        Ok(()) => {
            req.extensions_mut().insert(Operator);
            next.call(req).await
        }
        Err(refused) => refuse(req, refused),
    }
}

fn operator(req: &ServiceRequest) -> Result<(), ApiError> {
    let state = app_state(req)?;
    let header = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    let token = match parse_bearer(header)? {
        Credential::Pat(t) | Credential::Opaque(t) => t,
        Credential::Triple { .. } => return Err(not_operator()),
    };
    let Some(expected) = state.operator_token.as_ref() else {
        return Err(ApiError::new(
            ErrorCode::InvalidApiKey,
            "the operator API is disabled: set SPIDERGATE_ADMIN_TOKEN to enable it",
        ));
    };
    if !expected.matches(&super::Digest::of(token)) {
        return Err(not_operator());
    }
    Ok(())
}

/// A refusal answered here, as a response: the middlewares around this one (request id, metrics,
/// logging) see it like any other answer, where an `Err` would pass them by.
fn refuse(req: ServiceRequest, refused: ApiError) -> Result<ServiceResponse<BoxBody>, Error> {
    use actix_web::ResponseError;
    let response = refused.error_response();
    Ok(req.into_response(response))
}

fn authenticate(req: &ServiceRequest) -> Result<Principal, ApiError> {
    let state = app_state(req)?;
    if let Some(replicas) = &state.replicas {
        // Cached credentials are only as good as this replica's last look at the change log.
        replicas.require_current()?;
    }
    let header = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    let credential = parse_bearer(header)?;
    state
        .auth
        .authenticate(&credential, state.clock.now().timestamp())
}

fn app_state(req: &ServiceRequest) -> Result<&web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState is not registered")))
}

fn not_operator() -> ApiError {
    ApiError::new(ErrorCode::InvalidApiKey, "not the operator token")
}
