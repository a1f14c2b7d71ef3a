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
//! Every replica registers in `replicas` with the version it has applied, refreshed by each pass
//! (at least every second). A write made through the API answers only once every live replica
//! (seen in the last `LIVE_FOR`) has applied it ([`confirm_writes`]), so a request that starts
//! after the write's response is judged by the new state on every replica. A replica whose last
//! successful pass is older than `TRUST_FOR` (it lost the database) stops answering authenticated
//! requests (503) before the others stop waiting for it. SQLite is one node and needs none of
//! this.

use crate::auth::TokenCache;
use crate::catalog::{self, Catalog};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::vault::Vault;
use crate::{brands, tokens};
use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web;
use arc_swap::ArcSwap;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const CHANNEL: &str = "sg_cache";
/// The poll that covers lost notifications.
const POLL: Duration = Duration::from_secs(1);
/// Events applied per read.
const PAGE: i64 = 500;
/// A replica not seen for this long is not waited for (killed, or cut off from the database).
const LIVE_FOR: Duration = Duration::from_secs(5);
/// A replica whose last pass is older than this refuses authenticated requests; shorter than
/// `LIVE_FOR`, so it stops before the others stop waiting for it.
const TRUST_FOR: Duration = Duration::from_secs(4);
/// How long a write waits for the other replicas before answering anyway (and saying so).
const CONFIRM_FOR: Duration = Duration::from_secs(5);

/// This replica's place among the followers of the database.
#[derive(Clone)]
pub struct Replicas {
    inner: Arc<ReplicasInner>,
}

struct ReplicasInner {
    id: String,
    db: DatabaseConnection,
    /// Real time (a liveness measurement between processes, not a business decision).
    started: Instant,
    /// Milliseconds after `started` of the last successful pass.
    synced_ms: AtomicU64,
    /// Replicas seen in the last `LIVE_FOR`, this one included, as of the last pass.
    live: AtomicU64,
}

impl Replicas {
    /// Registers this replica at `applied`, before its caches load (so writers wait for it).
    pub async fn register(db: &DatabaseConnection, applied: i64) -> Result<Replicas, sqlx::Error> {
        let replicas = Replicas {
            inner: Arc::new(ReplicasInner {
                id: uuid::Uuid::new_v4().simple().to_string(),
                db: db.clone(),
                started: crate::clock::stopwatch(),
                synced_ms: AtomicU64::new(0),
                live: AtomicU64::new(1),
            }),
        };
        replicas.report(applied).await?;
        Ok(replicas)
    }

