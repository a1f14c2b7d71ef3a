//! SpiderGate: a self-hosted, OpenAI-compatible LLM gateway.
//!
//! [`run`] is the one construction path, used by `main` and by the integration tests alike.

pub mod alerts;
pub mod auth;
pub mod body;
pub mod brands;
pub mod catalog;
pub mod clock;
pub mod coherence;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod gate;
pub mod health;
pub mod invites;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod money;
pub mod openapi;
pub mod otel;
pub mod paging;
pub mod path_id;
pub mod providers;
pub mod random;
pub mod raw;
pub mod redis_link;
pub mod routes;
pub mod routing;
pub mod secret;
pub mod spidergo;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod tokens;
pub mod usage;
pub mod vault;

use crate::auth::{Digest, TokenCache};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::health::Health;
use crate::limits::Budgets;
use crate::state::AppState;
use crate::usage::UsageWriter;
use crate::vault::{Vault, VaultCipher};
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::rt::task::JoinHandle;
use actix_web::{HttpServer, web};
use anyhow::Context;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A started server: bound, not yet awaited.
pub struct App {
    port: u16,
    server: Server,
    state: AppState,
    last_used: tokens::WrittenStamps,
    /// Loops that run beside the server and end with it.
    background: Background,
}

/// The loops beside the server (re-auth emails, OAuth refresh) and the signal that ends them.
struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl App {
    /// The bound port (useful when the config asked for port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server gracefully from elsewhere.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The shared state, for in-process callers such as tests and the CLI.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGINT/SIGTERM or [`ServerHandle::stop`], lets in-flight requests finish,
    /// then writes what is still only in memory.
    pub async fn serve(self) -> anyhow::Result<()> {
        self.server.await.context("serving HTTP")?;
        // The workers are gone and their crawl jobs with them: say so rather than leave them
        // "running".
        self.state.spidergo.jobs.interrupt_all(&self.state).await;
        let within = self.state.config.shutdown_timeout();
        // Before the replica leaves the registry: a lease still held then is forfeited.
        if tokio::time::timeout(within.max(LEASES_DRAIN), self.state.budgets.return_leases())
            .await
            .is_err()
        {
            tracing::warn!("giving budget leases back did not finish: they are forfeited in 15 s");
        }
        // Unsent mail stays in the outbox for the next start; the loops finish what they hold
        // (a rotated refresh token, a disabled key's re-auth email) before they return.
        self.state.mailer.stop();
        let _ = self.background.stop.send(true);
        for task in self.background.tasks {
            if tokio::time::timeout(self.state.config.shutdown_timeout(), task)
                .await
                .is_err()
            {
                tracing::warn!("a background loop did not finish within the shutdown timeout");
            }
        }
        // Bounded so a database that is gone cannot hold the process forever; what is lost is said.
        if tokio::time::timeout(LEDGER_DRAIN, self.state.usage.flush())
            .await
            .is_err()
        {
            tracing::error!(
                rows = self.state.usage.backlog(),
                "the ledger could not be written within {LEDGER_DRAIN:?}: these traces are lost"
            );
        }
        let last_used = tokens::flush_last_used(&self.state.db, &self.state.auth, &self.last_used);
        if tokio::time::timeout(within.max(LAST_USED_DRAIN), last_used)
            .await
            .is_err()
        {
            tracing::warn!("last-use stamps were not written before stopping");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// How long stopping waits at least for budget leases to go back (each exchange gives up after
/// 2 s; they run side by side).
const LEASES_DRAIN: Duration = Duration::from_secs(10);
/// How long stopping waits for the ledger to commit what is queued.
const LEDGER_DRAIN: Duration = Duration::from_secs(60);
/// How long stopping waits for the last-use stamps.
const LAST_USED_DRAIN: Duration = Duration::from_secs(10);

/// Selects rustls' `ring` backend for every TLS client in the process (reqwest, sqlx). Idempotent;
/// `run` calls it, and so must anything that builds a `reqwest::Client` before `run`.
pub fn install_tls_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the state (database, migrations, catalog, caches), binds, and starts the workers.
pub async fn run(config: Config) -> anyhow::Result<App> {
    install_tls_provider();
    // Bind before anything starts: a port in use fails here with nothing to stop.
    let listener = TcpListener::bind((config.server.host.as_str(), config.server.port))
        .with_context(|| format!("binding {}:{}", config.server.host, config.server.port))?;
    let port = listener.local_addr()?.port();
    let (state, background) = build_state(config).await?;
    let config = state.config.clone();
    let data = web::Data::new(state.clone());
    let body_limit = config.server.body_limit_bytes;
    let body_deadline = Duration::from_secs(config.server.body_read_timeout_secs);
    let mut server = HttpServer::new(move || {
        // Runs once on each worker's thread: its upstream client (and TLS root store) is made
        // now rather than by the first request it serves.
        data.upstream.client();
        actix_web::App::new()
            .app_data(data.clone())
            .wrap(from_fn(move |req, next| {
                body::guard(req, next, body_deadline)
            }))
            .wrap(from_fn(coherence::confirm_writes))
            .wrap(routes::envelope_for_bare_errors())
            .wrap(from_fn(telemetry::request_context))
            .configure(|cfg| routes::configure(cfg, body_limit))
    })
    // Streams are many small writes: without TCP_NODELAY, Nagle and delayed ACKs add 40 ms.
    .tcp_nodelay(true)
    .listen(listener)?
    .shutdown_timeout(config.server.shutdown_timeout_secs);
    if config.server.workers > 0 {
        server = server.workers(config.server.workers);
    }
    let last_used = tokens::spawn_last_used_flusher(
        state.db.clone(),
        state.auth.clone(),
        Duration::from_secs(config.tokens.last_used_flush_secs),
    );
    tracing::info!(address = %format!("{}:{port}", config.server.host), "SpiderGate listening");
    Ok(App {
        port,
        server: server.run(),
        state,
        last_used,
        background,
    })
}

/// Everything the handlers share, loaded once; after this nothing on the hot path reads the
/// database. Also starts the background loops that live as long as the server (re-auth emails,
/// OAuth refresh) and returns them, to be ended at shutdown.
async fn build_state(config: Config) -> anyhow::Result<(AppState, Background)> {
    install_tls_provider();
    let db = storage::connect(&config.database).await?;
    // Before the caches load: changes made while they load are replayed afterwards.
    // Registered as a replica before that too, so writers wait for this one from now on.
    let followed = if coherence::Follower::needed(&db) {
        let applied = coherence::current_version(&db).await?;
        let replicas = coherence::Replicas::register(&db, applied)
            .await
            .context("registering in the replica registry")?;
        Some((applied, replicas))
    } else {
        None
    };
    let catalog = load_catalog(&config, &db).await?;
    let auth = load_credentials(&db).await?;
    let operator_token =
        (!config.admin.token.is_empty()).then(|| Digest::of(config.admin.token.expose()));
    let cipher = VaultCipher::from_keys(&config.vault.keys)?;
    if cipher.is_none() {
        tracing::warn!(
            "no vault key configured (SPIDERGATE_VAULT_KEY): provider keys cannot be added"
        );
    }
    let (disabled_keys, disabled) = tokio::sync::mpsc::unbounded_channel();
    let clock = clock::Clock::default();
    let vault = Vault::start(&db, cipher, Some(disabled_keys), clock.clone()).await?;
    let now = clock.now();
    let period = limits::BudgetPeriod::containing(now, None);
    let day_start = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let key_spend = usage::load_integration_spend(&db, period.start, day_start).await?;
    // Replicas with Redis share token windows, key limits and key health through one link.
    let redis = match (&followed, config.redis.url.is_empty()) {
        (Some((_, replicas)), false) => {
            let link = redis_link::RedisLink::connect(&config.redis)?;
            Some((link, replicas.clone()))
        }
        _ => None,
    };
    let windows = redis
        .as_ref()
        .map(|(link, replicas)| limits::SharedWindows::new(link.clone(), replicas.clone()));
    let shared = redis
        .as_ref()
        .zip(windows.clone())
        .map(|((_, replicas), windows)| limits::Shared {
            windows,
            on_error: config.redis.on_error,
            replicas: replicas.clone(),
        });
    let shared_keys = redis
        .as_ref()
        .zip(windows.clone())
        .map(|((link, replicas), windows)| health::SharedKeys {
            health: health::SharedHealth::new(link.clone(), config.health.cooldown()),
            windows,
            on_error: config.redis.on_error,
            replicas: replicas.clone(),
        });
    let (upstream, http) = providers::client::Upstream::new(&config.upstream)?;
    let mailer = invites::Mailer::start(
        &config.mail,
        &config.alerts,
        http.clone(),
        db.clone(),
        clock.clone(),
    )?;
    let (stop, stopping) = watch::channel(false);
    let (alerts, alerting) = alerts::Alerts::start(
        &config.alerts,
        db.clone(),
        mailer.clone(),
        clock.clone(),
        stopping.clone(),
    );
    let providers = catalog.providers().iter().map(|p| p.id.clone());
    let health = Health::start(
        providers,
        &vault,
        config.health.cooldown(),
        &key_spend,
        &clock,
        shared_keys,
        alerts.clone(),
    );
    let budgets = Budgets::new(
        usage::load_token_seeds(&db, now).await?,
        config.hold_ttl(),
        clock.clone(),
        shared,
        followed
            .as_ref()
            .map(|(_, replicas)| limits::Leases::new(db.clone(), replicas.clone())),
        alerts.clone(),
    );
    let usage = UsageWriter::start(db.clone(), &config.usage);
    let recorded = metrics::Metrics::new(&config.metrics);
    let (otel, exporting) = otel::Otel::start(&config.otel, http.clone(), stopping.clone());
    let spidergo = spidergo::SpiderGo::new(&config.spidergo)?;
    spidergo::api::jobs::interrupt_orphans(&db, &clock).await?;
    let state = AppState {
        config: Arc::new(config),
        db,
        catalog: Arc::new(ArcSwap::from_pointee(catalog)),
        auth,
        operator_token,
        clock,
        http,
        upstream,
        vault,
        health,
        budgets,
        usage,
        mailer,
        form_key: Arc::new(form_key()?),
        replicas: followed.as_ref().map(|(_, replicas)| replicas.clone()),
        metrics: recorded,
        otel,
        alerts,
        spidergo,
    };
    let mut tasks = vec![
        actix_web::rt::spawn(invites::reauth::listen(
            disabled,
            state.clone(),
            stopping.clone(),
        )),
        actix_web::rt::spawn(
            vault::OAuthRefresher {
                vault: state.vault.clone(),
                health: state.health.clone(),
                http: state.http.clone(),
                config: state.config.clone(),
                clock: state.clock.clone(),
                alerts: state.alerts.clone(),
                stop: stopping.clone(),
            }
            .run(),
        ),
    ];
    // Stopped with the other loops, after the server: every finished request's spans are queued.
    tasks.extend(exporting);
    tasks.extend(alerting);
    if state
        .config
        .custom_providers
        .values()
        .any(|c| c.discover_models)
    {
        // Listed once before serving, so the first requests see the models.
        catalog::discovery::discover(&state.config, &state.http, &state.catalog).await;
        tasks.push(tokio::spawn(catalog::discovery::keep_discovering(
            (*state.config).clone(),
            state.http.clone(),
            state.catalog.clone(),
            stopping.clone(),
        )));
    }
    if let Some(windows) = windows {
        // What each kind of window admitted here, replayed into a Redis that came back empty.
        let budgets = state.budgets.clone();
        windows.add_source(Arc::new(move || {
            let budgets = budgets.clone();
            Box::pin(async move { budgets.shadows().await })
        }));
        let health = state.health.clone();
        windows.add_source(Arc::new(move || {
            let health = health.clone();
            Box::pin(async move { health.shadows().await })
        }));
        tasks.push(tokio::spawn(windows.follow_generation(stopping.clone())));
    }
    if let Some(shared) = state.health.shared() {
        let follow = shared.health.clone().follow(
            state.health.clone(),
            state.vault.clone(),
            stopping.clone(),
        );
        tasks.push(tokio::spawn(follow));
    }
    if let Some((applied, replicas)) = followed {
        let follower = coherence::Follower {
            db: state.db.clone(),
            caches: coherence::Caches {
                auth: state.auth.clone(),
                vault: state.vault.clone(),
                catalog: state.catalog.clone(),
            },
            replicas,
            applied,
            stop: stopping.clone(),
        };
        // On the runtime itself, not the arbiter's local set: a runtime dropped without a stop
        // (a test's end) then drops the task inside its context, where sqlx's drops can run.
        tasks.push(tokio::spawn(follower.run()));
    }
    Ok((state, Background { stop, tasks }))
}

fn form_key() -> anyhow::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("OS randomness unavailable: {e}"))?;
    Ok(key)
}

/// The built-in catalog with config overrides and the operator's stored alias chains.
async fn load_catalog(
    config: &Config,
    db: &sea_orm::DatabaseConnection,
) -> anyhow::Result<Catalog> {
    let mut catalog = Catalog::load(&config.providers)?.with_custom(&config.custom_providers)?;
    for (alias, models) in catalog::load_overrides(db).await? {
        match catalog.with_chain(&alias, models) {
            Ok(updated) => catalog = updated,
            Err(err) => tracing::warn!(alias, "ignoring a stored alias override: {err}"),
        }
    }
    Ok(catalog)
}

/// Every brand credential and agent token, as digests, into a fresh cache.
async fn load_credentials(db: &sea_orm::DatabaseConnection) -> anyhow::Result<TokenCache> {
    let auth = TokenCache::default();
    let brands = brands::load_into_cache(db, &auth).await?;
    let client_ids: HashMap<i32, Arc<str>> = brands
        .iter()
        .map(|b| (b.id, b.client_id.as_str().into()))
        .collect();
    let tokens = tokens::load_into_cache(db, &auth, &client_ids).await?;
    tracing::info!(brands = brands.len(), tokens, "credentials loaded");
    Ok(auth)
}
