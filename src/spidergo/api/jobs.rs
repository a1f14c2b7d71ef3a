//! Async crawl jobs running in this process: each is a task that owns its crawl (the frontier
//! and everything fetched) and is reached only through its cancel signal, kept here by id.

use dashmap::DashMap;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Clone, Default)]
pub struct Running {
    cancels: Arc<DashMap<String, watch::Sender<bool>>>,
}

impl Running {
    /// Keeps a started job's cancel signal under its id.
    pub fn adopt(&self, id: &str, cancel: watch::Sender<bool>) {
        self.cancels.insert(id.to_owned(), cancel);
    }

    /// Tells a job of this process to stop; `false` when it does not run here.
    pub fn cancel(&self, id: &str) -> bool {
        self.cancels.get(id).is_some_and(|tx| tx.send(true).is_ok())
    }

    pub fn remove(&self, id: &str) {
        self.cancels.remove(id);
    }

    /// The ids of the jobs running here (marked interrupted when the process stops).
    pub fn ids(&self) -> Vec<String> {
        self.cancels.iter().map(|e| e.key().clone()).collect()
    }
}

impl Running {
    /// Marks every job of this process `failed: interrupted` (at a stop, once the workers that
    /// ran them are gone).
    pub async fn interrupt_all(&self, state: &crate::state::AppState) {
        let ids = self.ids();
        if ids.is_empty() {
            return;
        }
        let now = state.clock.now();
        match super::history::interrupt(&state.db, now, Some(&ids), now).await {
            Ok(n) => tracing::warn!(jobs = n, "spidergo: crawl jobs interrupted by the stop"),
            Err(err) => tracing::error!("spidergo: marking interrupted crawl jobs: {err}"),
        }
    }
}

/// At start: running jobs nobody has stamped for a while lost their process (a crash, a kill):
/// they are `failed: interrupted`, not running forever.
pub async fn interrupt_orphans(
    db: &sea_orm::DatabaseConnection,
    clock: &crate::clock::Clock,
) -> anyhow::Result<()> {
    let now = clock.now();
    let stale_before = now - chrono::Duration::seconds(super::http::STALE_SECS);
    let n = super::history::interrupt(db, stale_before, None, now).await?;
    if n > 0 {
        tracing::warn!(
            jobs = n,
            "spidergo: crawl jobs of a stopped process marked interrupted"
        );
    }
    Ok(())
}
