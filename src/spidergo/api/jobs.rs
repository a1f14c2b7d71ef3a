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
}

impl Running {
    /// Marks every crawl this process runs `failed: interrupted` (at a stop, once the workers
    /// that ran them are gone). By owner in the database, so nothing depends on what the
    /// registry still held.
    pub async fn interrupt_all(&self, state: &crate::state::AppState) {
        let owner = super::history::Interrupted::OwnedBy(&state.spidergo.instance);
        match super::history::interrupt(&state.db, owner, state.clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(crawls = n, "spidergo: crawls interrupted by the stop"),
            Err(err) => tracing::error!("spidergo: marking interrupted crawls: {err}"),
        }
    }
}

/// At start: running crawls nobody has stamped for a while lost their process (a crash, a
/// kill): they are `failed: interrupted`, not running forever.
pub async fn interrupt_orphans(
    db: &sea_orm::DatabaseConnection,
    clock: &crate::clock::Clock,
) -> anyhow::Result<()> {
    let now = clock.now();
    let stale = super::history::Interrupted::StaleBefore(
        now - chrono::Duration::seconds(super::http::STALE_SECS),
    );
    let n = super::history::interrupt(db, stale, now).await?;
    if n > 0 {
        tracing::warn!(
            crawls = n,
            "spidergo: crawls of a stopped process marked interrupted"
        );
    }
    Ok(())
}
