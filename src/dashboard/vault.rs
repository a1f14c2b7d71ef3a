//! The Vault page: the brand's provider keys (masked previews, live health, limits, delete), the
//! provider catalog with search, categories and a free-tier filter, and adding a key with
//! "Test connection" before saving. Calls the vault's own functions, like the API.

use super::pages::{brand_session, render, see_other, signed_ctx};
use crate::state::AppState;
use crate::vault::{self as manage, Owner};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use minijinja::{Value, context};
use std::collections::{BTreeSet, HashMap};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/dashboard/gate/vault", web::get().to(show))
        .route("/dashboard/gate/vault", web::post().to(add))
        .route("/dashboard/gate/vault/{id}/delete", web::post().to(delete))
        .route(
            "/dashboard/gate/vault/{id}/settings",
            web::post().to(settings),
        )
        .route(
            "/dashboard/gate/vault/{id}/reset-health",
            web::post().to(reset_health),
        )
        .route("/dashboard/gate/vault/invites", web::post().to(invite))
        .route(
            "/dashboard/gate/vault/invites/{id}/revoke",
            web::post().to(revoke_invite),
        );
}

/// A line above the page: what a test or a save came to.
struct Notice {
    class: &'static str,
    text: String,
}

async fn page(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    notice: Option<Notice>,
    chosen: Option<&str>,
) -> HttpResponse {
    let signed = match brand_session(state, req).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let Some(principal) = signed.brand() else {
        return HttpResponse::Forbidden().finish();
    };
    let records = match manage::list_keys(&state.vault, Owner::Brand(principal.brand_id)).await {
        Ok(records) => records,
        Err(err) => return err.error_response(),
    };
    let keys = crate::vault::admin::views(state, records).await;
    let invites = match crate::invites::admin::invites(state, principal).await {
        Ok(invites) => invites,
        Err(err) => return err.error_response(),
    };
    let query: HashMap<String, String> = web::Query::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default();
    let q = query
        .get("q")
        .map(|q| q.trim().to_lowercase())
        .unwrap_or_default();
    let category = query.get("category").cloned().unwrap_or_default();
    let free = query.contains_key("free");
    let catalog = state.catalog.load();
    let categories: BTreeSet<String> = catalog
        .providers()
        .iter()
        .map(|p| p.category.clone())
        .collect();
    let providers: Vec<Value> = catalog
        .providers()
        .iter()
        .filter(|p| q.is_empty() || p.label.to_lowercase().contains(&q) || p.id.contains(&q))
        .filter(|p| category.is_empty() || p.category == category)
        .filter(|p| !free || p.free_tier)
        .map(|p| {
            context! { id => p.id.clone(), label => p.label.clone(), category => p.category.clone(), free_tier => p.free_tier,
            signup_url => p.signup_url.clone(), oauth => p.oauth }
        })
        .collect();
    let all_providers: Vec<Value> = catalog
        .providers()
        .iter()
        .map(|p| context! { id => p.id.clone(), label => p.label.clone() })
        .collect();
    let chosen = chosen
        .or(query.get("provider").map(String::as_str))
        .and_then(|id| catalog.provider(id))
        .filter(|p| !p.oauth)
        .map(|p| {
            context! { id => p.id.clone(), label => p.label.clone(), key_hint => p.key_hint.clone(), signup_url => p.signup_url.clone(),
            credential_fields => p.credential_fields.clone(), optional_credential_fields => p.optional_credential_fields.clone() }
        });
    render(
        status,
        "vault.html",
        context! {
            title => "Vault", section => "vault", signed => signed_ctx(&signed),
            keys => Value::from(minijinja::value::Serde(&keys)), providers,
            categories => categories.into_iter().collect::<Vec<_>>(), q, category,
            free, chosen, all_providers, invites => Value::from(minijinja::value::Serde(&invites)),
            notice => notice.map(|n| context! { class => n.class, text => n.text }),
        },
    )
}

pub async fn show(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    page(&state, &req, StatusCode::OK, None, None).await
}

