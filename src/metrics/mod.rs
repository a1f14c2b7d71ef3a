//! `GET /metrics`: what the gateway did, in Prometheus text. OpenTelemetry GenAI names where
//! they exist (`gen_ai_*`), ours otherwise (`spidergate_*`).
//!
//! Two places record: the request middleware (every HTTP request: `spidergate_requests_total`,
//! `spidergate_active_requests`) and a generating call's end (`GateCall`'s drop: overhead,
//! upstream duration, time to first token, tokens, spend, rate limits, fallbacks), from the trace
//! it hands the ledger. Gauges of state (ledger queue, key health) are read when scraped. Labels
//! are bounded: route patterns, status codes, catalog providers and models, error codes; a token's
//! id only with `metrics.per_token`, and its series go when it has been idle for
//! `metrics.idle_secs`. Owns no state of the gateway's; reads the trace and the caches.

pub mod http;
mod registry;

use crate::usage::{TraceRecord, TraceStatus};
use registry::{Buckets, Count, Family, Histogram, Usd, Value};
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// What the gateway adds to a request, from 25 µs to a second.
const OVERHEAD: Buckets = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 1.0,
];
/// An upstream call: the OpenTelemetry GenAI buckets, then on to 11 minutes (reasoning models).
const OPERATION: Buckets = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92, 163.84,
    327.68, 655.36,
];
/// Time to the first token: the OpenTelemetry GenAI buckets.
const FIRST_TOKEN: Buckets = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Tokens per request: the OpenTelemetry GenAI buckets (powers of 4).
const TOKENS: Buckets = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
const NANOS: f64 = 1e9;

/// A per-token series and when it was last touched (stopwatch seconds).
#[derive(Default)]
struct Touched<V> {
    value: V,
    at: AtomicU64,
}

impl<V: Value> Value for Touched<V> {
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        self.value.render(out, name, labels);
    }
}

impl<V> Touched<V> {
    fn touch(&self) -> &V {
        self.at
            .store(crate::clock::stopwatch_secs(), Ordering::Relaxed);
        &self.value
    }
}

struct Families {
    requests: Family<Count>,
    overhead: Family<Histogram>,
    operation: Family<Histogram>,
    first_token: Family<Histogram>,
    tokens: Family<Histogram>,
    spend: Family<Usd>,
    rate_limited: Family<Count>,
    fallbacks: Family<Count>,
    token_requests: Family<Touched<Count>>,
    token_spend: Family<Touched<Usd>>,
}

impl Families {
    fn new() -> Families {
        Families {
            requests: Family::new(
                "spidergate_requests_total",
                "HTTP requests answered, by route pattern and status code.",
                "counter",
                &["route", "status"],
                Count::default,
            ),
            overhead: Family::new(
                "spidergate_overhead_seconds",
                "Time a generating request spent in the gateway itself (not upstream).",
                "histogram",
                &["route", "gen_ai_provider_name"],
                || Histogram::new(OVERHEAD, NANOS),
            ),
            operation: Family::new(
                "gen_ai_client_operation_duration_seconds",
                "Duration of the upstream calls of a generating request.",
                "histogram",
                &[
                    "gen_ai_operation_name",
                    "gen_ai_provider_name",
                    "gen_ai_request_model",
                    "error_type",
                ],
                || Histogram::new(OPERATION, NANOS),
            ),
            first_token: Family::new(
                "gen_ai_server_time_to_first_token_seconds",
                "Time from the request to the first streamed token, gateway included.",
                "histogram",
                &["gen_ai_operation_name", "gen_ai_request_model"],
                || Histogram::new(FIRST_TOKEN, NANOS),
            ),
            tokens: Family::new(
                "gen_ai_client_token_usage",
                "Tokens per request, as the provider reported them.",
                "histogram",
                &[
                    "gen_ai_token_type",
                    "gen_ai_provider_name",
                    "gen_ai_request_model",
                ],
                || Histogram::new(TOKENS, 1.0),
            ),
            spend: Family::new(
                "spidergate_spend_usd_total",
                "What served requests cost, in USD.",
                "counter",
                &["provider", "model"],
                Usd::default,
            ),
            rate_limited: Family::new(
                "spidergate_rate_limited_total",
                "Generating requests refused by a token's rate limit or budget.",
                "counter",
                &["route", "error_code"],
                Count::default,
            ),
            fallbacks: Family::new(
                "spidergate_fallbacks_total",
                "Requests served after a failed attempt: by another model, or another key of it.",
                "counter",
                &["route", "to"],
                Count::default,
            ),
            token_requests: Family::new(
                "spidergate_token_requests_total",
                "Generating requests per agent token (metrics.per_token).",
                "counter",
                &["token_id", "status"],
                Touched::default,
            ),
            token_spend: Family::new(
                "spidergate_token_spend_usd_total",
                "Spend per agent token, in USD (metrics.per_token).",
                "counter",
                &["token_id"],
                Touched::default,
            ),
        }
    }
}

/// The gateway's metrics: cheap to clone (one `Arc`), recorded from any thread.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    /// `metrics.enabled = false`: nothing is recorded (and `/metrics` is 404).
    enabled: bool,
    families: Families,
    active: Arc<AtomicI64>,
    per_token: bool,
    idle_secs: u64,
}

