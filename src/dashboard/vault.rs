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
        .route("/dashboard/gate/vault/{id}/delete", web::post().to(delete));
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
            free, chosen, notice => notice.map(|n| context! { class => n.class, text => n.text }),
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
    let signed = match brand_session(&state, &req).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    if !signed.form_is_ours(&state, &req, form.get("_csrf").map(String::as_str)) {
        return super::pages::message(
            StatusCode::FORBIDDEN,
            Some(&signed),
            "Refused",
            "This form did not come from this dashboard: reload and try again.",
        );
    }
    let Some(principal) = signed.brand() else {
        return HttpResponse::Forbidden().finish();
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
    let signed = match brand_session(&state, &req).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    if !signed.form_is_ours(&state, &req, form.get("_csrf").map(String::as_str)) {
        return super::pages::message(
            StatusCode::FORBIDDEN,
            Some(&signed),
            "Refused",
            "This form did not come from this dashboard: reload and try again.",
        );
    }
    let Some(principal) = signed.brand() else {
        return HttpResponse::Forbidden().finish();
    };
    match manage::delete_key(&state.vault, Owner::Brand(principal.brand_id), *id).await {
        Ok(()) => see_other("/dashboard/gate/vault"),
        Err(err) => err.error_response(),
    }
}
