//! Typed configuration: the built-in `config.toml`, an optional file over it, then environment.
//!
//! Every setting lives in one `<Section>Config` struct with `deny_unknown_fields`, so a typo in a
//! file or in a `SPIDERGATE_<SECTION>__<KEY>` variable stops start-up with the key's name instead of
//! being silently ignored.

use crate::secret::Secret;
use anyhow::{Context, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The compiled-in defaults: the repository's documented `config.toml`.
const BUILTIN: &str = include_str!("../config.toml");
const ENV_PREFIX: &str = "SPIDERGATE_";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub admin: AdminConfig,
    pub vault: VaultConfig,
    pub tokens: TokensConfig,
    pub upstream: UpstreamConfig,
    pub routing: RoutingConfig,
    pub health: HealthConfig,
    pub limits: LimitsConfig,
    pub usage: UsageConfig,
    pub traces: TracesConfig,
    pub mail: MailConfig,
    pub invites: InvitesConfig,
    pub oauth: OAuthConfig,
    pub log: LogConfig,
    pub redis: RedisConfig,
    pub metrics: MetricsConfig,
    pub otel: OtelConfig,
    pub alerts: AlertsConfig,
    pub spidergo: SpiderGoConfig,
    /// Per-provider overrides keyed by catalog provider id; unknown ids are refused by the catalog.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderOverride>,
    /// Providers the operator adds without a release, keyed by their new id.
    #[serde(default)]
    pub custom_providers: BTreeMap<String, CustomProvider>,
}

/// `[custom_providers.<id>]`: an upstream of a known dialect at the operator's URL. It appears in
/// `/providers` and `/models` like a built-in; brands (or the pool) add keys for it as for any
/// provider (the key is optional: self-hosted servers often take none).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomProvider {
    #[serde(default)]
    pub api: crate::catalog::Api,
    pub base_url: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub auth: Option<crate::catalog::Auth>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub param_mappings: BTreeMap<String, String>,
    /// Models by name (`"llama-3.1-8b"`) or in full (`{ name = …, context_window = …, … }`).
    #[serde(default)]
    pub models: Vec<CustomModel>,
    /// List `GET <base_url>/models` at start and every few minutes, adding what it serves.
    #[serde(default)]
    pub discover_models: bool,
    /// The key `discover_models` lists with (requests use the vault's keys).
    #[serde(default)]
    pub discovery_key: Secret,
}

/// One model of a custom provider: a name, or a table with its limits, prices and capabilities.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CustomModel {
    Name(String),
    Spec(CustomModelSpec),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomModelSpec {
    pub name: String,
    pub display_name: Option<String>,
    pub context_window: Option<u32>,
    pub max_output_tokens: Option<u32>,
    pub capabilities: Option<Vec<String>>,
    #[serde(default)]
    pub input_per_mtok: f64,
    #[serde(default)]
    pub output_per_mtok: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub workers: usize,
    pub body_limit_bytes: usize,
    pub body_read_timeout_secs: u64,
    pub public_url: String,
    pub shutdown_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub token: Secret,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    pub keys: Vec<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    pub last_used_flush_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub connect_timeout_secs: u64,
    pub timeout_secs: u64,
    pub stream_idle_timeout_secs: u64,
    /// Offer HTTP/2 (ALPN) to TLS upstreams; `false` speaks HTTP/1.1 only.
    pub http2: bool,
    /// An idle pooled connection is closed after this long.
    pub pool_idle_secs: u64,
    /// Idle connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
    /// A PEM bundle of extra roots to trust (an internal CA, a TLS-inspecting proxy).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

impl UpstreamConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn stream_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.stream_idle_timeout_secs)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    pub max_attempts: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    pub cooldown_secs: u64,
}

