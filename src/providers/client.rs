//! The one HTTP client every upstream call goes through, and how its connections are kept.
//!
//! A provider call must not pay for a TCP or TLS handshake, nor a DNS lookup: connections are
//! pooled per host and reused (HTTP/1.1 keep-alive; HTTP/2, negotiated by ALPN where the provider
//! offers it, multiplexes every request to that host over one connection), TCP keep-alive and
//! HTTP/2 pings keep idle ones open through NATs and load balancers, and a lookup happens only
//! when a new connection is opened.

use crate::config::UpstreamConfig;
use anyhow::Context;
use std::time::Duration;

/// TCP keep-alive probes on idle upstream connections (NATs drop silent ones after minutes).
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);
/// HTTP/2 pings on idle connections, and how long a ping may go unanswered.
const H2_PING_EVERY: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the upstream client from `[upstream]`; fails naming a CA file it cannot use.
pub fn build(config: &UpstreamConfig) -> anyhow::Result<reqwest::Client> {
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
    if let Some(path) = &config.ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("invalid config at `upstream.ca_file`: reading {path:?}"))?;
        let roots = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
            format!("invalid config at `upstream.ca_file`: {path:?} is not a PEM bundle")
        })?;
        anyhow::ensure!(
            !roots.is_empty(),
            "invalid config at `upstream.ca_file`: {path:?} holds no certificate"
        );
        builder = builder.tls_certs_merge(roots);
    }
    builder.build().context("building the upstream HTTP client")
}

#[cfg(test)]
mod tests {
    use super::build;
    use crate::config::Config;

    /// `spidergate::run` installs the process's TLS provider; these tests build a client without it.
    fn tls_provider() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    fn with_ca_file(contents: Option<&[u8]>) -> anyhow::Result<reqwest::Client> {
        tls_provider();
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("ca.pem");
        if let Some(contents) = contents {
            std::fs::write(&path, contents)?;
        }
        let mut config = Config::builtin()?.upstream;
        config.ca_file = Some(path);
        build(&config)
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
    fn the_builtin_config_builds_a_client() {
        tls_provider();
        let config = Config::builtin().expect("config").upstream;
        assert!(config.http2 && config.ca_file.is_none());
        assert!(build(&config).is_ok());
    }
}
