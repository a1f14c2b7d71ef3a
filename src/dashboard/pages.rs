//! The dashboard's pages: sign-in, sign-out, and the agent keys (connect, list, revoke).

use super::assets;
use super::session::{self, Signed};
use crate::auth::{Scope, Scopes};
use crate::state::AppState;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::{Environment, Value, context};
use serde::Deserialize;
use std::sync::OnceLock;

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("layout.html", include_str!("templates/layout.html")),
            ("login.html", include_str!("templates/login.html")),
            ("keys.html", include_str!("templates/keys.html")),
            ("minted.html", include_str!("templates/minted.html")),
            ("message.html", include_str!("templates/message.html")),
            ("settings.html", include_str!("templates/settings.html")),
            ("rotated.html", include_str!("templates/rotated.html")),
            ("go_signin.html", include_str!("templates/go_signin.html")),
            ("go_home.html", include_str!("templates/go_home.html")),
            ("traces.html", include_str!("templates/traces.html")),
            ("trace.html", include_str!("templates/trace.html")),
            ("vault.html", include_str!("templates/vault.html")),
            ("usage.html", include_str!("templates/usage.html")),
            ("operator.html", include_str!("templates/operator.html")),
        ] {
            if let Err(err) = env.add_template(name, source) {
                tracing::error!("dashboard template {name}: {err}");
            }
        }
        env
    })
}

/// The headers every page carries: only our own scripts and styles, no framing, no caching
/// (pages hold account data, and the minted page a secret), no referrer.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

