//! SpiderGo, the scrape and crawl API (issue #12): its own accounts (`accounts`), `sk_live_` keys
//! and their daily quota (`keys`), a fetch pipeline that refuses non-public targets
//! (`fetch`), extraction (`extract`), the crawl rules and loop (`crawl`), and the HTTP API, its
//! history and async jobs (`api`). Served by the same binary and port as the gateway, sharing
//! its storage, config, clock and mailer, but not the brand realm.

pub mod accounts;
pub mod api;
pub mod crawl;
pub mod error;
pub mod extract;
pub mod fetch;
pub mod keys;
pub mod openapi;

use crate::config::SpiderGoConfig;
use fetch::client::{Lookup, SystemLookup};
use fetch::guard::Guard;
use std::sync::Arc;

/// The handles every SpiderGo request uses; cheap to clone.
#[derive(Clone)]
pub struct SpiderGo {
    pub config: Arc<SpiderGoConfig>,
    pub guard: Guard,
    pub lookup: Arc<dyn Lookup>,
    /// The one client for pages, robots.txt and sitemaps: guarded resolver and redirect policy.
    pub client: reqwest::Client,
    pub passwords: accounts::password::Passwords,
    /// Pages fetched at once from each host, across every crawl of this process.
    pub hosts: crawl::run::HostLimits,
    /// Async crawl jobs running in this process.
    pub jobs: api::jobs::Running,
    /// Extractions running at once: one per core. More would not finish sooner, and each
    /// blocking thread that parses keeps its own allocator heap (memory grew with crawl
    /// concurrency before this bound).
    pub extracting: Arc<tokio::sync::Semaphore>,
    /// This process among those sharing the database: the owner of the crawls it runs.
    pub instance: Arc<str>,
}

impl SpiderGo {
    pub fn new(config: &SpiderGoConfig) -> anyhow::Result<SpiderGo> {
        if !config.allow_cidrs.is_empty() {
            let ranges: Vec<String> = config.allow_cidrs.iter().map(ToString::to_string).collect();
            tracing::warn!(
                allowed = %ranges.join(","),
                "spidergo.allow_cidrs is set: SpiderGo may fetch these non-public ranges"
            );
        }
        let guard = Guard::new(config.allow_cidrs.clone());
        let lookup: Arc<dyn Lookup> = Arc::new(SystemLookup);
        let client = fetch::client::guarded_client(&guard, lookup.clone(), &config.user_agent)?;
        Ok(SpiderGo {
            passwords: accounts::password::Passwords::new(
                config.argon2_memory_kib,
                config.argon2_iterations,
            )?,
            hosts: crawl::run::HostLimits::new(config.per_host_concurrency),
            jobs: api::jobs::Running::default(),
            extracting: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, usize::from),
            )),
            instance: crate::random::hex_secret(8)?.into(),
            config: Arc::new(config.clone()),
            guard,
            lookup,
            client,
        })
    }
}

/// Mounts SpiderGo's routes: `/auth/*` (cookie sessions), `/v1/*` (`sk_live_` keys), `/history`.
pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    accounts::http::configure(cfg);
    keys::http::configure(cfg);
    api::http::configure(cfg);
}
