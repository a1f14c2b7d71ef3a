//! `discover_models`: a custom provider's models read from its own `GET /models` (OpenAI's list
//! shape, which vLLM, llama.cpp, Ollama and LM Studio all serve), at start and then every few
//! minutes, so an operator who loads a new model on their server sees it without a restart.
//! Found models are added to the catalog; none is removed while running (an alias may name it).

use super::Catalog;
use crate::config::Config;
use crate::providers::Endpoint;
use crate::vault::Credentials;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::Duration;

/// How often the lists are read again.
pub const REDISCOVER_EVERY: Duration = Duration::from_secs(300);

/// Reads every discovering provider's list once and adds what is new. A provider that cannot be
/// listed is warned about and left with the models it had.
pub async fn discover(config: &Config, http: &reqwest::Client, catalog: &ArcSwap<Catalog>) {
    let discovering = config
        .custom_providers
        .iter()
        .filter(|(_, spec)| spec.discover_models);
    for (id, spec) in discovering {
        let Some(provider) = catalog.load().provider(id).cloned() else {
            continue;
        };
        let key = spec.discovery_key.expose();
        let fields = match key.is_empty() {
            true => serde_json::json!({}),
            false => serde_json::json!({ "api_key": key }),
        };
        let listed = match Credentials::from_request(&provider, &fields) {
            Ok(credentials) => match Endpoint::new(&provider, &credentials) {
                Ok(endpoint) => endpoint
                    .list_models(http, config.upstream.timeout())
                    .await
                    .map_err(|e| e.message),
                Err(err) => Err(err.message),
            },
            Err(err) => Err(err),
        };
        match listed {
            Ok(names) => {
                catalog.rcu(|current| Arc::new(current.with_discovered(id, &names)));
                tracing::debug!(provider = %id, models = names.len(), "discovered models");
            }
            Err(err) => {
                tracing::warn!(provider = %id, "could not list the provider's models: {err}")
            }
        }
    }
}

/// [`discover`] every [`REDISCOVER_EVERY`] until `stop` changes.
pub async fn keep_discovering(
    config: Config,
    http: reqwest::Client,
    catalog: Arc<ArcSwap<Catalog>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(REDISCOVER_EVERY);
    every.tick().await;
    loop {
        tokio::select! {
            _ = every.tick() => discover(&config, &http, &catalog).await,
            _ = stop.changed() => return,
        }
    }
}
