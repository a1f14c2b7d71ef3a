//! OpenTelemetry traces over OTLP/HTTP (protobuf), when `otel.endpoint` is set.
//!
//! Each generating request already keeps a full record of itself (`TraceRecord`: phases, upstream
//! attempts, usage, cost). When it ends, `GateCall` hands that record here; we turn it into OTLP
//! spans and queue them for `exporter`, which posts batches from its own task. Nothing on the
//! request path waits on the collector: a full queue drops spans (counted and logged), never
//! a request.
//!
//! Why not the OpenTelemetry SDK: an attempt's span id has to be known *before* the attempt, to
//! send it upstream in `traceparent`, and the SDK's span builder no longer takes a preset id; the
//! SDK's HTTP exporter would also bring a second, blocking HTTP client. The wire format comes from
//! `opentelemetry-proto`, so what we send is exactly what collectors parse.

mod context;
mod exporter;
mod spans;

pub use context::{AttemptSpan, CallTrace, parse_traceparent};
pub use spans::provider_name;

use crate::config::OtelConfig;
use crate::usage::TraceRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;
use tokio::sync::{mpsc, watch};

/// Requests whose spans may wait for the exporter; beyond this they are dropped.
const QUEUE_REQUESTS: usize = 4096;

/// Where finished requests' spans go; cheap to clone. Off (`Otel::default()`) without an endpoint.
#[derive(Clone, Default)]
pub struct Otel {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    queue: mpsc::Sender<Vec<Span>>,
    sample_ratio: f64,
    dropped: AtomicU64,
}

impl Otel {
    /// Starts the exporter task when `config.endpoint` is set; it sends what is queued and
    /// returns once `stop` turns true.
    pub fn start(
        config: &OtelConfig,
        http: reqwest::Client,
        stop: watch::Receiver<bool>,
    ) -> (Otel, Option<tokio::task::JoinHandle<()>>) {
        let Some(url) = config.traces_url() else {
            return (Otel::default(), None);
        };
        let (queue, spans) = mpsc::channel(QUEUE_REQUESTS);
        let exporter = exporter::Exporter::new(config, url, http);
        let task = tokio::spawn(exporter.run(spans, stop));
        let otel = Otel {
            inner: Some(Arc::new(Inner {
                queue,
                sample_ratio: config.sample_ratio,
                dropped: AtomicU64::new(0),
            })),
        };
        (otel, Some(task))
    }

    /// The trace context of a request with these headers (see [`CallTrace::begin`]).
    /// `started` is when the request arrived; nothing is read (not even the clock) for a request
    /// with no trace to continue while tracing is off.
    pub fn begin(
        &self,
        headers: &actix_web::http::header::HeaderMap,
        started: std::time::Instant,
    ) -> Option<CallTrace> {
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let traceparent = header("traceparent");
        if self.inner.is_none() && traceparent.is_none() {
            return None;
        }
        CallTrace::begin(
            traceparent,
            header("tracestate"),
            self.inner.as_ref().map(|i| i.sample_ratio),
            SystemTime::now() - started.elapsed(),
        )
    }

    /// Queues the spans of a finished, sampled request.
    pub fn export(&self, trace: &TraceRecord, call: &CallTrace) {
        let Some(inner) = &self.inner else { return };
        if !call.sampled || !call.exported {
            return;
        }
        let spans = spans::spans(trace, call, SystemTime::now());
        if inner.queue.try_send(spans).is_err() {
            // One line per 1000 lost requests: a collector that is down must not flood the log.
            if inner.dropped.fetch_add(1, Ordering::Relaxed) % 1000 == 0 {
                tracing::warn!("the OTLP exporter is behind: spans of some requests were dropped");
            }
        }
    }
}
