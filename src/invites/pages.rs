//! The public pages behind an invite link: `GET /invite/{token}` shows a form for the provider's
//! credential fields; `POST` tests the key, stores it in the inviter's vault and confirms.
//!
//! No login: the random token in the link is the capability. Forms carry a value bound to the
//! token by a per-process HMAC key and cross-origin posts are refused. Pages never echo a key.

use super::store::{self, InviteKind, InviteRecord, InviteStatus};
use crate::auth::Digest;
use crate::brands;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::vault::{self, Credentials, IntegrationFields, Owner};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use hmac::{Hmac, KeyInit, Mac};
use minijinja::{Environment, context};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::OnceLock;

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("layout.html", include_str!("templates/layout.html")),
            ("form.html", include_str!("templates/form.html")),
            ("message.html", include_str!("templates/message.html")),
        ] {
            if let Err(err) = env.add_template(name, source) {
                tracing::error!("invite template {name}: {err}");
            }
        }
        env
    })
}

fn render(status: StatusCode, template: &str, ctx: minijinja::Value) -> HttpResponse {
    match templates()
        .get_template(template)
        .and_then(|t| t.render(ctx))
    {
        Ok(html) => HttpResponse::build(status)
            .insert_header(("cache-control", "no-store"))
            .insert_header(("x-frame-options", "DENY"))
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(err) => {
            tracing::error!("rendering {template}: {err}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

pub(super) fn message(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    render(status, "message.html", context! { title, text })
}

/// Why a link cannot be used: the page to show instead.
pub(super) struct Refusal(
    pub(super) StatusCode,
    pub(super) &'static str,
    pub(super) &'static str,
);

impl Refusal {
    pub(super) fn page(&self) -> HttpResponse {
        message(self.0, self.1, self.2)
    }
}

pub(super) const NOT_VALID: Refusal = Refusal(
    StatusCode::NOT_FOUND,
    "This link is not valid",
    "Check that you copied the whole link from the email, or ask for a new invite.",
);
const GONE: &str = "This link can no longer be used";

pub(super) const BUSY: Refusal = Refusal(
    StatusCode::SERVICE_UNAVAILABLE,
    "Please try again",
    "The service is busy; reload this page in a moment.",
);

/// Whether `text` has the shape of the tokens this concern mints (256 bits as 64 hex digits), so
/// garbage is refused before any lookup.
pub(super) fn is_random_token(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The invite behind a link, or why it cannot be used.
pub(super) async fn usable_invite(state: &AppState, token: &str) -> Result<InviteRecord, Refusal> {
    if !is_random_token(token) {
        return Err(NOT_VALID);
    }
    match store::find_by_token(&state.db, &Digest::of(token).to_hex()).await {
        Ok(Some(invite)) => still_usable(state, invite),
        Ok(None) => Err(NOT_VALID),
        Err(err) => {
            tracing::error!("looking up an invite: {err}");
            Err(BUSY)
        }
    }
}

/// `invite` if it is pending and unexpired; else why not.
pub(super) fn still_usable(
    state: &AppState,
    invite: InviteRecord,
) -> Result<InviteRecord, Refusal> {
    match invite.status {
        InviteStatus::Used => Err(Refusal(
            StatusCode::GONE,
            GONE,
            "It has already been used: each invite link works once.",
        )),
        InviteStatus::Revoked => Err(Refusal(
            StatusCode::GONE,
            GONE,
            "The invite was withdrawn. Ask for a new one if you still want to add a key.",
        )),
        InviteStatus::Pending if invite.expires_at <= state.clock.now() => Err(Refusal(
            StatusCode::GONE,
            GONE,
            "It has expired. Ask for a new invite.",
        )),
        InviteStatus::Pending => Ok(invite),
    }
}

/// The form's anti-forgery value: an HMAC of the token under this process's form key.
fn csrf_value(state: &AppState, token: &str) -> String {
    #[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(state.form_key.as_slice())
        .expect("any key length");
    mac.update(token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn form(
    state: &AppState,
    token: &str,
    invite: &InviteRecord,
    brand: &str,
    error: Option<&str>,
) -> HttpResponse {
    let catalog = state.catalog.load();
    let Some(provider) = catalog.provider(&invite.provider_name) else {
        return message(
            StatusCode::GONE,
            "This link can no longer be used",
            "The provider is no longer offered.",
        );
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(
        status,
        "form.html",
        context! {
            title => format!("Add a {} key", provider.label),
            reauth => invite.kind == InviteKind::Reauth,
            provider => provider.label.clone(),
            brand,
            email => invite.email.clone(),
            message => invite.message.clone(),
            fields => provider.credential_fields.clone(),
            // Safe to leave unescaped: a checked 64-hex token between fixed segments.
            sign_in_url => provider.oauth.then(|| {
                minijinja::Value::from_safe_string(format!("/{}/{token}/oauth", invite.kind.as_str()))
            }),
            signup_url => provider.signup_url.clone(),
            expires_at => invite.expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            csrf => csrf_value(state, token),
            error,
        },
    )
}

pub(super) async fn brand_name(state: &AppState, brand_id: i32) -> String {
    let name = brands::manage::brand_name(&state.db, brand_id)
        .await
        .ok()
        .flatten();
    name.unwrap_or_else(|| "A SpiderGate user".to_owned())
}

/// The public pages in the OpenAPI document (HTML; `/reauth/…` is documented as a copy).
#[derive(utoipa::OpenApi)]
#[openapi(paths(show, submit, super::oauth::start, super::oauth::callback))]
pub struct Api;

/// The form for the provider's credential fields (or a page saying the link is spent).
#[utoipa::path(get, path = "/invite/{token}", tag = "invites",
    params(("token" = String, Path, description = "The random token of the emailed link")),
    responses((status = 200, description = "The form", content_type = "text/html", body = String),
        (status = "4XX", description = "The link is unknown, used, revoked or expired",
            content_type = "text/html", body = String)))]
pub async fn show(state: web::Data<AppState>, token: web::Path<String>) -> HttpResponse {
    let invite = match usable_invite(&state, &token).await {
        Ok(invite) => invite,
        Err(refusal) => return refusal.page(),
    };
    let brand = brand_name(&state, invite.brand_id).await;
    form(&state, &token, &invite, &brand, None)
}

/// Tests the pasted key, stores it in the inviter's vault and confirms.
#[utoipa::path(post, path = "/invite/{token}", tag = "invites",
    params(("token" = String, Path, description = "The random token of the emailed link")),
    request_body(content = HashMap<String, String>, content_type = "application/x-www-form-urlencoded",
        description = "The provider's credential fields and the form's binding value"),
    responses((status = 200, description = "Stored, or the form again with what to fix",
            content_type = "text/html", body = String),
        (status = "4XX", description = "The link or the form is not valid",
            content_type = "text/html", body = String)))]
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    fields: Result<web::Form<HashMap<String, String>>, actix_web::Error>,
) -> HttpResponse {
    if let Err(err) = &fields
        && let Some(actix_web::error::UrlencodedError::Overflow { .. }) = err.as_error()
    {
        let too_large = ApiError::new(ErrorCode::PayloadTooLarge, "the form is too large");
        return actix_web::ResponseError::error_response(&too_large);
    }
    let invite = match usable_invite(&state, &token).await {
        Ok(invite) => invite,
        Err(refusal) => return refusal.page(),
    };
    if !same_origin(&state, &req) {
        return message(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "This form can only be sent from its own page.",
        );
    }
    let brand = brand_name(&state, invite.brand_id).await;
    let Ok(web::Form(mut fields)) = fields else {
        return form(
            &state,
            &token,
            &invite,
            &brand,
            Some("The form could not be read; please try again."),
        );
    };
    let csrf = fields.remove("csrf").unwrap_or_default();
    if !Digest::of(&csrf).matches(&Digest::of(&csrf_value(&state, &token))) {
        return form(
            &state,
            &token,
            &invite,
            &brand,
            Some("This form is out of date; please submit it again."),
        );
    }
    let saved = match credentials_from_form(&state, &invite, fields) {
        Ok((provider, credentials)) => {
            save_credentials(&state, &invite, provider, credentials).await
        }
        Err(problem) => Err(problem),
    };
    match saved {
        Ok(()) => thanks(&brand),
        Err(problem) => form(&state, &token, &invite, &brand, Some(&problem)),
    }
}

/// The confirmation page once a key is stored.
pub(super) fn thanks(brand: &str) -> HttpResponse {
    message(
        StatusCode::OK,
        "Thank you, the key is in place",
        &format!("Your key is now encrypted in {brand}'s vault. You can close this page."),
    )
}

/// A cross-origin post (another site submitting this form) is refused; browsers send `Origin`.
fn same_origin(state: &AppState, req: &HttpRequest) -> bool {
    crate::auth::same_site(req, &state.config.server.public_url)
}

/// The credential typed into the form, validated against the invite's provider.
fn credentials_from_form(
    state: &AppState,
    invite: &InviteRecord,
    fields: HashMap<String, String>,
) -> Result<(String, Credentials), String> {
    let body = serde_json::Value::Object(fields.into_iter().map(|(k, v)| (k, v.into())).collect());
    vault::parse_credentials(
        &state.catalog.load(),
        Some(&invite.provider_name),
        Some(&body),
    )
    .map_err(|e| e.to_string())
}

/// Tests the credential with the provider, then claims the invite and stores the credential (a
/// new key, or the repaired one of a re-auth link). The problem, in words for the contributor,
/// on failure (never containing the credential).
pub(super) async fn save_credentials(
    state: &AppState,
    invite: &InviteRecord,
    provider_id: String,
    credentials: Credentials,
) -> Result<(), String> {
    let catalog = state.catalog.load_full();
    let provider = catalog
        .provider(&provider_id)
        .ok_or("The provider is no longer offered.")?;
    if provider.checkable() {
        let endpoint =
            crate::providers::Endpoint::new(provider, &credentials).map_err(|e| e.message)?;
        if let Err(err) = endpoint
            .check(&state.http, state.config.upstream.timeout())
            .await
        {
            return Err(format!(
                "{} did not accept this key ({}). Check it and try again.",
                provider.label,
                err.code()
            ));
        }
    }
    if !store::claim(&state.db, invite.id, state.clock.now())
        .await
        .map_err(|_| "Please try again.")?
    {
        return Err("This invite has just been used.".into());
    }
    let owner = Owner::Brand(invite.brand_id);
    let stored = match (invite.kind, invite.integration_id) {
        (InviteKind::Reauth, Some(id)) => replace_key(state, owner, id, credentials).await,
        _ => {
            let label = IntegrationFields::labelled(format!("Contributed by {}", invite.email));
            vault::create_key_with(&state.vault, owner, provider_id, credentials, label)
                .await
                .map(|record| record.id)
        }
    };
    match stored {
        Ok(integration_id) => {
            if let Err(err) = store::set_integration(&state.db, invite.id, integration_id).await {
                tracing::warn!(
                    invite_id = invite.id,
                    "linking the invite to its key: {err}"
                );
            }
            tracing::info!(
                invite_id = invite.id,
                integration_id,
                "contributed key stored"
            );
            state.alerts.raise(crate::alerts::Alert {
                key: format!("invite.used:{}", invite.id),
                kind: "invite.used",
                brand_id: Some(invite.brand_id),
                data: serde_json::json!({
                    "invite_id": invite.id,
                    "kind": invite.kind.as_str(),
                    "email": invite.email,
                    "provider": invite.provider_name,
                    "integration_id": integration_id,
                }),
            });
            Ok(())
        }
        Err(err) => {
            let _ = store::unclaim(&state.db, invite.id).await;
            Err(err.to_string())
        }
    }
}

/// The same key with a new credential, healthy and back in rotation at once.
async fn replace_key(
    state: &AppState,
    owner: Owner,
    id: i32,
    credentials: Credentials,
) -> Result<i32, ApiError> {
    let record = vault::replace_credentials(&state.vault, owner, id, credentials).await?;
    state.health.reset(&record.provider, record.id).await;
    Ok(record.id)
}
