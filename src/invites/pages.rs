//! The public pages behind an invite link: `GET /invite/{token}` shows a form for the provider's
//! credential fields; `POST` tests the key, stores it in the inviter's vault and confirms.
//!
//! No login: the random token in the link is the capability. Forms carry a value bound to the
//! token by a per-process HMAC key and cross-origin posts are refused. Pages never echo a key.

use super::store::{self, InviteKind, InviteRecord, InviteStatus};
use crate::auth::Digest;
use crate::brands;
use crate::error::ApiError;
use crate::state::AppState;
use crate::vault::{self, Owner};
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

fn message(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    render(status, "message.html", context! { title, text })
}

/// Why a link cannot be used: the page to show instead.
struct Refusal(StatusCode, &'static str, &'static str);

impl Refusal {
    fn page(&self) -> HttpResponse {
        message(self.0, self.1, self.2)
    }
}

const NOT_VALID: Refusal = Refusal(
    StatusCode::NOT_FOUND,
    "This link is not valid",
    "Check that you copied the whole link from the email, or ask for a new invite.",
);
const GONE: &str = "This link can no longer be used";

/// The invite behind a link, or why it cannot be used.
async fn usable_invite(state: &AppState, token: &str) -> Result<InviteRecord, Refusal> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NOT_VALID);
    }
    let invite = match store::find_by_token(&state.db, &Digest::of(token).to_hex()).await {
        Ok(Some(invite)) => invite,
        Ok(None) => return Err(NOT_VALID),
        Err(err) => {
            tracing::error!("looking up an invite: {err}");
            return Err(Refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "The service is busy; reload this page in a moment.",
            ));
        }
    };
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
            signup_url => provider.signup_url.clone(),
            expires_at => invite.expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            csrf => csrf_value(state, token),
            error,
        },
    )
}

async fn brand_name(state: &AppState, brand_id: i32) -> String {
    let name = brands::manage::brand_name(&state.db, brand_id)
        .await
        .ok()
        .flatten();
    name.unwrap_or_else(|| "A SpiderGate user".to_owned())
}

pub async fn show(state: web::Data<AppState>, token: web::Path<String>) -> HttpResponse {
    let invite = match usable_invite(&state, &token).await {
        Ok(invite) => invite,
        Err(refusal) => return refusal.page(),
    };
    let brand = brand_name(&state, invite.brand_id).await;
    form(&state, &token, &invite, &brand, None)
}

pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    fields: Result<web::Form<HashMap<String, String>>, actix_web::Error>,
) -> HttpResponse {
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
    match store_key(&state, &invite, fields).await {
        Ok(()) => message(
            StatusCode::OK,
            "Thank you, the key is in place",
            &format!("Your key is now encrypted in {brand}'s vault. You can close this page."),
        ),
        Err(problem) => form(&state, &token, &invite, &brand, Some(&problem)),
    }
}

/// A cross-origin post (another site submitting this form) is refused; browsers send `Origin`.
fn same_origin(state: &AppState, req: &HttpRequest) -> bool {
    let Some(origin) = req.headers().get("origin").and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let public = state.config.server.public_url.trim_end_matches('/');
    let own = req.connection_info();
    origin == public || origin == format!("{}://{}", own.scheme(), own.host())
}

/// Tests the key with the provider, then claims the invite and stores the key. The problem,
/// in words for the contributor, on failure (never containing the key).
async fn store_key(
    state: &AppState,
    invite: &InviteRecord,
    fields: HashMap<String, String>,
) -> Result<(), String> {
    let body = serde_json::Value::Object(fields.into_iter().map(|(k, v)| (k, v.into())).collect());
    let catalog = state.catalog.load_full();
    let (provider_id, credentials) =
        vault::parse_credentials(&catalog, Some(&invite.provider_name), Some(&body))
            .map_err(|e| e.to_string())?;
    let provider = catalog
        .provider(&provider_id)
        .ok_or("The provider is no longer offered.")?;
    if provider.openai_compatible {
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
    let stored = match (invite.kind, invite.integration_id) {
        (InviteKind::Reauth, Some(id)) => replace_key(state, invite, id, &body).await,
        _ => add_key(state, invite, provider_id, body).await,
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
            Ok(())
        }
        Err(err) => {
            let _ = store::unclaim(&state.db, invite.id).await;
            Err(err.to_string())
        }
    }
}

/// A new key in the inviter's vault, labelled with its contributor.
async fn add_key(
    state: &AppState,
    invite: &InviteRecord,
    provider: String,
    credentials: serde_json::Value,
) -> Result<i32, ApiError> {
    let fields = serde_json::json!({
        "provider_name": provider,
        "credentials": credentials,
        "key_label": format!("Contributed by {}", invite.email),
    });
    let fields = serde_json::from_value(fields).map_err(ApiError::internal)?;
    let catalog = state.catalog.load();
    Ok(vault::create_key(
        &state.vault,
        &catalog,
        Owner::Brand(invite.brand_id),
        fields,
    )
    .await?
    .id)
}

/// The same key with a new credential, healthy and back in rotation at once.
async fn replace_key(
    state: &AppState,
    invite: &InviteRecord,
    id: i32,
    credentials: &serde_json::Value,
) -> Result<i32, ApiError> {
    let catalog = state.catalog.load();
    let record = vault::replace_credentials(
        &state.vault,
        &catalog,
        Owner::Brand(invite.brand_id),
        id,
        credentials,
    )
    .await?;
    state.health.reset(&record.provider, record.id).await;
    Ok(record.id)
}
