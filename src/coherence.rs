//! Cache coherence across replicas sharing one PostgreSQL database.
//!
//! Credentials, agent tokens, vault keys and alias chains live in each replica's memory, so a
//! write made through one replica must reach the others. A trigger writes every change of those
//! tables to `cache_events` in the writing transaction (ids only; see migration 000008) and
//! notifies `sg_cache` at commit. Each replica runs one [`Follower`]: on a notification, when the
//! listening connection was lost (it may have missed some), and at least every second in any
//! case, it reads the events after the last version it applied, in version order, and re-reads
//! each changed row into its cache. Decrypted credentials never travel: a vault event makes each
//! replica read and decrypt the row itself. Own writes come back as events too; re-reading them
//! is harmless.
//!
//! Bound: a change is seen by every replica within milliseconds (the notification), at most one
//! second plus a read (the poll) when a notification is lost. SQLite is one node and needs none
//! of this.

use crate::auth::TokenCache;
use crate::catalog::{self, Catalog};
use crate::vault::Vault;
use crate::{brands, tokens};
use arc_swap::ArcSwap;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const CHANNEL: &str = "sg_cache";
/// The poll that covers lost notifications.
const POLL: Duration = Duration::from_secs(1);
/// Events applied per read.
const PAGE: i64 = 500;

/// The caches a follower keeps up to date.
pub struct Caches {
    pub auth: TokenCache,
    pub vault: Vault,
    pub catalog: Arc<ArcSwap<Catalog>>,
}

/// The newest version in the change log. Read *before* loading the caches: what changes while
/// they load is then replayed (re-reading a row twice is harmless; missing one is not).
pub async fn current_version(db: &DatabaseConnection) -> Result<i64, sea_orm::DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) AS v FROM cache_events",
        ))
        .await?;
    Ok(row
        .and_then(|r| r.try_get::<i64>("", "v").ok())
        .unwrap_or(0))
}

pub struct Follower {
    pub db: DatabaseConnection,
    pub caches: Caches,
    /// The last version applied.
    pub applied: i64,
    pub stop: watch::Receiver<bool>,
}

impl Follower {
    /// Whether this database needs following (PostgreSQL; a SQLite file is one node).
    pub fn needed(db: &DatabaseConnection) -> bool {
        db.get_database_backend() == DbBackend::Postgres
    }

    /// Runs until the stop signal.
    pub async fn run(mut self) {
        let mut listener = self.listen().await;
        let mut poll = tokio::time::interval(POLL);
        loop {
            tokio::select! {
                _ = self.stop.changed() => return,
                _ = poll.tick() => {
                    if listener.is_none() {
                        listener = self.listen().await;
                    }
                }
                heard = next_notification(&mut listener) => {
                    if heard.is_err() {
                        // The listener failed: poll until it can be set up again.
                        listener = None;
                    }
                }
            }
            self.catch_up().await;
        }
    }

    async fn listen(&self) -> Option<Listening> {
        let pool = self.db.get_postgres_connection_pool();
        let listening = async {
            let mut listener = PgListener::connect_with(pool).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match listening.await {
            Ok(listener) => Some(Listening(Some(listener))),
            Err(err) => {
                tracing::warn!("cannot LISTEN for cache changes, polling every {POLL:?}: {err}");
                None
            }
        }
    }

    /// Applies every event after `applied`, in order. A row that cannot be re-read now (the
    /// database hiccups) stops the pass there, to be retried, so no change is skipped.
    async fn catch_up(&mut self) {
        loop {
            let events = match self.events_after(self.applied).await {
                Ok(events) => events,
                Err(err) => {
                    tracing::warn!("reading cache events: {err}");
                    return;
                }
            };
            let page_full = events.len() as i64 == PAGE;
            for (version, kind, entity) in events {
                if let Err(err) = self.apply(&kind, &entity).await {
                    tracing::warn!(version, kind, "re-reading a changed row: {err:#}");
                    return;
                }
                self.applied = version;
            }
            if !page_full {
                return;
            }
        }
    }

    async fn events_after(&self, version: i64) -> Result<Vec<(i64, String, String)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT version, kind, entity FROM cache_events WHERE version > $1 \
             ORDER BY version LIMIT $2",
        )
        .bind(version)
        .bind(PAGE)
        .fetch_all(self.db.get_postgres_connection_pool())
        .await
    }

    async fn apply(&self, kind: &str, entity: &str) -> anyhow::Result<()> {
        let id = || entity.parse::<i32>();
        let caches = &self.caches;
        match kind {
            "brand" => brands::reload_into_cache(&self.db, &caches.auth, id()?).await,
            "agent_token" => tokens::reload_into_cache(&self.db, &caches.auth, id()?).await,
            "integration" => caches.vault.reload(id()?).await,
            "alias_override" => self.reload_alias(entity).await,
            other => {
                tracing::warn!(kind = other, "unknown cache event ignored");
                Ok(())
            }
        }
    }

    async fn reload_alias(&self, alias: &str) -> anyhow::Result<()> {
        let Some(models) = catalog::find_override(&self.db, alias).await? else {
            return Ok(());
        };
        self.caches.catalog.rcu(|current| {
            current
                .with_chain(alias, models.clone())
                .map(Arc::new)
                .unwrap_or_else(|_| current.clone())
        });
        Ok(())
    }
}

/// Waits for the next notification, or for the news that the connection was lost (`Ok` either
/// way: notifications may have been missed, so read the log; sqlx reconnects and listens again).
/// Never returns without a listener.
async fn next_notification(listener: &mut Option<Listening>) -> Result<(), sqlx::Error> {
    match listener.as_mut().and_then(|l| l.0.as_mut()) {
        Some(listener) => listener.try_recv().await.map(|_| ()),
        None => std::future::pending().await,
    }
}

/// A `PgListener` that may be dropped after the runtime is gone (a server dropped without being
/// stopped): its own `Drop` spawns an UNLISTEN and panics outside a runtime, so then it is let go
/// (the process, or its runtime, is ending and takes the connection with it).
struct Listening(Option<PgListener>);

impl Drop for Listening {
    fn drop(&mut self) {
        if tokio::runtime::Handle::try_current().is_err() {
            std::mem::forget(self.0.take());
        }
    }
}
