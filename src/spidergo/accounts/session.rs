//! Cookie sessions: minting a token pair, reading the signed-in user from `access_token`,
//! rotating `refresh_token`, the cookies themselves, and the same-origin check on cookie writes.

use super::store::{self, NewToken, TokenKind, User};
use crate::auth::Digest;
use crate::spidergo::error::GoError;
use crate::state::AppState;
use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time};
use sea_orm::TransactionTrait;

pub const ACCESS_COOKIE: &str = "access_token";
pub const REFRESH_COOKIE: &str = "refresh_token";
/// The refresh cookie goes only to `/auth/*` (refresh and sign-out), never to `/v1/*`.
const REFRESH_PATH: &str = "/auth";

/// A freshly minted pair, to be set as cookies.
pub struct Pair {
    pub access: String,
    pub refresh: String,
}

/// Who a request's `access_token` belongs to.
pub struct SignedIn {
    pub user: User,
    pub family: String,
}

/// Mints an access and a refresh token in `family` (a new one at sign-in) and stores their digests.
pub async fn mint(
    state: &AppState,
    user_id: i32,
    family: Option<String>,
) -> Result<(Pair, String), GoError> {
    let go = &state.spidergo.config;
    let now = state.clock.now();
    let family = match family {
        Some(family) => family,
        None => crate::random::hex_secret(16).map_err(GoError::internal)?,
    };
    let pair = Pair {
        access: format!(
            "sgo_at_{}",
            crate::random::hex_secret(32).map_err(GoError::internal)?
        ),
        refresh: format!(
            "sgo_rt_{}",
            crate::random::hex_secret(32).map_err(GoError::internal)?
        ),
    };
    let txn = state.db.begin().await?;
    for (secret, kind, ttl) in [
        (
            &pair.access,
            TokenKind::Access,
            chrono::Duration::minutes(go.access_ttl_mins as i64),
        ),
        (
            &pair.refresh,
            TokenKind::Refresh,
            chrono::Duration::days(go.refresh_ttl_days as i64),
        ),
    ] {
        let token = NewToken {
            digest: Digest::of(secret),
            kind,
            family: &family,
            user_id,
            expires_at: now + ttl,
        };
        store::insert_token(&txn, token, now).await?;
    }
    txn.commit().await?;
    Ok((pair, family))
}

/// The signed-in user of `req`, or 401.
pub async fn signed_in(state: &AppState, req: &HttpRequest) -> Result<SignedIn, GoError> {
    let unauthorized = || GoError::unauthorized("sign in first: no valid session cookie");
    let cookie = req.cookie(ACCESS_COOKIE).ok_or_else(unauthorized)?;
    let now = state.clock.now();
    let row = store::live_token(
        &state.db,
        Digest::of(cookie.value()),
        TokenKind::Access,
        now,
    )
    .await?
    .ok_or_else(unauthorized)?;
    let user = store::user_by_id(&state.db, row.user_id)
        .await?
        .ok_or_else(unauthorized)?;
    Ok(SignedIn {
        user,
        family: row.family,
    })
}

/// How a refresh ended.
pub enum Rotated {
    Fresh {
        user_id: i32,
        pair: Pair,
    },
    /// No such live token.
    Invalid,
    /// The token was already exchanged: its whole family is now revoked.
    Reused,
}

/// Exchanges a refresh token for a new pair in the same family, once.
pub async fn rotate(state: &AppState, refresh: &str) -> Result<Rotated, GoError> {
    let now = state.clock.now();
    let Some(row) =
        store::live_token(&state.db, Digest::of(refresh), TokenKind::Refresh, now).await?
    else {
        return Ok(Rotated::Invalid);
    };
    if row.used_at.is_some() || !store::use_refresh(&state.db, row.id, now).await? {
        store::revoke_family(&state.db, &row.family, now).await?;
        tracing::warn!(
            user_id = row.user_id,
            "spidergo: a used refresh token came back; its session family is revoked"
        );
        return Ok(Rotated::Reused);
    }
    let (pair, _) = mint(state, row.user_id, Some(row.family)).await?;
    Ok(Rotated::Fresh {
        user_id: row.user_id,
        pair,
    })
}

/// The `Set-Cookie`s for a pair (HttpOnly, SameSite=Lax, Secure unless turned off).
pub fn cookies(state: &AppState, pair: &Pair) -> [Cookie<'static>; 2] {
    let go = &state.spidergo.config;
    [
        cookie(
            ACCESS_COOKIE,
            pair.access.clone(),
            "/",
            go.access_ttl_mins as i64 * 60,
            go.secure_cookies,
        ),
        cookie(
            REFRESH_COOKIE,
            pair.refresh.clone(),
            REFRESH_PATH,
            go.refresh_ttl_days as i64 * 86_400,
            go.secure_cookies,
        ),
    ]
}

/// Cookies that make the browser forget both tokens.
pub fn cleared(state: &AppState) -> [Cookie<'static>; 2] {
    let secure = state.spidergo.config.secure_cookies;
    [
        cookie(ACCESS_COOKIE, String::new(), "/", 0, secure),
        cookie(REFRESH_COOKIE, String::new(), REFRESH_PATH, 0, secure),
    ]
}

fn cookie(
    name: &'static str,
    value: String,
    path: &'static str,
    max_age_secs: i64,
    secure: bool,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(max_age_secs))
        .finish()
}

/// Refuses (403) a cookie-authenticated write a browser sent from another site.
pub fn same_origin(state: &AppState, req: &HttpRequest) -> Result<(), GoError> {
    if crate::auth::same_site(req, &state.config.server.public_url) {
        Ok(())
    } else {
        Err(GoError::forbidden(
            "cross-site request refused: send it from this site",
        ))
    }
}