pub(super) fn render(status: StatusCode, template: &str, ctx: Value) -> HttpResponse {
    let ctx = context! { assets => assets::urls(), ..ctx };
    match templates()
        .get_template(template)
        .and_then(|t| t.render(ctx))
    {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::X_FRAME_OPTIONS, "DENY"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((header::REFERRER_POLICY, "no-referrer"))
            .body(html),
        Err(err) => {
            tracing::error!("dashboard: rendering {template}: {err}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

pub(super) fn signed_ctx(signed: &Signed) -> Value {
    context! { csrf => signed.csrf.clone(), brand => signed.brand().is_some() }
}

pub(super) fn message(
    status: StatusCode,
    signed: Option<&Signed>,
    title: &str,
    text: &str,
) -> HttpResponse {
    let signed = signed.map(signed_ctx);
    render(status, "message.html", context! { title, text, signed })
}

pub(super) fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

/// A form that is not ours (another site, or without this session's token).
pub(super) fn refused(signed: Option<&Signed>) -> HttpResponse {
    message(
        StatusCode::FORBIDDEN,
        signed,
        "Refused",
        "This form did not come from this dashboard, or the page was too old: reload and try again.",
    )
}

pub async fn home(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let signed = match session::signed_in(&state, &req).await {
        Ok(signed) => signed,
        Err(redirect) => return redirect,
    };
    match signed.brand() {
        Some(_) => see_other("/dashboard/gate/keys"),
        None => see_other("/dashboard/operator"),
    }
}

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Only a dashboard path on this site (never `//elsewhere` or a full URL).
fn safe_next(next: Option<&str>) -> &str {
    next.filter(|n| n.starts_with("/dashboard") && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or("/dashboard")
}

pub async fn login_page(query: web::Query<Next>) -> HttpResponse {
    let next = safe_next(query.next.as_deref());
    render(
        StatusCode::OK,
        "login.html",
        context! { title => "Sign in", next },
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    secret: String,
    next: Option<String>,
}

pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    if !crate::auth::same_site(&req, &state.config.server.public_url) {
        return refused(None);
    }
    let next = safe_next(form.next.as_deref());
    let Some(brand_id) = session::who_is(&state, &form.secret) else {
        tracing::info!("dashboard: a sign-in was refused");
        let error = "That is not a brand credential, an agent token with the system scope, or the admin token.";
        return render(
            StatusCode::UNAUTHORIZED,
            "login.html",
            context! { title => "Sign in", next, error },
        );
    };
    match session::start(&state, brand_id).await {
        Ok(cookie) => {
            tracing::info!(brand_id, "dashboard: signed in");
            let mut response = see_other(next);
            let _ = response.add_cookie(&cookie);
            response
        }
        Err(err) => {
            tracing::error!("dashboard: starting a session: {err:#}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let signed = match session::signed_in(&state, &req).await {
        Ok(signed) => signed,
        Err(redirect) => return redirect,
    };
    if !signed.form_is_ours(&state, &req, form.csrf.as_deref()) {
        return refused(Some(&signed));
    }
    let cookie = session::end(&state, Some(&signed)).await;
    let mut response = see_other("/dashboard/login");
    let _ = response.add_cookie(&cookie);
    response
}

/// The signed-in brand's session, or the page to answer instead (login, or "brands only").
pub(super) async fn brand_session(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Signed, HttpResponse> {
    let signed = session::signed_in(state, req).await?;
    if signed.brand().is_none() {
        return Err(message(
            StatusCode::FORBIDDEN,
            Some(&signed),
            "Brands only",
            "This page belongs to a brand: sign in with the brand's credential.",
        ));
    }
    Ok(signed)
}

pub async fn keys(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    keys_page(&state, &req, "keys").await
}

/// The same list, the second door: Settings → Members → Agents.
pub async fn members(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    keys_page(&state, &req, "members").await
}

async fn keys_page(state: &AppState, req: &HttpRequest, section: &str) -> HttpResponse {
    let signed = match brand_session(state, req).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    keys_view(state, &signed, section, StatusCode::OK, None).await
}

/// The agent keys page, with `error` above the form when a submission was refused.
async fn keys_view(
    state: &AppState,
    signed: &Signed,
    section: &str,
    status: StatusCode,
    error: Option<String>,
) -> HttpResponse {
    let Some(principal) = signed.brand() else {
        return refused(Some(signed));
    };
    let tokens = match crate::tokens::admin::list(state, principal, true).await {
        Ok(tokens) => tokens,
        Err(err) => return actix_web::ResponseError::error_response(&err),
    };
    let now = state.clock.now();
    let tokens: Vec<serde_json::Value> = tokens
        .iter()
        .map(|token| {
            let mut view = serde_json::to_value(token).unwrap_or_default();
            let status = if !view["revoked_at"].is_null() {
                "revoked"
            } else if view["expires_at"]
                .as_str()
                .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
                .is_some_and(|at| at <= now)
            {
                "expired"
            } else {
                "active"
            };
            view["status"] = status.into();
            view
        })
        .collect();
    let catalog = state.catalog.load();
    let aliases: Vec<String> = catalog.aliases().iter().map(|a| a.id.clone()).collect();
    let models: Vec<String> = catalog.models().iter().map(|m| m.id.clone()).collect();
    let defaults = Scopes::default_for_tokens();
    let scopes: Vec<Value> = Scope::ALL
        .iter()
        .map(|s| context! { name => s.as_str(), default => defaults.contains(*s) })
        .collect();
    render(
        status,
        "keys.html",
        context! {
            title => "Agent keys", section, signed => signed_ctx(signed),
            tokens => Value::from(minijinja::value::Serde(&tokens)), aliases, models,
            scopes, error,
        },
    )
}

/// The form's fields as the agent-keys API's JSON body (empty inputs left out), and its CSRF
/// token.
fn token_fields(form: &[(String, String)]) -> (serde_json::Value, Option<String>) {
    let mut body = serde_json::Map::new();
    let mut csrf = None;
    let (mut models, mut scopes) = (Vec::new(), Vec::new());
    for (name, value) in form {
        let value = value.trim();
        match name.as_str() {
            "_csrf" => csrf = Some(value.to_owned()),
            "allowed_models" => models.push(serde_json::Value::from(value)),
            "scopes" => scopes.push(serde_json::Value::from(value)),
            "free_models_only" => {
                body.insert(name.clone(), true.into());
            }
            _ if value.is_empty() => {}
            "monthly_budget_usd" | "rpm" | "rpd" | "expires_in_hours" => {
                // A number stays a number; anything else is passed as text and refused by the
                // field's own check, naming the field.
                let number = value
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64);
                let parsed = match name.as_str() {
                    "monthly_budget_usd" => number.map(serde_json::Value::Number),
                    _ => value.parse::<i64>().ok().map(serde_json::Value::from),
                };
                body.insert(name.clone(), parsed.unwrap_or_else(|| value.into()));
            }
            _ => {
                body.insert(name.clone(), value.into());
            }
        }
    }
    body.insert("allowed_models".into(), models.into());
    body.insert("scopes".into(), scopes.into());
    (serde_json::Value::Object(body), csrf)
}

/// "Connect an agent": mints the token and answers the page that shows its secret, this once.
pub async fn connect(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let signed = match brand_session(&state, &req).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let (body, csrf) = token_fields(&form);
    if !signed.form_is_ours(&state, &req, csrf.as_deref()) {
        return refused(Some(&signed));
    }
    let Some(principal) = signed.brand() else {
        return refused(Some(&signed));
    };
    let minted = match serde_json::from_value::<crate::tokens::TokenFields>(body) {
        Ok(fields) => crate::tokens::admin::mint(&state, principal, fields).await,
        Err(err) => Err(crate::error::ApiError::new(
            crate::error::ErrorCode::InvalidRequest,
            err.to_string(),
        )),
    };
    let (secret, view) = match minted {
        Ok(minted) => minted,
        Err(err) if err.code().status().is_client_error() => {
            let error = Some(err.to_string());
            return keys_view(&state, &signed, "keys", StatusCode::BAD_REQUEST, error).await;
        }
        Err(err) => return actix_web::ResponseError::error_response(&err),
    };
    let view = serde_json::to_value(&view).unwrap_or_default();
    let catalog = state.catalog.load();
    let model = catalog
        .aliases()
        .first()
        .map_or("gpt-4o-mini", |a| a.id.as_str())
        .to_owned();
    let base_url = format!(
        "{}/api/gate/v1",
        state.config.server.public_url.trim_end_matches('/')
    );
    render(
        StatusCode::CREATED,
        "minted.html",
        context! {
            title => "Agent connected", signed => signed_ctx(&signed), secret, base_url, model,
            name => view["name"].as_str().unwrap_or_default(),
        },
    )
}

pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<i32>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let signed = match brand_session(&state, &req).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    if !signed.form_is_ours(&state, &req, form.csrf.as_deref()) {
        return refused(Some(&signed));
    }
    let Some(principal) = signed.brand() else {
        return refused(Some(&signed));
    };
    match crate::tokens::admin::revoke(&state, principal, *id).await {
        Ok(_) => see_other("/dashboard/gate/keys"),
        Err(err) => actix_web::ResponseError::error_response(&err),
    }
}

/// The brand, its members, and the credential rotation.
pub async fn settings(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let signed = match brand_session(&state, &req).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let Some(principal) = signed.brand() else {
        return refused(Some(&signed));
    };
    let brand = match crate::brands::manage::get_brand(&state.db, &principal.client_id).await {
        Ok(brand) => brand,
        Err(err) => return actix_web::ResponseError::error_response(&err),
    };
    render(
        StatusCode::OK,
        "settings.html",
        context! {
            title => "Settings", section => "settings", signed => signed_ctx(&signed),
            brand => Value::from(minijinja::value::Serde(&brand)),
        },
    )
}

/// Rotates the brand's credential and shows the new one, once. The rotation ends every session
/// of the brand, this one too, so the answer also clears the cookie.
pub async fn rotate_credential(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let signed = match brand_session(&state, &req).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    if !signed.form_is_ours(&state, &req, form.csrf.as_deref()) {
        return refused(Some(&signed));
    }
    let Some(principal) = signed.brand() else {
        return refused(Some(&signed));
    };
    let rotated = crate::brands::manage::rotate_credential(
        &state.db,
        &state.auth,
        &principal.client_id,
        state.clock.now(),
    )
    .await;
    let credential = match rotated {
        Ok((_, credential)) => credential,
        Err(err) => return actix_web::ResponseError::error_response(&err),
    };
    tracing::info!(client_id = %principal.client_id, "brand credential rotated from the dashboard");
    let mut page = render(
        StatusCode::OK,
        "rotated.html",
        context! { title => "New client credential", credential => credential.expose() },
    );
    let _ = page.add_cookie(&session::end(&state, None).await);
    page
}
