//! The HTTP clients every upstream call goes through, and how their connections are kept.
//!
//! A provider call must not pay for a TCP or TLS handshake, nor a DNS lookup: connections are
//! pooled per host and reused (HTTP/1.1 keep-alive; HTTP/2, negotiated by ALPN where the provider
//! offers it, multiplexes every request to that host over one connection), TCP keep-alive and
//! HTTP/2 pings keep idle ones open through NATs and load balancers, and a lookup happens only
//! when a new connection is opened.
//!
//! A pooled connection is driven by a task on the thread that opened it. With one pool for the
//! whole process, a request served by one worker would often borrow a connection another worker
//! drives, and each of its reads and writes would wake that other thread and wait for it; so the
//! request path takes [`Upstream::client`], a pool of the worker's own.

use crate::config::UpstreamConfig;
use anyhow::Context;
use std::cell::RefCell;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// TCP keep-alive probes on idle upstream connections (NATs drop silent ones after minutes).
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);
/// HTTP/2 pings on idle connections, and how long a ping may go unanswered.
const H2_PING_EVERY: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificates of `upstream.ca_file`, read once at start.
fn extra_roots(config: &UpstreamConfig) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let Some(path) = &config.ca_file else {
        return Ok(Vec::new());
    };
    let pem = std::fs::read(path)
        .with_context(|| format!("invalid config at `upstream.ca_file`: reading {path:?}"))?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
        format!("invalid config at `upstream.ca_file`: {path:?} is not a PEM bundle")
    })?;
    anyhow::ensure!(
        !roots.is_empty(),
        "invalid config at `upstream.ca_file`: {path:?} holds no certificate"
    );
    Ok(roots)
}

fn build_with(
    config: &UpstreamConfig,
    roots: &[reqwest::Certificate],
) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(config.connect_timeout_secs))
        .tcp_nodelay(true)
        .tcp_keepalive(TCP_KEEPALIVE)
        .pool_idle_timeout(Duration::from_secs(config.pool_idle_secs))
        .pool_max_idle_per_host(config.pool_max_idle_per_host);
    builder = if config.http2 {
        builder
            .http2_adaptive_window(true)
            .http2_keep_alive_interval(H2_PING_EVERY)
            .http2_keep_alive_timeout(H2_PING_TIMEOUT)
            .http2_keep_alive_while_idle(true)
    } else {
        builder.http1_only()
    };
    if !roots.is_empty() {
        builder = builder.tls_certs_merge(roots.iter().cloned());
    }
    builder.build()
}

/// The request path's upstream clients: one per thread that asks (each worker its own pool).
#[derive(Clone)]
pub struct Upstream {
    config: Arc<UpstreamConfig>,
    roots: Arc<[reqwest::Certificate]>,
    /// Used where a thread's own client cannot be built (it was, with the same settings, at
    /// start, so only in theory).
    shared: reqwest::Client,
    /// Which app a thread's client belongs to; gone when the app is.
    app: Arc<()>,
}

thread_local! {
    /// This thread's client for each app that asked on it (one, outside tests).
    static CLIENTS: RefCell<Vec<(Weak<()>, reqwest::Client)>> = const { RefCell::new(Vec::new()) };
}

impl Upstream {
    /// Checks `[upstream]` (failing with a message naming a CA file it cannot use) by building
    /// the client shared by background work, which it returns.
    pub fn new(config: &UpstreamConfig) -> anyhow::Result<(Upstream, reqwest::Client)> {
        let roots = extra_roots(config)?;
        let shared = build_with(config, &roots).context("building the upstream HTTP client")?;
        let upstream = Upstream {
            config: Arc::new(config.clone()),
            roots: roots.into(),
            shared: shared.clone(),
            app: Arc::new(()),
        };
        Ok((upstream, shared))
    }

    /// This thread's client (a cheap handle: cloning shares its pool), made on first use.
    pub fn client(&self) -> reqwest::Client {
        let mine = Arc::as_ptr(&self.app);
        CLIENTS.with_borrow_mut(|clients| {
            if let Some((_, client)) = clients.iter().find(|(app, _)| app.as_ptr() == mine) {
                return client.clone();
            }
            // Clients of apps that have stopped are dropped here, closing their connections.
            clients.retain(|(app, _)| app.strong_count() > 0);
            let client = match build_with(&self.config, &self.roots) {
                Ok(client) => client,
                Err(err) => {
                    tracing::warn!("sharing the process's upstream client: {err}");
                    self.shared.clone()
                }
            };
            clients.push((Arc::downgrade(&self.app), client.clone()));
            client
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Upstream;
    use crate::config::Config;

    fn with_ca_file(contents: Option<&[u8]>) -> anyhow::Result<()> {
        crate::install_tls_provider();
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("ca.pem");
        if let Some(contents) = contents {
            std::fs::write(&path, contents)?;
        }
        let mut config = Config::builtin()?.upstream;
        config.ca_file = Some(path);
        Upstream::new(&config).map(drop)
    }

    #[test]
    fn an_unusable_ca_file_is_refused_at_start_naming_the_setting() {
        let cases: [(&str, Option<&[u8]>); 3] = [
            ("missing", None),
            ("not PEM", Some(b"not a certificate")),
            ("no certificate", Some(b"")),
        ];
        for (case, contents) in cases {
            let err = with_ca_file(contents).expect_err(case);
            let message = format!("{err:#}");
            assert!(message.contains("upstream.ca_file"), "{case}: {message}");
        }
    }

    #[test]
    fn a_thread_builds_its_upstream_client_once_and_reuses_it() {
        crate::install_tls_provider();
        let config = Config::builtin().expect("config").upstream;
        assert!(config.http2 && config.ca_file.is_none());
        let (upstream, _) = Upstream::new(&config).expect("clients");
        // A thread's first ask builds its client; the later ones reuse it.
        upstream.client();
        upstream.client();
        assert!(super::CLIENTS.with_borrow(|clients| clients.len()) == 1);
    }
}