/// Gauges read at scrape time from the rest of the gateway.
pub struct Gauges {
    pub ledger_queue: usize,
    /// (provider, state, keys).
    pub key_health: Vec<(String, &'static str, usize)>,
}

/// Counts a request in flight until dropped (so a request whose client left is counted out too).
pub struct InFlight(Arc<AtomicI64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn new(config: &crate::config::MetricsConfig) -> Metrics {
        Metrics(Arc::new(Inner {
            enabled: config.enabled,
            families: Families::new(),
            active: Arc::default(),
            per_token: config.per_token,
            idle_secs: config.idle_secs,
        }))
    }

    /// `None` when metrics are off.
    pub fn in_flight(&self) -> Option<InFlight> {
        if !self.0.enabled {
            return None;
        }
        self.0.active.fetch_add(1, Ordering::Relaxed);
        Some(InFlight(self.0.active.clone()))
    }

    pub fn enabled(&self) -> bool {
        self.0.enabled
    }

    /// One HTTP request answered.
    pub fn answered(&self, route: &str, status: u16) {
        let mut code = itoa::Buffer::new();
        let families = &self.0.families;
        families
            .requests
            .with(&[route, code.format(status)])
            .0
            .add(1);
    }

    /// A generating request ended; `trace` is what the ledger gets.
    pub fn generated(&self, trace: &TraceRecord) {
        if !self.0.enabled {
            return;
        }
        let f = &self.0.families;
        let route = trace.request_kind;
        let provider = trace.provider().unwrap_or("none");
        let model = trace.model().unwrap_or(&trace.requested_model);
        let upstream_ms: f64 = trace
            .spans
            .iter()
            .filter(|s| s.name == crate::usage::Phase::Upstream)
            .map(|s| s.duration_ms)
            .sum();
        let total_ms = trace
            .spans
            .last()
            .map_or(0.0, |s| s.start_ms + s.duration_ms);
        f.overhead
            .with(&[route, provider])
            .observe((total_ms - upstream_ms).max(0.0) / 1000.0);
        if !trace.attempts.is_empty() {
            let error = match trace.status {
                TraceStatus::Success => "",
                TraceStatus::Error => trace.error_code.unwrap_or("error"),
            };
            f.operation
                .with(&[route, provider, model, error])
                .observe(upstream_ms / 1000.0);
        }
        if let Some(ttft) = trace.ttft_ms {
            f.first_token
                .with(&[route, model])
                .observe(ttft as f64 / 1000.0);
        }
        if trace.status == TraceStatus::Success {
            let usage = [
                ("input", trace.prompt_tokens),
                ("output", trace.completion_tokens),
            ];
            for (kind, tokens) in usage {
                f.tokens
                    .with(&[kind, provider, model])
                    .observe(tokens as f64);
            }
            f.spend
                .with(&[provider, model])
                .0
                .add(trace.cost.nanos().max(0) as u64);
        }
        if let Some(code) = trace
            .error_code
            .filter(|_| refused_by_limits(trace.http_status))
        {
            f.rate_limited.with(&[route, code]).0.add(1);
        }
        let to = if trace.fallback_used {
            Some("model")
        } else {
            (trace.attempts.len() > 1).then_some("key")
        };
        if let Some(to) = to.filter(|_| trace.status == TraceStatus::Success) {
            f.fallbacks.with(&[route, to]).0.add(1);
        }
        if self.0.per_token
            && let Some(token) = trace.agent_key_id
        {
            let mut id = itoa::Buffer::new();
            let id = id.format(token);
            let mut code = itoa::Buffer::new();
            let status = code.format(trace.http_status);
            f.token_requests.with(&[id, status]).touch().0.add(1);
            let nanos = trace.cost.nanos().max(0) as u64;
            f.token_spend.with(&[id]).touch().0.add(nanos);
        }
    }

    /// The exposition text.
    pub fn render(&self, gauges: &Gauges) -> String {
        let (f, per_token) = (&self.0.families, self.0.per_token);
        if per_token {
            let now = crate::clock::stopwatch_secs();
            let idle = self.0.idle_secs;
            let fresh = |at: &AtomicU64| now.saturating_sub(at.load(Ordering::Relaxed)) < idle;
            f.token_requests.retain(|s| fresh(&s.at));
            f.token_spend.retain(|s| fresh(&s.at));
        }
        let mut out = String::with_capacity(4096);
        f.requests.render(&mut out);
        f.overhead.render(&mut out);
        f.operation.render(&mut out);
        f.first_token.render(&mut out);
        f.tokens.render(&mut out);
        f.spend.render(&mut out);
        f.rate_limited.render(&mut out);
        f.fallbacks.render(&mut out);
        if per_token {
            f.token_requests.render(&mut out);
            f.token_spend.render(&mut out);
        }
        gauge(
            &mut out,
            "spidergate_active_requests",
            "HTTP requests in flight.",
            self.0.active.load(Ordering::Relaxed).max(0),
        );
        gauge(
            &mut out,
            "spidergate_ledger_queue_depth",
            "Traces queued for the ledger and not yet committed.",
            gauges.ledger_queue,
        );
        let _ = writeln!(
            out,
            "# HELP spidergate_key_health Vault keys by provider and health state."
        );
        let _ = writeln!(out, "# TYPE spidergate_key_health gauge");
        for (provider, state, keys) in &gauges.key_health {
            let _ = writeln!(
                out,
                "spidergate_key_health{{provider=\"{provider}\",state=\"{state}\"}} {keys}"
            );
        }
        out
    }
}

/// 402 (budget) and 429 (rate limits) are the token's own limits.
fn refused_by_limits(status: u16) -> bool {
    matches!(status, 402 | 429)
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {value}");
}