    /// Records that this replica has applied `applied` and is alive.
    async fn report(&self, applied: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO replicas (id, applied, last_seen) VALUES ($1, $2, now())              ON CONFLICT (id) DO UPDATE SET applied = EXCLUDED.applied, last_seen = now()",
        )
        .bind(&self.inner.id)
        .bind(applied)
        .execute(self.inner.db.get_postgres_connection_pool())
        .await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM replicas WHERE last_seen > now() - make_interval(secs => $1)",
        )
        .bind(LIVE_FOR.as_secs_f64())
        .fetch_one(self.inner.db.get_postgres_connection_pool())
        .await?;
        self.inner.live.store(live.max(1) as u64, Ordering::Relaxed);
        let since = self.inner.started.elapsed().as_millis() as u64;
        self.inner.synced_ms.store(since, Ordering::Relaxed);
        Ok(())
    }

    /// This replica's id in the registry.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// How many replicas are alive (seen in the last seconds), at least this one.
    pub fn live(&self) -> u32 {
        self.inner
            .live
            .load(Ordering::Relaxed)
            .clamp(1, u64::from(u32::MAX)) as u32
    }

    async fn leave(&self) {
        let left = sqlx::query("DELETE FROM replicas WHERE id = $1")
            .bind(&self.inner.id)
            .execute(self.inner.db.get_postgres_connection_pool())
            .await;
        if let Err(err) = left {
            tracing::warn!("leaving the replica registry: {err}");
        }
    }

    /// Whether this replica's caches can be trusted: it followed the change log recently.
    pub fn is_current(&self) -> bool {
        let synced = Duration::from_millis(self.inner.synced_ms.load(Ordering::Relaxed));
        self.inner.started.elapsed().saturating_sub(synced) < TRUST_FOR
    }

    /// 503 when this replica lost the database long enough that others no longer wait for it.
    pub fn require_current(&self) -> Result<(), ApiError> {
        if self.is_current() {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorCode::ServiceUnavailable,
            "this replica cannot reach the database to confirm credentials are current",
        )
        .with_retry_after(Duration::from_secs(1)))
    }

    /// Waits until every live replica has applied everything committed so far (a write's own
    /// events included), at most `CONFIRM_FOR`.
    pub async fn confirm_applied_everywhere(&self) {
        let pool = self.inner.db.get_postgres_connection_pool();
        let started = crate::clock::stopwatch();
        let Ok(version) = current_version(&self.inner.db).await else {
            return;
        };
        loop {
            let behind: Result<i64, sqlx::Error> = sqlx::query_scalar(
                "SELECT COUNT(*) FROM replicas WHERE applied < $1                  AND last_seen > now() - make_interval(secs => $2)",
            )
            .bind(version)
            .bind(LIVE_FOR.as_secs_f64())
            .fetch_one(pool)
            .await;
            match behind {
                Ok(0) => return,
                Ok(_) if started.elapsed() < CONFIRM_FOR => {}
                Ok(behind) => {
                    tracing::warn!(
                        version,
                        behind,
                        "answering a write before every replica applied it"
                    );
                    return;
                }
                Err(err) => {
                    tracing::warn!("confirming a write on the replicas: {err}");
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// The middleware that holds a successful write's answer until every live replica applied it.
/// Writes are the non-GET requests outside the generating routes, and the OAuth callback.
pub async fn confirm_writes(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let path = req.path();
    let writes = (!matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && !path.starts_with("/api/gate/"))
        || path == "/oauth/callback";
    let replicas = writes
        .then(|| req.app_data::<web::Data<AppState>>())
        .flatten()
        .and_then(|state| state.replicas.clone());
    let response = next.call(req).await?;
    if let Some(replicas) = replicas
        && response.status().is_success()
    {
        replicas.confirm_applied_everywhere().await;
    }
    Ok(response)
}

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
    pub replicas: Replicas,
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
                _ = self.stop.changed() => {
                    self.replicas.leave().await;
                    return;
                }
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
            // Wrapped at once: this future too may be dropped mid-`listen` after the runtime.
            let mut listening = Listening(Some(PgListener::connect_with(pool).await?));
            if let Some(listener) = listening.0.as_mut() {
                listener.listen(CHANNEL).await?;
            }
            Ok::<_, sqlx::Error>(listening)
        };
        match listening.await {
            Ok(listening) => Some(listening),
            Err(err) => {
                tracing::warn!("cannot LISTEN for cache changes, polling every {POLL:?}: {err}");
                None
            }
        }
    }

    /// Applies every event after `applied`, in order, then reports the version reached. A row
    /// that cannot be re-read now (the database hiccups) stops the pass there, to be retried, so
    /// no change is skipped; an unfinished pass reports nothing.
    async fn catch_up(&mut self) {
        if self.apply_pending().await
            && let Err(err) = self.replicas.report(self.applied).await
        {
            tracing::warn!("reporting to the replica registry: {err}");
        }
    }

    /// `true` once everything committed has been applied.
    async fn apply_pending(&mut self) -> bool {
        loop {
            let events = match self.events_after(self.applied).await {
                Ok(events) => events,
                Err(err) => {
                    tracing::warn!("reading cache events: {err}");
                    return false;
                }
            };
            let page_full = events.len() as i64 == PAGE;
            for (version, kind, entity) in events {
                if let Err(err) = self.apply(&kind, &entity).await {
                    tracing::warn!(version, kind, "re-reading a changed row: {err:#}");
                    return false;
                }
                self.applied = version;
            }
            if !page_full {
                return true;
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
