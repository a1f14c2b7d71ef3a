//! OAuth access-token refresh: the vault keeps each OAuth key's access token fresh by itself,
//! `oauth.refresh_before_secs` before it expires, so no request ever waits on a token endpoint.
//!
//! A refresh the provider refuses counts as an authentication failure of the key, exactly like
//! a 401 from a completion (three in a row disable it, and its contributor is emailed a re-auth
//! link). An endpoint that cannot be reached is retried with back-off and counts nothing: the
//! access token usually outlives the outage, and if it does not, the requests' own 401s count.
//!
//! With several replicas on one database, each runs this loop. Before refreshing, and before
//! counting a refusal, a replica looks at the stored credential: if another replica already
//! refreshed the key (using up a rotating refresh token), it adopts that newer token instead.

use super::credentials::Credentials;
use super::handle::Vault;
use super::key::VaultKey;
use super::manage::{store_refreshed, stored_credentials};
use crate::clock::Clock;
use crate::config::Config;
use crate::health::{FailureKind, Health, Outcome};
use crate::providers::oauth::{OAuthError, TokenEndpoint};
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;

/// Refreshes at most this many keys at once.
const PARALLEL_REFRESHES: usize = 8;
/// Longest wait before retrying an endpoint that could not be reached.
const MAX_RETRY_SECS: i64 = 600;

pub struct OAuthRefresher {
    pub vault: Vault,
    pub health: Health,
    pub http: reqwest::Client,
    pub config: Arc<Config>,
    pub clock: Clock,
    pub alerts: crate::alerts::Alerts,
    /// Fires at shutdown: the loop returns after the round under way, so a refresh token the
    /// provider has just rotated is always stored before the process ends.
    pub stop: watch::Receiver<bool>,
}

/// A key whose last refresh failed: when to try again.
struct Retry {
    failures: u32,
    not_before: DateTime<Utc>,
}

