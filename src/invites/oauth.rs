//! OAuth sign-in behind an invite or re-auth link, for providers with `[providers.<id>.oauth]`.
//!
//! `GET /{invite|reauth}/{token}/oauth` sends the contributor to the provider's authorize URL
//! (authorization-code flow, PKCE with S256, a random `state`); the state's SHA-256, the invite
//! it is bound to and the PKCE verifier wait in `oauth_flows` for `oauth.flow_ttl_secs`.
//! `GET /oauth/callback` takes that row (once), exchanges the code with the verifier, and stores
//! the granted tokens exactly as a pasted key is stored: tested, the invite claimed, encrypted in
//! the brand's vault (or in place of the broken key, for a re-auth link). The vault refreshes
//! the access token from then on.

use super::pages::{self, BUSY, NOT_VALID, Refusal};
use super::store::{self, OAuthFlow};
use crate::auth::Digest;
use crate::config::OAuthClient;
use crate::providers::oauth::{OAuthError, TokenEndpoint};
use crate::random::hex_secret;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

const NOT_OFFERED: Refusal = Refusal(
    StatusCode::NOT_FOUND,
    "Sign-in is not offered for this provider",
    "Paste an API key on the page of the link from your email instead.",
);

/// `GET /{invite|reauth}/{token}/oauth`: to the provider's sign-in page.
#[utoipa::path(get, path = "/invite/{token}/oauth", tag = "invites",
    params(("token" = String, Path, description = "The random token of the emailed link")),
    responses((status = 303, description = "To the provider's sign-in page"),
        (status = "4XX", description = "Not offered, or the link is not valid",
            content_type = "text/html", body = String)))]
pub async fn start(state: web::Data<AppState>, token: web::Path<String>) -> HttpResponse {
    let invite = match pages::usable_invite(&state, &token).await {
        Ok(invite) => invite,
        Err(refusal) => return refusal.page(),
    };
    let Some(client) = state.config.oauth_client(&invite.provider_name) else {
        return NOT_OFFERED.page();
    };
    match begin(&state, invite.id, client).await {
        Ok(url) => HttpResponse::SeeOther()
            .insert_header(("location", url))
            .insert_header(("cache-control", "no-store"))
            .finish(),
        Err(err) => {
            tracing::error!(invite_id = invite.id, "starting an OAuth sign-in: {err:#}");
            BUSY.page()
        }
    }
}

/// Records a new flow for the invite and returns the authorize URL that starts it.
async fn begin(state: &AppState, invite_id: i32, client: &OAuthClient) -> anyhow::Result<String> {
    let flow_state = hex_secret(32)?;
    // 64 characters of [0-9a-f]: within RFC 7636's 43–128 unreserved characters.
    let verifier = hex_secret(32)?;
    let now = state.clock.now();
    let ttl = chrono::Duration::seconds(state.config.oauth.flow_ttl_secs.min(86_400) as i64);
    let url = authorize_url(
        client,
        &redirect_uri(state),
        &flow_state,
        &code_challenge(&verifier),
    )?;
    let flow = OAuthFlow {
        invite_id,
        code_verifier: verifier,
        expires_at: now + ttl,
    };
    store::insert_flow(&state.db, Digest::of(&flow_state).to_hex(), flow, now).await?;
    Ok(url)
}

/// Where the provider sends the contributor back: register exactly this at the provider.
fn redirect_uri(state: &AppState) -> String {
    format!(
        "{}/oauth/callback",
        state.config.server.public_url.trim_end_matches('/')
    )
}

fn authorize_url(
    client: &OAuthClient,
    redirect_uri: &str,
    flow_state: &str,
    challenge: &str,
) -> anyhow::Result<String> {
    let mut url = url::Url::parse(&client.authorize_url)?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &client.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", flow_state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        if !client.scopes.is_empty() {
            query.append_pair("scope", &client.scopes.join(" "));
        }
    }
    Ok(url.into())
}

/// RFC 7636's S256 challenge: base64url (no padding) of the verifier's SHA-256.
fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// What the provider appends to the redirect URI.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /oauth/callback`: the provider's answer. Stores the granted tokens, or shows why not.
#[utoipa::path(get, path = "/oauth/callback", tag = "invites", params(CallbackQuery),
    responses((status = 200, description = "Connected", content_type = "text/html", body = String),
        (status = "4XX", description = "Refused or not valid", content_type = "text/html",
            body = String)))]
