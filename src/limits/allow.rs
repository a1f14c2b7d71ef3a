//! Model allow-lists and free-only tokens: checked before anything else happens.

use crate::auth::Principal;
use crate::catalog::Catalog;
use crate::error::{ApiError, ErrorCode};

/// 403 `model_not_allowed` unless the caller's token may request `requested`.
///
/// An allow-listed alias permits its chain through that alias; a concrete model must be listed
/// itself. A free-only token may call a free model, or an alias with at least one free model
/// (routing then uses only its free models).
pub fn check_model(
    principal: &Principal,
    catalog: &Catalog,
    requested: &str,
) -> Result<(), ApiError> {
    let Some(token) = principal.token.as_deref() else {
        return Ok(());
    };
    let allowed = &token.limits.allowed_models;
    if !allowed.is_empty() && !allowed.iter().any(|m| m == requested) {
        return Err(ApiError::new(
            ErrorCode::ModelNotAllowed,
            format!(
                "`{requested}` is not allowed for this token; allowed: {}",
                allowed.join(", ")
            ),
        )
        .with_param("model"));
    }
    if token.limits.free_models_only && !has_free_model(catalog, requested) {
        return Err(ApiError::new(
            ErrorCode::ModelNotAllowed,
            format!("this token may use free models only and `{requested}` is not free; see GET /api/gate/v1/models?free_only=true or the alias spideriq/free"),
        )
        .with_param("model"));
    }
    Ok(())
}

fn has_free_model(catalog: &Catalog, requested: &str) -> bool {
    match catalog.alias(requested) {
        Some(alias) => alias
            .models
            .iter()
            .filter_map(|m| catalog.model(m))
            .any(|m| m.free_tier),
        // Unknown ids pass here so the caller gets the precise 404 `model_not_found`.
        None => catalog.model(requested).is_none_or(|m| m.free_tier),
    }
}
