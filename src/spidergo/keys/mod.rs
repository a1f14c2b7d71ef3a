//! `sk_live_` API keys: created with a cookie session (shown once, SHA-256 stored, at most
//! `max_active_keys` active per user even under concurrent creates), listed, revoked; and the
//! bearer check of `/v1/*` with each key's exact daily quota.

pub mod http;
pub mod store;

use crate::auth::Digest;
use crate::spidergo::error::{GoError, Quota};
use crate::state::AppState;
use actix_web::HttpRequest;
use actix_web::http::header;

pub const PREFIX: &str = "sk_live_";
/// Random bytes after the prefix (192 bits, as 48 hex characters).
const SECRET_BYTES: usize = 24;

/// A new key's secret: the prefix and 48 random hex characters.
pub fn new_secret() -> anyhow::Result<String> {
    Ok(format!(
        "{PREFIX}{}",
        crate::random::hex_secret(SECRET_BYTES)?
    ))
}

/// Whether `text` has the shape of a key (so a typo is a 401 "malformed", not a database lookup).
fn well_formed(text: &str) -> bool {
    text.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == SECRET_BYTES * 2 && rest.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// The key a `/v1/*` request authenticated with.
pub struct Caller {
    pub key_id: String,
    pub user_id: i32,
    pub daily_limit: u32,
}

/// 401 for a missing or malformed bearer, 401 for an unknown key, 403 for a revoked one.
pub async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Caller, GoError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(GoError::unauthorized(
            "missing API key: send `Authorization: Bearer sk_live_…`",
        ));
    };
    let bearer = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|token| well_formed(token))
        .ok_or_else(|| {
            GoError::unauthorized("malformed API key: expected `Authorization: Bearer sk_live_…`")
        })?;
    let key = store::by_digest(&state.db, Digest::of(bearer))
        .await?
        .ok_or_else(|| GoError::unauthorized("invalid API key"))?;
    if !key.is_active {
        return Err(GoError::forbidden("this API key is revoked or inactive"));
    }
    Ok(Caller {
        key_id: key.id,
        user_id: key.user_id,
        daily_limit: u32::try_from(key.daily_limit).unwrap_or(0),
    })
}

impl Caller {
    /// Spends one of today's requests, or 429 with `Retry-After` when the day is spent.
    pub async fn spend(&self, state: &AppState) -> Result<Quota, GoError> {
        let now = state.clock.now();
        let used =
            store::spend(&state.db, &self.key_id, now.date_naive(), self.daily_limit).await?;
        match used {
            Some(used) => Ok(self.quota(used, now)),
            None => Err(GoError::quota_spent(self.quota(self.daily_limit, now))),
        }
    }

    /// Today's standing without spending (for reads such as history and job status).
    pub async fn standing(&self, state: &AppState) -> Result<Quota, GoError> {
        let now = state.clock.now();
        let used = store::used(&state.db, &self.key_id, now.date_naive()).await?;
        Ok(self.quota(used, now))
    }

    fn quota(&self, used: u32, now: chrono::DateTime<chrono::Utc>) -> Quota {
        let midnight = (now.date_naive() + chrono::Days::new(1))
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or(now);
        let reset_secs = (midnight - now).num_milliseconds().max(0) as u64;
        Quota {
            limit: self.daily_limit,
            remaining: self.daily_limit.saturating_sub(used),
            reset_secs: reset_secs.div_ceil(1000),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_well_formed_and_typos_are_not() {
        let secret = super::new_secret().unwrap();
        assert!(super::well_formed(&secret), "{secret}");
        assert_eq!(secret.len(), 8 + 48);
        assert!(!super::well_formed(&secret[..secret.len() - 1]));
        assert!(!super::well_formed(&secret.replace("sk_live_", "sk_test_")));
        assert!(!super::well_formed("sk_live_zz"));
    }
}