pub async fn callback(
    state: web::Data<AppState>,
    query: Result<web::Query<CallbackQuery>, actix_web::Error>,
) -> HttpResponse {
    let Ok(web::Query(query)) = query else {
        return NOT_VALID.page();
    };
    match finish(&state, query).await {
        Ok(brand) => pages::thanks(&brand),
        Err(page) => page,
    }
}

/// The brand the key went to, or the page that says what went wrong.
async fn finish(state: &AppState, query: CallbackQuery) -> Result<String, HttpResponse> {
    let flow_state = query.state.unwrap_or_default();
    if !pages::is_random_token(&flow_state) {
        return Err(NOT_VALID.page());
    }
    let flow = match store::take_flow(&state.db, &Digest::of(&flow_state).to_hex()).await {
        Ok(Some(flow)) => flow,
        Ok(None) => return Err(NOT_VALID.page()),
        Err(err) => {
            tracing::error!("looking up an OAuth sign-in: {err}");
            return Err(BUSY.page());
        }
    };
    let now = state.clock.now();
    if flow.expires_at <= now {
        return Err(pages::message(
            StatusCode::GONE,
            "This sign-in took too long",
            "Start again from the link in your email.",
        ));
    }
    let invite = match store::find_invite(&state.db, flow.invite_id).await {
        Ok(Some(invite)) => pages::still_usable(state, invite).map_err(|r| r.page())?,
        Ok(None) => return Err(NOT_VALID.page()),
        Err(err) => {
            tracing::error!("looking up an invite: {err}");
            return Err(BUSY.page());
        }
    };
    let provider_label = state
        .catalog
        .load()
        .provider(&invite.provider_name)
        .map_or_else(|| invite.provider_name.clone(), |p| p.label.clone());
    let not_completed = |status: StatusCode, why: String| {
        pages::message(
            status,
            "The sign-in was not completed",
            &format!("{why} You can start again from the link in your email."),
        )
    };
    if let Some(error) = query.error {
        let error: String = error.chars().take(100).collect();
        return Err(not_completed(
            StatusCode::BAD_REQUEST,
            format!("{provider_label} answered `{error}`."),
        ));
    }
    let (Some(code), Some(client)) = (query.code, state.config.oauth_client(&invite.provider_name))
    else {
        return Err(not_completed(
            StatusCode::BAD_REQUEST,
            format!("{provider_label} sent no authorization code."),
        ));
    };
    let endpoint = TokenEndpoint {
        client,
        http: &state.http,
        timeout: state.config.upstream.timeout(),
    };
    let credentials = endpoint
        .exchange_code(&code, &flow.code_verifier, &redirect_uri(state))
        .await
        .and_then(|grant| grant.into_credentials(now, None))
        .map_err(|err| {
            tracing::warn!(invite_id = invite.id, "OAuth code exchange failed: {err}");
            let status = match err {
                OAuthError::Refused(_) => StatusCode::BAD_REQUEST,
                OAuthError::Unavailable(_) => StatusCode::BAD_GATEWAY,
            };
            not_completed(status, format!("{provider_label}: {err}."))
        })?;
    let brand = pages::brand_name(state, invite.brand_id).await;
    pages::save_credentials(state, &invite, invite.provider_name.clone(), credentials)
        .await
        .map_err(|problem| not_completed(StatusCode::BAD_REQUEST, problem))?;
    Ok(brand)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn the_authorize_url_keeps_its_own_query_and_adds_the_flow() {
        let client = OAuthClient {
            authorize_url: "https://auth.test/authorize?tenant=a".into(),
            token_url: "https://auth.test/token".into(),
            client_id: "gw id".into(),
            client_secret: Default::default(),
            scopes: vec!["read".into(), "offline_access".into()],
        };
        let url =
            authorize_url(&client, "https://gw.test/oauth/callback", "st", "ch").expect("url");
        assert_eq!(
            url,
            "https://auth.test/authorize?tenant=a&response_type=code&client_id=gw+id&redirect_uri=https%3A%2F%2Fgw.test%2Foauth%2Fcallback&state=st&code_challenge=ch&code_challenge_method=S256&scope=read+offline_access"
        );
    }
}