impl OAuthRefresher {
    /// Runs for the life of the server, looking for due tokens every `oauth.refresh_check_secs`.
    pub async fn run(mut self) {
        let mut retries: HashMap<i32, Retry> = HashMap::new();
        let mut ticker = tokio::time::interval(self.config.oauth.refresh_check());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = self.stop.changed() => return,
            }
            let now = self.clock.now();
            let due = self.due(now, &retries);
            if due.is_empty() {
                self.vault.count_refresh_round();
                continue;
            }
            let this = &self;
            let outcomes: Vec<(i32, Result<(), OAuthError>)> = stream::iter(due)
                .map(|key| async move { (key.record.id, this.refresh(&key).await) })
                .buffer_unordered(PARALLEL_REFRESHES)
                .collect()
                .await;
            for (id, outcome) in outcomes {
                match outcome {
                    Ok(()) => {
                        retries.remove(&id);
                    }
                    Err(err) => {
                        let failures = retries.get(&id).map_or(0, |r| r.failures) + 1;
                        let not_before = self.retry_at(&err, failures, now);
                        retries.insert(
                            id,
                            Retry {
                                failures,
                                not_before,
                            },
                        );
                    }
                }
            }
            self.vault.count_refresh_round();
        }
    }

    /// Active OAuth keys whose access token expires within the margin and that may be tried now.
    fn due(&self, now: DateTime<Utc>, retries: &HashMap<i32, Retry>) -> Vec<Arc<VaultKey>> {
        let margin = chrono::Duration::seconds(
            self.config.oauth.refresh_before_secs.min(i32::MAX as u64) as i64,
        );
        let snapshot = self.vault.snapshot();
        let catalog_oauth = |provider: &str| self.config.oauth_client(provider).is_some();
        snapshot
            .all_keys()
            .filter(|k| k.record.is_active && catalog_oauth(&k.record.provider))
            .filter(|k| k.credentials.refresh_token().is_some())
            .filter(|k| {
                k.credentials
                    .access_expires_at()
                    .is_some_and(|at| at - margin <= now)
            })
            .filter(|k| {
                retries
                    .get(&k.record.id)
                    .is_none_or(|r| r.not_before <= now)
            })
            .cloned()
            .collect()
    }

    /// One refresh: the new tokens stored and published, or the failure reported.
    async fn refresh(&self, key: &VaultKey) -> Result<(), OAuthError> {
        let (id, provider) = (key.record.id, key.record.provider.as_str());
        let (Some(client), Some(refresh_token)) = (
            self.config.oauth_client(provider),
            key.credentials.refresh_token(),
        ) else {
            return Ok(());
        };
        if self.adopt_newer_stored(key).await {
            return Ok(());
        }
        let endpoint = TokenEndpoint {
            client,
            http: &self.http,
            timeout: self.config.upstream.timeout(),
        };
        let granted = endpoint
            .refresh(refresh_token)
            .await
            .and_then(|grant| grant.into_credentials(self.clock.now(), Some(refresh_token)));
        match granted {
            Ok(credentials) => {
                if let Err(err) = store_refreshed(&self.vault, id, provider, credentials).await {
                    tracing::error!(integration_id = id, "storing a refreshed token: {err:#}");
                    return Err(OAuthError::Unavailable(
                        "the vault could not store it".into(),
                    ));
                }
                tracing::info!(
                    integration_id = id,
                    provider,
                    "OAuth access token refreshed"
                );
                Ok(())
            }
            Err(OAuthError::Refused(_)) if self.adopt_newer_stored(key).await => Ok(()),
            Err(err) => {
                tracing::warn!(
                    integration_id = id,
                    provider,
                    "OAuth token refresh failed: {err}"
                );
                if let OAuthError::Refused(_) = err {
                    // Once per key per day: a refused refresh is retried at every look.
                    self.alerts.raise(crate::alerts::Alert {
                        key: format!("oauth.refresh_refused:{id}:{}", self.clock.today()),
                        kind: "oauth.refresh_refused",
                        brand_id: key.record.owner.brand_id(),
                        data: serde_json::json!({
                            "integration_id": id,
                            "provider": provider,
                            "error": err.to_string(),
                        }),
                    });
                    self.health.report(
                        provider,
                        id,
                        Outcome::Failure {
                            kind: FailureKind::Auth,
                            message: format!("token refresh: {err}"),
                        },
                    );
                }
                Err(err)
            }
        }
    }

    /// Publishes the stored credential instead of ours when another replica refreshed the key
    /// since we loaded it (its access token lives longer than ours).
    async fn adopt_newer_stored(&self, key: &VaultKey) -> bool {
        let id = key.record.id;
        let stored = match stored_credentials(&self.vault, key.record.owner, id).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return false,
            Err(err) => {
                tracing::warn!(integration_id = id, "reading a stored OAuth token: {err:#}");
                return false;
            }
        };
        if !outlives(&stored, &key.credentials) {
            return false;
        }
        tracing::info!(
            integration_id = id,
            "OAuth token already refreshed elsewhere; adopted"
        );
        self.vault.set_credentials(id, stored).await;
        true
    }

    /// A refused refresh is tried again at the next look (each one is a counted authentication
    /// failure); an unreachable endpoint after 2, 4, 8 … checks, at most ten minutes.
    fn retry_at(&self, err: &OAuthError, failures: u32, now: DateTime<Utc>) -> DateTime<Utc> {
        match err {
            OAuthError::Refused(_) => now,
            OAuthError::Unavailable(_) => {
                let check = self.config.oauth.refresh_check_secs.max(1) as i64;
                let wait = (check << failures.min(10)).min(MAX_RETRY_SECS);
                now + chrono::Duration::seconds(wait)
            }
        }
    }
}

/// Whether `stored` is a refreshable OAuth credential whose access token expires after `ours`.
fn outlives(stored: &Credentials, ours: &Credentials) -> bool {
    stored.refresh_token().is_some()
        && matches!(
            (stored.access_expires_at(), ours.access_expires_at()),
            (Some(theirs), Some(ours)) if theirs > ours
        )
}
