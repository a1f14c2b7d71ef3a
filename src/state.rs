//! `AppState`: built once in `run()`, cloned into every worker. Holds handles, not behaviour.

use crate::auth::{Digest, TokenCache};
use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::coherence::Replicas;
use crate::config::Config;
use crate::health::Health;
use crate::invites::Mailer;
use crate::limits::Budgets;
use crate::usage::UsageWriter;
use crate::vault::Vault;
use arc_swap::ArcSwap;
use sea_orm::DatabaseConnection;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// Admin paths and background writers only; never the request hot path.
    pub db: DatabaseConnection,
    /// Snapshot read on every request; replaced whole when an alias changes.
    pub catalog: Arc<ArcSwap<Catalog>>,
    /// Hashed brand credentials and agent tokens.
    pub auth: TokenCache,
    /// Digest of the operator token; `None` disables the operator HTTP API.
    pub operator_token: Option<Digest>,
    /// "Now" for expiry checks; tests advance it.
    pub clock: Clock,
    /// The upstream client for background and admin calls (OAuth, discovery, tests of a key,
    /// webhooks); requests use `upstream`.
    pub http: reqwest::Client,
    /// The request path's upstream clients: each worker thread its own connection pool.
    pub upstream: crate::providers::client::Upstream,
    /// Provider keys: snapshot reads, writes through the vault actor.
    pub vault: Vault,
    /// Per-provider key health and per-key counters.
    pub health: Health,
    /// Per-token budget cells: rate windows and spend reservations.
    pub budgets: Budgets,
    /// The queue to the batched trace and ledger writer.
    pub usage: UsageWriter,
    /// Sends the outbox (invite emails).
    pub mailer: Mailer,
    /// Binds invite forms to their link (per process: a form rendered before a restart must be
    /// submitted again).
    pub form_key: Arc<[u8; 32]>,
    /// This replica among those sharing a PostgreSQL database (`None` on SQLite: one node).
    pub replicas: Option<Replicas>,
    /// Counters and histograms for `GET /metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Spans of finished requests to the OTLP collector (off without `otel.endpoint`).
    pub otel: crate::otel::Otel,
    /// Signed webhooks and emails for operators (off unless `[alerts]` sends somewhere).
    pub alerts: crate::alerts::Alerts,
    /// SpiderGo's guarded fetch client, password hasher, per-host limits and running jobs.
    pub spidergo: crate::spidergo::SpiderGo,
}