impl HealthConfig {
    pub fn cooldown(&self) -> Duration {
        Duration::from_secs(self.cooldown_secs)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// No longer used (a token's budget is a small cell that is never parked); accepted so
    /// configs written for earlier versions still load.
    pub idle_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageConfig {
    pub flush_window_ms: u64,
    pub batch_rows: usize,
    /// Traces the writer's queue holds, counting those of requests in flight; past it, new
    /// requests wait for room.
    pub queue_rows: usize,
    pub queue_wait_ms: u64,
}

impl UsageConfig {
    pub fn flush_window(&self) -> Duration {
        Duration::from_millis(self.flush_window_ms)
    }

    pub fn queue_wait(&self) -> Duration {
        Duration::from_millis(self.queue_wait_ms)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `GET /metrics` (Prometheus text).
    pub enabled: bool,
    /// When set, `/metrics` wants `Authorization: Bearer <token>`.
    pub token: Secret,
    /// Also a series per agent token (its numeric id, never a secret).
    pub per_token: bool,
    /// A per-token series nothing updated for this long is dropped.
    pub idle_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Where alert webhooks are posted; empty: none.
    pub webhook_url: Secret,
    /// Signs each webhook (`X-SpiderGate-Signature`); empty: unsigned.
    pub webhook_secret: Secret,
    /// Also email each alert here (over `[mail]`); empty: no email.
    pub email: String,
}

impl AlertsConfig {
    pub fn enabled(&self) -> bool {
        !self.webhook_url.is_empty() || !self.email.is_empty()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtelConfig {
    /// OTLP/HTTP collector base URL (`http://collector:4318`); empty: no spans are exported.
    pub endpoint: String,
    pub service_name: String,
    /// Share of requests without a sampled parent that are traced (0.0 to 1.0). A client's
    /// `traceparent` decides for its own requests.
    pub sample_ratio: f64,
    /// Spans are sent in batches at least this often.
    pub batch_delay_ms: u64,
    /// Extra headers on every export (a collector's API key; `_` in a name is sent as `-`).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
}

impl OtelConfig {
    /// `endpoint + /v1/traces`, unless the endpoint already names the path.
    pub fn traces_url(&self) -> Option<String> {
        let base = self.endpoint.trim_end_matches('/');
        if base.is_empty() {
            return None;
        }
        Some(if base.ends_with("/v1/traces") {
            base.to_owned()
        } else {
            format!("{base}/v1/traces")
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracesConfig {
    pub store_bodies: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    pub smtp_host: String,
    pub smtp_port: u16,
    pub tls: MailTls,
    pub username: String,
    pub password: Secret,
    pub from: String,
    pub poll_secs: u64,
    pub retry_max_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTls {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvitesConfig {
    pub ttl_hours: u64,
}

/// `[spidergo]`: the scrape and crawl API's limits, fetch safety and sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpiderGoConfig {
    /// A TOML list, or one comma-separated string (as the environment variable gives).
    #[serde(deserialize_with = "cidr_list")]
    pub allow_cidrs: Vec<crate::spidergo::fetch::guard::Cidr>,
    pub user_agent: String,
    pub page_cap_bytes: usize,
    pub page_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub max_request_timeout_ms: u64,
    pub max_pages_cap: u32,
    pub job_max_pages_cap: u32,
    pub max_depth_cap: u32,
    pub crawl_concurrency: usize,
    pub per_host_concurrency: usize,
    pub max_crawl_delay_secs: u64,
    pub crawl_bytes_cap: u64,
    pub history_content_chars: usize,
    pub daily_limit: u32,
    pub max_active_keys: u32,
    pub access_ttl_mins: u64,
    pub refresh_ttl_days: u64,
    pub secure_cookies: bool,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub code_ttl_mins: u64,
}

fn cidr_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<crate::spidergo::fetch::guard::Cidr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Cidrs {
        List(Vec<String>),
        Text(String),
    }
    let texts = match Cidrs::deserialize(d)? {
        Cidrs::List(list) => list,
        Cidrs::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    texts
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().map_err(serde::de::Error::custom))
        .collect()
}

/// Timings of OAuth sign-in and token refresh (the endpoints are per provider, in
/// `[providers.<id>.oauth]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    pub flow_ttl_secs: u64,
    pub refresh_before_secs: u64,
    pub refresh_check_secs: u64,
}

impl OAuthConfig {
    pub fn refresh_check(&self) -> Duration {
        Duration::from_secs(self.refresh_check_secs.max(1))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// Empty: off (one node, or replicas with per-replica rate windows).
    pub url: Secret,
    pub prefix: String,
    pub on_error: OnRedisError,
}

/// What rate-limited tokens get while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRedisError {
    /// Each replica admits its share of each limit (limit ÷ live replicas): never above the limit.
    Share,
    /// 503 `service_unavailable`: never above the limit, and nothing admitted.
    FailClosed,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderOverride {
    pub base_url: Option<String>,
    /// Present for a provider whose keys are obtained by OAuth sign-in instead of pasted.
    pub oauth: Option<OAuthClient>,
}

/// This gateway's OAuth client registration at one provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClient {
    pub authorize_url: String,
    pub token_url: String,
    pub client_id: String,
    /// Empty for a public client (PKCE alone).
    #[serde(default)]
    pub client_secret: Secret,
    /// A TOML list, or one string of space- or comma-separated scopes (as an env variable gives).
    #[serde(default, deserialize_with = "scope_list")]
    pub scopes: Vec<String>,
}

fn scope_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scopes {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Scopes::deserialize(d)? {
        Scopes::List(list) => list,
        Scopes::Text(text) => text
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

impl Config {
    /// The built-in defaults only: no file, no environment. Tests start here.
    pub fn builtin() -> anyhow::Result<Config> {
        Self::from_layers(None, std::iter::empty())
    }

    /// Built-in defaults, then `path` (or `SPIDERGATE_CONFIG`), then `SPIDERGATE_*` variables.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let from_env = std::env::var_os("SPIDERGATE_CONFIG");
        let path = path.or(from_env.as_deref().map(Path::new));
        let file = match path {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?,
            ),
            None => None,
        };
        Self::from_layers(file.as_deref(), std::env::vars())
    }

    /// Layers `file` and the given environment over the built-in defaults and validates the result.
    pub fn from_layers(
        file: Option<&str>,
        env: impl Iterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut tree: toml::Table = BUILTIN.parse().context("built-in config.toml")?;
        if let Some(file) = file {
            let overlay: toml::Table = file.parse().context("parsing config file")?;
            merge(&mut tree, overlay);
        }
        for (name, value) in env {
            apply_env(&mut tree, &name, &value)?;
        }
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(tree)).map_err(|err| {
                anyhow::anyhow!("invalid config at `{}`: {}", err.path(), err.inner())
            })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let url = &self.database.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            bail!("invalid config at `database.url`: expected sqlite:… or postgres://…");
        }
        if self.server.body_limit_bytes == 0 {
            bail!("invalid config at `server.body_limit_bytes`: must be positive");
        }
        if self.server.body_read_timeout_secs == 0 {
            bail!("invalid config at `server.body_read_timeout_secs`: must be positive");
        }
        let postgres = !url.starts_with("sqlite:");
        if !self.redis.url.is_empty() && !postgres {
            bail!(
                "invalid config at `redis.url`: Redis coordinates replicas sharing a PostgreSQL \
                 database; with SQLite (one node) leave it empty"
            );
        }
        if self.usage.batch_rows == 0 {
            bail!("invalid config at `usage.batch_rows`: must be positive");
        }
        if self.usage.queue_rows < self.usage.batch_rows {
            bail!("invalid config at `usage.queue_rows`: must be at least `usage.batch_rows`");
        }
        if self.database.max_connections == 0 {
            bail!("invalid config at `database.max_connections`: must be positive");
        }
        let go = &self.spidergo;
        for (value, at) in [
            (go.page_cap_bytes as u64, "page_cap_bytes"),
            (go.page_timeout_ms, "page_timeout_ms"),
            (go.request_timeout_ms, "request_timeout_ms"),
            (go.crawl_concurrency as u64, "crawl_concurrency"),
            (go.per_host_concurrency as u64, "per_host_concurrency"),
            (go.max_active_keys.into(), "max_active_keys"),
            (go.argon2_iterations.into(), "argon2_iterations"),
        ] {
            if value == 0 {
                bail!("invalid config at `spidergo.{at}`: must be positive");
            }
        }
        if go.max_request_timeout_ms < go.request_timeout_ms {
            bail!(
                "invalid config at `spidergo.max_request_timeout_ms`: must be at least \
                 `spidergo.request_timeout_ms`"
            );
        }
        if self.oauth.flow_ttl_secs == 0 {
            bail!("invalid config at `oauth.flow_ttl_secs`: must be positive");
        }
        let hook = self.alerts.webhook_url.expose();
        if !hook.is_empty()
            && !url::Url::parse(hook).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            bail!("invalid config at `alerts.webhook_url`: expected an http(s) URL");
        }
        if !self.alerts.email.is_empty()
            && !crate::brands::manage::is_plausible_email(&self.alerts.email)
        {
            bail!("invalid config at `alerts.email`: expected an email address");
        }
        let otel = &self.otel;
        if !otel.endpoint.is_empty() && url::Url::parse(&otel.endpoint).is_err() {
            bail!(
                "invalid config at `otel.endpoint`: expected a URL such as http://127.0.0.1:4318"
            );
        }
        if !(0.0..=1.0).contains(&otel.sample_ratio) {
            bail!("invalid config at `otel.sample_ratio`: must be between 0.0 and 1.0");
        }
        if otel.batch_delay_ms == 0 {
            bail!("invalid config at `otel.batch_delay_ms`: must be positive");
        }
        for (id, client) in self.providers.iter() {
            if let Some(client) = &client.oauth {
                client.validate(&format!("providers.{id}.oauth"))?;
            }
        }
        for (id, custom) in &self.custom_providers {
            let at = format!("custom_providers.{id}");
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            {
                bail!("invalid config at `{at}`: an id holds only a-z, 0-9, _ and -");
            }
            match url::Url::parse(&custom.base_url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => {
                    bail!("invalid config at `{at}.base_url`: expected an http:// or https:// URL")
                }
            }
            if custom.models.is_empty() && !custom.discover_models {
                bail!(
                    "invalid config at `{at}`: list its `models` or set `discover_models = true`"
                );
            }
            for model in &custom.models {
                let (name, prices) = match model {
                    CustomModel::Name(name) => (name, (0.0, 0.0)),
                    CustomModel::Spec(spec) => {
                        (&spec.name, (spec.input_per_mtok, spec.output_per_mtok))
                    }
                };
                if name.is_empty() {
                    bail!("invalid config at `{at}.models`: a model needs a name");
                }
                if !(prices.0 >= 0.0 && prices.1 >= 0.0) {
                    bail!("invalid config at `{at}.models`: `{name}` has a negative price");
                }
            }
        }
        Ok(())
    }

    /// The OAuth client registered for `provider`, if its keys come from OAuth sign-in.
    pub fn oauth_client(&self, provider: &str) -> Option<&OAuthClient> {
        self.providers.get(provider)?.oauth.as_ref()
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.server.shutdown_timeout_secs)
    }

    /// How long a budget hold may stay unsettled before it is dropped: longer than any request
    /// (every attempt timing out) plus a long stream.
    pub fn hold_ttl(&self) -> Duration {
        self.upstream.timeout() * self.routing.max_attempts.max(1) as u32
            + Duration::from_secs(3600)
    }
}

impl OAuthClient {
    fn validate(&self, at: &str) -> anyhow::Result<()> {
        for (name, url) in [
            ("authorize_url", &self.authorize_url),
            ("token_url", &self.token_url),
        ] {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| anyhow::anyhow!("invalid config at `{at}.{name}`: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                bail!("invalid config at `{at}.{name}`: must be an http(s) URL");
            }
        }
        if self.client_id.trim().is_empty() {
            bail!("invalid config at `{at}.client_id`: must not be empty");
        }
        Ok(())
    }
}

/// Deep-merges `overlay` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(overlay_table)) => {
                merge(base_table, overlay_table)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Applies one environment variable if it is ours: the two secret shortcuts, or
/// `SPIDERGATE_<SECTION>__<KEY>` (any depth). Other variables are ignored.
fn apply_env(tree: &mut toml::Table, name: &str, value: &str) -> anyhow::Result<()> {
    let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
        return Ok(());
    };
    let path: Vec<String> = match rest {
        "ADMIN_TOKEN" => vec!["admin".into(), "token".into()],
        "VAULT_KEY" => {
            let keys = value.split(',').map(str::trim).filter(|k| !k.is_empty());
            let keys = keys.map(|k| toml::Value::String(k.to_owned())).collect();
            return set_path(
                tree,
                &["vault".into(), "keys".into()],
                toml::Value::Array(keys),
            );
        }
        _ if rest.contains("__") => rest.split("__").map(str::to_ascii_lowercase).collect(),
        _ => return Ok(()),
    };
    let current = lookup(tree, &path);
    let parsed = parse_env_value(name, value, current)?;
    set_path(tree, &path, parsed)
}

fn lookup<'a>(tree: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    let (last, parents) = path.split_last()?;
    let mut table = tree;
    for key in parents {
        table = table.get(key)?.as_table()?;
    }
    table.get(last)
}

fn set_path(tree: &mut toml::Table, path: &[String], value: toml::Value) -> anyhow::Result<()> {
    let Some((last, parents)) = path.split_last() else {
        bail!("empty configuration path");
    };
    let mut table = tree;
    for key in parents {
        let entry = table
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(next) = entry.as_table_mut() else {
            bail!(
                "invalid config at `{}`: `{key}` is not a section",
                path.join(".")
            );
        };
        table = next;
    }
    table.insert(last.clone(), value);
    Ok(())
}

/// Parses a variable's text as the type the setting already has (a port stays an integer, a
/// token stays a string even when it looks like a number). New keys are taken as strings.
fn parse_env_value(
    name: &str,
    raw: &str,
    current: Option<&toml::Value>,
) -> anyhow::Result<toml::Value> {
    let invalid = |what: &str| anyhow::anyhow!("environment variable {name}: expected {what}");
    Ok(match current {
        Some(toml::Value::Integer(_)) => {
            toml::Value::Integer(raw.trim().parse().map_err(|_| invalid("an integer"))?)
        }
        Some(toml::Value::Float(_)) => {
            toml::Value::Float(raw.trim().parse().map_err(|_| invalid("a number"))?)
        }
        Some(toml::Value::Boolean(_)) => {
            toml::Value::Boolean(raw.trim().parse().map_err(|_| invalid("true or false"))?)
        }
        // A list may also be given as one comma-separated string; its setting splits it.
        Some(toml::Value::Array(_)) if !raw.trim_start().starts_with('[') => {
            toml::Value::String(raw.to_owned())
        }
        Some(toml::Value::Array(_)) => {
            let doc: toml::Table = format!("v = {raw}")
                .parse()
                .map_err(|_| invalid("a TOML array such as [\"a\", \"b\"]"))?;
            doc.get("v").cloned().ok_or_else(|| invalid("an array"))?
        }
        _ => toml::Value::String(raw.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn builtin_defaults_match_the_documented_file() {
        let config = Config::builtin().expect("built-in config is valid");
        assert_eq!(config.server.port, 8080);
        assert_eq!(config.database.url, "sqlite://spidergate.db?mode=rwc");
        assert!(config.admin.token.is_empty());
    }

    #[test]
    fn file_then_environment_override_in_order() {
        let file = "[server]\nport = 7000\nhost = \"0.0.0.0\"\n";
        let vars = env(&[
            ("SPIDERGATE_SERVER__PORT", "9000"),
            ("SPIDERGATE_ADMIN_TOKEN", "12345"),
            ("SPIDERGATE_VAULT_KEY", "a, b"),
            ("SPIDERGATE_PROVIDERS__GROQ__BASE_URL", "http://127.0.0.1:1"),
            ("UNRELATED", "x"),
        ]);
        let config = Config::from_layers(Some(file), vars).expect("valid layers");
        assert_eq!(config.server.port, 9000);
        assert_eq!(config.server.host, "0.0.0.0");
        assert_eq!(config.admin.token.expose(), "12345");
        assert_eq!(config.vault.keys.len(), 2);
        assert_eq!(
            config.providers["groq"].base_url.as_deref(),
            Some("http://127.0.0.1:1")
        );
    }

    #[test]
    fn redis_is_configured_from_the_environment_and_needs_postgres() {
        let redis = ("SPIDERGATE_REDIS__URL", "redis://127.0.0.1:6379");
        let postgres = ("SPIDERGATE_DATABASE__URL", "postgres://app@db/spidergate");
        let config = Config::from_layers(None, env(&[redis, postgres])).expect("valid");
        assert_eq!(config.redis.url.expose(), "redis://127.0.0.1:6379");
        assert_eq!(config.redis.on_error, OnRedisError::Share);
        let err = Config::from_layers(None, env(&[redis])).expect_err("SQLite with Redis");
        assert!(err.to_string().contains("redis.url"), "{err}");
        let closed = [postgres, ("SPIDERGATE_REDIS__ON_ERROR", "fail_closed")];
        let config = Config::from_layers(None, env(&closed)).expect("valid");
        assert_eq!(config.redis.on_error, OnRedisError::FailClosed);
    }

    #[test]
    fn unknown_keys_fail_naming_the_key() {
        let cases = [
            (Some("[server]\nprot = 1\n"), vec![], "prot"),
            (None, vec![("SPIDERGATE_SERVER__PROT", "1")], "prot"),
            (Some("[sever]\nport = 1\n"), vec![], "sever"),
            (None, vec![("SPIDERGATE_PROVIDERS__GROQ__URL", "x")], "url"),
        ];
        for (file, vars, key) in cases {
            let err = Config::from_layers(file, env(&vars)).expect_err("unknown key must fail");
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn oauth_clients_take_scopes_from_a_list_or_a_variable_and_check_their_urls() {
        let file = "[providers.groq.oauth]\nauthorize_url = \"https://auth.test/authorize\"\ntoken_url = \"https://auth.test/token\"\nclient_id = \"gw\"\nscopes = [\"a\", \"b\"]\n";
        let config = Config::from_layers(Some(file), env(&[])).expect("valid oauth client");
        let client = config.oauth_client("groq").expect("groq uses oauth");
        assert_eq!(client.scopes, ["a", "b"]);
        assert!(client.client_secret.is_empty());
        assert!(config.oauth_client("openai").is_none());

        let vars = env(&[
            ("SPIDERGATE_PROVIDERS__GROQ__OAUTH__SCOPES", "x y,z"),
            ("SPIDERGATE_PROVIDERS__GROQ__OAUTH__CLIENT_SECRET", "s3cret"),
        ]);
        let without_scopes = file.replace("scopes = [\"a\", \"b\"]\n", "");
        let config = Config::from_layers(Some(&without_scopes), vars).expect("env overrides");
        let client = config.oauth_client("groq").expect("groq uses oauth");
        assert_eq!(client.scopes, ["x", "y", "z"]);
        assert!(
            !format!("{client:?}").contains("s3cret"),
            "the secret is masked"
        );

        let bad = file.replace("https://auth.test/token", "not a url");
        let err = Config::from_layers(Some(&bad), env(&[])).expect_err("bad url");
        assert!(
            err.to_string().contains("providers.groq.oauth.token_url"),
            "{err}"
        );
    }

    #[test]
    fn a_badly_typed_variable_names_itself() {
        let err = Config::from_layers(None, env(&[("SPIDERGATE_SERVER__PORT", "eighty")]))
            .expect_err("port must be an integer");
        assert!(err.to_string().contains("SPIDERGATE_SERVER__PORT"), "{err}");
    }
}
