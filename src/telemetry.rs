//! Logging: the subscriber, and the per-request middleware that stamps `X-Request-Id`.
//!
//! Request logs name the route *pattern* (`/api/v1/agent-keys/{id}`), never the raw path or
//! headers, so no token or secret can reach a log line through them.

use crate::config::{LogConfig, LogFormat};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (stderr). `RUST_LOG` overrides `log.level` when set.
/// Logging to stderr. `quiet` (the CLI's commands other than `serve`) logs warnings only, unless
/// `RUST_LOG` or `SPIDERGATE_LOG__LEVEL` asks for more.
pub fn init(config: &LogConfig, quiet: bool) {
    let asked = std::env::var_os("SPIDERGATE_LOG__LEVEL").is_some();
    let level = if quiet && !asked {
        "warn"
    } else {
        config.level.as_str()
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A request id, unique across restarts: a random per-process prefix and a counter.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

/// When the request reached the server; spans and latencies count from here.
#[derive(Debug, Clone, Copy)]
pub struct RequestStart(pub Instant);

fn next_request_id() -> HeaderValue {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        crate::random::hex_secret(6).unwrap_or_else(|_| format!("{:012x}", std::process::id()))
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("req_{prefix}{n:010x}"))
        .unwrap_or_else(|_| HeaderValue::from_static("req_unknown"))
}

/// Stamps every response with `X-Request-Id` and logs the request at debug level.
pub async fn request_context<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let id = next_request_id();
    let started = crate::clock::stopwatch();
    actix_web::HttpMessage::extensions_mut(&req).insert(RequestId(id.clone()));
    actix_web::HttpMessage::extensions_mut(&req).insert(RequestStart(started));
    let method = req.method().clone();
    let metrics = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .map(|state| state.metrics.clone())
        .filter(crate::metrics::Metrics::enabled);
    let _in_flight = metrics
        .as_ref()
        .and_then(crate::metrics::Metrics::in_flight);
    let mut res = next.call(req).await?;
    res.headers_mut().insert(REQUEST_ID, id.clone());
    if let Some(metrics) = &metrics {
        let route = res.request().match_pattern();
        metrics.answered(
            route.as_deref().unwrap_or("<unmatched>"),
            res.status().as_u16(),
        );
    }
    tracing::debug!(
        request_id = ?id,
        %method,
        route = res.request().match_pattern().as_deref().unwrap_or("<unmatched>"),
        status = res.status().as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "request"
    );
    Ok(res)
}
