//! The operator's page (admin token): brands (create, rotate; each new credential shown once)
//! and the alias chains (edited as one model per line, applied at once). Pool keys are still
//! managed through `/api/v1/admin/pool-keys`.

use super::pages::{message, render, see_other, signed_ctx};
use super::session::{self, Signed};
use crate::brands::manage::{self, NewBrand};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use minijinja::{Value, context};
use std::collections::HashMap;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/dashboard/operator", web::get().to(show))
        .route("/dashboard/operator/brands", web::post().to(create_brand))
        .route(
            "/dashboard/operator/brands/{client_id}/rotate",
            web::post().to(rotate),
        )
        .route(
            "/dashboard/operator/aliases/{alias_id:.+}",
            web::post().to(set_chain),
        );
}

/// The operator's session, or the answer to send instead.
async fn operator_session(state: &AppState, req: &HttpRequest) -> Result<Signed, HttpResponse> {
    let signed = session::signed_in(state, req).await?;
    if signed.brand().is_some() {
        return Err(message(
            StatusCode::FORBIDDEN,
            Some(&signed),
            "Operator only",
            "This page belongs to the operator: sign in with the admin token.",
        ));
    }
    Ok(signed)
}

/// The operator's session for a form of this page, checked.
async fn checked(
    state: &AppState,
    req: &HttpRequest,
    form: &HashMap<String, String>,
) -> Result<Signed, HttpResponse> {
    let signed = operator_session(state, req).await?;
    if !signed.form_is_ours(state, req, form.get("_csrf").map(String::as_str)) {
        return Err(super::pages::refused(Some(&signed)));
    }
    Ok(signed)
}

struct Shown {
    status: StatusCode,
    notice: Option<(&'static str, String)>,
    credential: Option<(String, String)>,
}

async fn page(state: &AppState, signed: &Signed, shown: Shown) -> HttpResponse {
    let brands = match manage::list_brands(&state.db).await {
        Ok(brands) => brands,
        Err(err) => return err.error_response(),
    };
    let aliases: Vec<Value> = state
        .catalog
        .load()
        .aliases()
        .iter()
        .map(|a| context! { id => a.id.clone(), use_case => a.use_case.clone(), models => a.models.clone() })
        .collect();
    render(
        shown.status,
        "operator.html",
        context! {
            title => "Operator", section => "operator", signed => signed_ctx(signed),
            brands => Value::from(minijinja::value::Serde(&brands)), aliases,
            notice => shown.notice.map(|(class, text)| context! { class, text }),
            credential => shown.credential.map(|(brand, secret)| context! { brand, secret }),
        },
    )
}

pub async fn show(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match operator_session(&state, &req).await {
        Ok(signed) => {
            page(
                &state,
                &signed,
                Shown {
                    status: StatusCode::OK,
                    notice: None,
                    credential: None,
                },
            )
            .await
        }
        Err(answer) => answer,
    }
}

fn refused(err: &crate::error::ApiError) -> Shown {
    Shown {
        status: StatusCode::BAD_REQUEST,
        notice: Some(("error", err.to_string())),
        credential: None,
    }
}

pub async fn create_brand(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let signed = match checked(&state, &req, &form).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let text = |name: &str| {
        form.get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let anchor = match text("billing_anchor_day").map(|d| d.parse::<i32>()) {
        None => None,
        Some(Ok(day)) => Some(day),
        Some(Err(_)) => {
            let err = crate::error::ApiError::invalid_field(
                "billing_anchor_day",
                "must be between 1 and 28",
            );
            return page(&state, &signed, refused(&err)).await;
        }
    };
    let new = NewBrand {
        name: text("name").unwrap_or_default(),
        contact_email: text("contact_email"),
        billing_anchor_day: anchor,
    };
    let shown = match manage::create_brand(&state.db, &state.auth, new, state.clock.now()).await {
        Ok((brand, credential)) => {
            tracing::info!(client_id = %brand.client_id, "brand created from the dashboard");
            Shown {
                status: StatusCode::CREATED,
                notice: None,
                credential: Some((brand.name, credential.expose().to_owned())),
            }
        }
        Err(err) if err.code().status().is_client_error() => refused(&err),
        Err(err) => return err.error_response(),
    };
    page(&state, &signed, shown).await
}

pub async fn rotate(
    state: web::Data<AppState>,
    req: HttpRequest,
    client_id: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let signed = match checked(&state, &req, &form).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let shown = match manage::rotate_credential(
        &state.db,
        &state.auth,
        &client_id,
        state.clock.now(),
    )
    .await
    {
        Ok((brand, credential)) => {
            tracing::info!(client_id = %brand.client_id, "brand credential rotated from the dashboard");
            Shown {
                status: StatusCode::OK,
                notice: None,
                credential: Some((brand.name, credential.expose().to_owned())),
            }
        }
        Err(err) if err.code().status().is_client_error() => refused(&err),
        Err(err) => return err.error_response(),
    };
    page(&state, &signed, shown).await
}

pub async fn set_chain(
    state: web::Data<AppState>,
    req: HttpRequest,
    alias_id: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let signed = match checked(&state, &req, &form).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let models: Vec<String> = form
        .get("models")
        .map(|text| {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    match crate::catalog::admin::set_chain(&state, &alias_id, models).await {
        Ok(()) => see_other("/dashboard/operator"),
        Err(err) if err.code().status().is_client_error() => {
            page(&state, &signed, refused(&err)).await
        }
        Err(err) => err.error_response(),
    }
}
