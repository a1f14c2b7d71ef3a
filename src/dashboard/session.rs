//! Dashboard sign-in: a brand admin pastes the brand's client credential (or a PAT with
//! `system`), the operator pastes the admin token. The session is an opaque random cookie
//! (`HttpOnly; SameSite=Strict`, `Secure` unless the public URL is plain http) whose SHA-256 is
//! the stored key; it ends at sign-out, after 30 idle minutes or 12 hours, and when the brand's
//! credential is rotated. Every form carries the session's CSRF token and must come from our own
//! pages (`auth::same_site`).

use super::store;
use crate::auth::{Credential, Digest, Principal, Scope, Scopes, parse_bearer};
use crate::state::AppState;
use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use chrono::Duration;
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "sg_session";
const IDLE: Duration = Duration::minutes(30);
const ABSOLUTE: Duration = Duration::hours(12);
/// `last_seen_at` is written at most this often.
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// Who a session belongs to.
pub enum Who {
    Brand(Principal),
    Operator,
}

/// A signed-in dashboard request.
pub struct Signed {
    pub who: Who,
    pub csrf: String,
    token_hash: String,
}

impl Signed {
    pub fn brand(&self) -> Option<&Principal> {
        match &self.who {
            Who::Brand(principal) => Some(principal),
            Who::Operator => None,
        }
    }

    /// Whether a submitted form is ours: from our own pages, with this session's token.
    pub fn form_is_ours(&self, state: &AppState, req: &HttpRequest, token: Option<&str>) -> bool {
        let token = token.unwrap_or_default();
        crate::auth::same_site(req, &state.config.server.public_url)
            && bool::from(token.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// Where a request without a session goes.
pub fn to_login(req: &HttpRequest) -> HttpResponse {
    let next = req
        .uri()
        .path_and_query()
        .map_or("/dashboard", |p| p.as_str());
    let target = format!(
        "/dashboard/login?next={}",
        url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
    );
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, target))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The request's session, or the redirect to the login page.
pub async fn signed_in(state: &AppState, req: &HttpRequest) -> Result<Signed, HttpResponse> {
    let Some(cookie) = req.cookie(COOKIE) else {
        return Err(to_login(req));
    };
    let token_hash = Digest::of(cookie.value()).to_hex();
    let now = state.clock.now();
    let row = match store::live(&state.db, &token_hash, now, now - IDLE).await {
        Ok(Some(row)) => row,
        Ok(None) => return Err(to_login(req)),
        Err(err) => {
            tracing::error!("dashboard: reading a session: {err}");
            return Err(HttpResponse::InternalServerError().finish());
        }
    };
    if now - row.last_seen_at > TOUCH_EVERY
        && let Err(err) = store::touch(&state.db, row.id, now).await
    {
        tracing::warn!("dashboard: stamping a session: {err}");
    }
    let who = match row.brand_id {
        None => Who::Operator,
        Some(brand_id) => match state.auth.client_id_of(brand_id) {
            Some(client_id) => Who::Brand(Principal {
                brand_id,
                client_id,
                scopes: Scopes::all(),
                token: None,
            }),
            None => return Err(to_login(req)),
        },
    };
    Ok(Signed {
        who,
        csrf: row.csrf,
        token_hash,
    })
}

/// Who a pasted secret signs in as: the operator token, a brand credential, or a PAT holding
/// `system`; `None` for anything else (one message for every failure).
pub fn who_is(state: &AppState, secret: &str) -> Option<Option<i32>> {
    let secret = secret.trim();
    if let Some(operator) = &state.operator_token
        && operator.matches(&Digest::of(secret))
    {
        return Some(None);
    }
    let header = format!("Bearer {secret}");
    let credential = parse_bearer(Some(header.as_bytes())).ok()?;
    if matches!(credential, Credential::Opaque(_)) {
        return None;
    }
    let principal = state
        .auth
        .authenticate(&credential, state.clock.now().timestamp())
        .ok()?;
    principal
        .scopes
        .contains(Scope::System)
        .then_some(Some(principal.brand_id))
}

/// Starts a session for `brand_id` (`None`: the operator); returns its cookie.
pub async fn start(state: &AppState, brand_id: Option<i32>) -> anyhow::Result<Cookie<'static>> {
    let id = crate::random::hex_secret(32)?;
    let csrf = crate::random::hex_secret(16)?;
    let now = state.clock.now();
    store::create(
        &state.db,
        Digest::of(&id).to_hex(),
        brand_id,
        csrf,
        now,
        now + ABSOLUTE,
    )
    .await?;
    Ok(cookie(state, id, ABSOLUTE.num_seconds()))
}

/// Ends the request's session (if any); returns the cookie that clears it.
pub async fn end(state: &AppState, signed: Option<&Signed>) -> Cookie<'static> {
    if let Some(signed) = signed
        && let Err(err) = store::end(&state.db, &signed.token_hash).await
    {
        tracing::error!("dashboard: ending a session: {err}");
    }
    cookie(state, String::new(), 0)
}

fn cookie(state: &AppState, value: String, max_age_secs: i64) -> Cookie<'static> {
    let secure = state.config.server.public_url.starts_with("https://");
    Cookie::build(COOKIE, value)
        .path("/dashboard")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::seconds(max_age_secs))
        .finish()
}
