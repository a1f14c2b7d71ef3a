//! The one connection to Redis that replicas share their windows and key health through.
//!
//! Connects lazily: start-up never waits for Redis, and calls fail fast (half a second) while it
//! is away, so a caller can fall back (`redis.on_error`) instead of stalling requests.

use crate::config::RedisConfig;
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Clone)]
pub struct RedisLink {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: Arc<str>,
}

impl RedisLink {
    pub fn connect(config: &RedisConfig) -> anyhow::Result<RedisLink> {
        let client = redis::Client::open(config.url.expose())
            .map_err(|_| anyhow::anyhow!("invalid config at `redis.url`: not a Redis URL"))?;
        let settings = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), settings)
            .map_err(|e| anyhow::anyhow!("connecting to Redis: {e}"))?;
        Ok(RedisLink {
            client,
            conn,
            prefix: config.prefix.as_str().into(),
        })
    }

    /// A handle on the shared, reconnecting connection (cheap to clone, multiplexed).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Every key and channel of this deployment starts with it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A connection of its own for a subscription (pub/sub cannot share the multiplexed one).
    pub async fn subscriber(&self) -> redis::RedisResult<redis::aio::PubSub> {
        self.client.get_async_pubsub().await
    }

    /// Whether Redis answers now (for `/health`).
    pub async fn reachable(&self) -> bool {
        let pong: redis::RedisResult<String> =
            redis::cmd("PING").query_async(&mut self.conn()).await;
        pong.is_ok()
    }
}

/// Logs that Redis is unreachable and what that means, at most every ten seconds per process
/// (every request would otherwise repeat it).
pub fn warn_unreachable(consequence: &str, err: &redis::RedisError) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = crate::clock::stopwatch_secs();
    let last = LAST.load(Ordering::Relaxed);
    if now >= last + 10
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!("Redis unreachable ({consequence}): {err}");
    }
}