/// "Test connection" tries the pasted credentials and says what the provider answered (the
/// fields are never echoed back into the page); "Save" stores the key.
pub async fn add(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let principal = match checked_form(&state, &req, &form).await {
        Ok(principal) => principal,
        Err(answer) => return answer,
    };
    let provider = form.get("provider_name").cloned().unwrap_or_default();
    let credentials: serde_json::Map<String, serde_json::Value> = form
        .iter()
        .filter_map(|(name, value)| {
            Some((
                name.strip_prefix("credential.")?.to_owned(),
                value.trim().into(),
            ))
        })
        .filter(|(_, value): &(String, serde_json::Value)| {
            value.as_str().is_some_and(|v| !v.is_empty())
        })
        .collect();
    let credentials = serde_json::Value::Object(credentials);
    let notice = if form.get("action").map(String::as_str) == Some("test") {
        match crate::vault::admin::try_credentials(&state, Some(&provider), Some(&credentials))
            .await
        {
            Ok((true, ms, _)) => Notice {
                class: "warning",
                text: format!(
                    "Test connection: the provider accepted the key ({ms} ms). Paste it again and save it."
                ),
            },
            Ok((false, _, error)) => Notice {
                class: "error",
                text: format!("Test connection failed: {}", error.unwrap_or_default()),
            },
            Err(err) => Notice {
                class: "error",
                text: err.to_string(),
            },
        }
    } else {
        let mut body = serde_json::json!({ "provider_name": provider, "credentials": credentials });
        if let Some(label) = form
            .get("key_label")
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
        {
            body["key_label"] = label.into();
        }
        let fields = serde_json::from_value::<manage::IntegrationFields>(body);
        let created = match fields {
            Ok(fields) => {
                manage::create_key(
                    &state.vault,
                    &state.catalog.load(),
                    Owner::Brand(principal.brand_id),
                    fields,
                )
                .await
            }
            Err(err) => Err(crate::error::ApiError::new(
                crate::error::ErrorCode::InvalidRequest,
                err.to_string(),
            )),
        };
        match created {
            Ok(record) => {
                tracing::info!(integration_id = record.id, provider = %record.provider, "provider key added from the dashboard");
                return see_other("/dashboard/gate/vault");
            }
            Err(err) if err.code().status().is_client_error() => Notice {
                class: "error",
                text: err.to_string(),
            },
            Err(err) => return err.error_response(),
        }
    };
    let status = if notice.class == "error" {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    page(&state, &req, status, Some(notice), Some(&provider)).await
}

pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<i32>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let principal = match checked_form(&state, &req, &form).await {
        Ok(principal) => principal,
        Err(answer) => return answer,
    };
    let result = manage::delete_key(&state.vault, Owner::Brand(principal.brand_id), *id).await;
    done(&state, &req, result).await
}

/// A form of this page, checked: the brand's principal, or the answer to send instead.
async fn checked_form(
    state: &AppState,
    req: &HttpRequest,
    form: &HashMap<String, String>,
) -> Result<crate::auth::Principal, HttpResponse> {
    let signed = brand_session(state, req).await?;
    if !signed.form_is_ours(state, req, form.get("_csrf").map(String::as_str)) {
        return Err(super::pages::refused(Some(&signed)));
    }
    signed
        .brand()
        .cloned()
        .ok_or_else(|| HttpResponse::Forbidden().finish())
}

/// After a form: back to the page, or the page again with what was wrong.
async fn done(
    state: &AppState,
    req: &HttpRequest,
    result: Result<(), crate::error::ApiError>,
) -> HttpResponse {
    match result {
        Ok(()) => see_other("/dashboard/gate/vault"),
        Err(err) if err.code().status().is_client_error() => {
            let notice = Notice {
                class: "error",
                text: err.to_string(),
            };
            page(state, req, StatusCode::BAD_REQUEST, Some(notice), None).await
        }
        Err(err) => err.error_response(),
    }
}

/// A key's switches and limits (an empty limit field clears the limit).
pub async fn settings(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<i32>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let principal = match checked_form(&state, &req, &form).await {
        Ok(principal) => principal,
        Err(answer) => return answer,
    };
    let limit = |name: &str| -> Result<serde_json::Value, crate::error::ApiError> {
        match form.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => Ok(serde_json::Value::Null),
            Some(v) => v
                .parse::<u32>()
                .map(serde_json::Value::from)
                .map_err(|_| crate::error::ApiError::invalid_field(name, "must be a whole number")),
        }
    };
    let result = async {
        let body = serde_json::json!({
            "is_active": form.contains_key("is_active"),
            "is_primary": form.contains_key("is_primary"),
            "share_with_pool": form.contains_key("share_with_pool"),
            "minute_limit": limit("minute_limit")?,
            "daily_limit": limit("daily_limit")?,
        });
        let fields = serde_json::from_value::<manage::IntegrationFields>(body).map_err(|err| {
            crate::error::ApiError::new(crate::error::ErrorCode::InvalidRequest, err.to_string())
        })?;
        crate::vault::admin::edit_key(&state, Owner::Brand(principal.brand_id), *id, fields)
            .await?;
        Ok(())
    };
    done(&state, &req, result.await).await
}

pub async fn reset_health(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<i32>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let principal = match checked_form(&state, &req, &form).await {
        Ok(principal) => principal,
        Err(answer) => return answer,
    };
    let result =
        crate::vault::admin::reset_key_health(&state, Owner::Brand(principal.brand_id), *id).await;
    done(&state, &req, result.map(|_| ())).await
}

pub async fn invite(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let principal = match checked_form(&state, &req, &form).await {
        Ok(principal) => principal,
        Err(answer) => return answer,
    };
    let text = |name: &str| form.get(name).map(|v| v.trim()).unwrap_or_default();
    let message = Some(text("message")).filter(|m| !m.is_empty());
    let result = crate::invites::admin::invite(
        &state,
        &principal,
        text("email"),
        text("provider_name"),
        message,
    )
    .await;
    done(&state, &req, result.map(|_| ())).await
}

pub async fn revoke_invite(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<i32>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let principal = match checked_form(&state, &req, &form).await {
        Ok(principal) => principal,
        Err(answer) => return answer,
    };
    let result = crate::invites::admin::revoke(&state, &principal, *id).await;
    done(&state, &req, result.map(|_| ())).await
}
