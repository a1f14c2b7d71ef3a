//! Persisting `last_used_at` off the request path.
//!
//! Authentication stamps the cached entry (an atomic store); this task writes the stamps that
//! changed every `tokens.last_used_flush_secs`, and once more at shutdown.

use super::store;
use crate::auth::TokenCache;
use sea_orm::DatabaseConnection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Last value written per token id, so unchanged tokens cost nothing.
#[derive(Clone, Default)]
pub struct WrittenStamps(Arc<Mutex<HashMap<i32, i64>>>);

/// Writes every stamp newer than the last write. Errors are logged; the stamps stay pending.
pub async fn flush_last_used(db: &DatabaseConnection, cache: &TokenCache, written: &WrittenStamps) {
    let pending: Vec<(i32, i64)> = {
        let Ok(seen) = written.0.lock() else { return };
        cache
            .tokens()
            .iter()
            .map(|t| (t.id, t.last_used_at()))
            .filter(|(id, at)| *at > 0 && seen.get(id).is_none_or(|w| w < at))
            .collect()
    };
    if pending.is_empty() {
        return;
    }
    match store::write_last_used(db, &pending).await {
        Ok(()) => {
            if let Ok(mut seen) = written.0.lock() {
                seen.extend(pending);
            }
        }
        Err(err) => tracing::warn!("writing last_used_at: {err}"),
    }
}

/// Starts the periodic flush; returns the shared `Written` for the final flush at shutdown.
pub fn spawn_last_used_flusher(
    db: DatabaseConnection,
    cache: TokenCache,
    every: Duration,
) -> WrittenStamps {
    let written = WrittenStamps::default();
    let task_written = written.clone();
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
        loop {
            tick.tick().await;
            flush_last_used(&db, &cache, &task_written).await;
        }
    });
    written
}
