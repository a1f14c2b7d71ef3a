//! Sends queued spans to the collector in batches: at most every `batch_delay_ms`, or sooner
//! when a batch is full. A post the collector may take later (429, 502–504, unreachable) is tried
//! twice more; then it is logged and its spans are dropped: traces are diagnostics, and a
//! collector that is down must not grow the gateway's memory.

use super::spans::text;
use crate::config::OtelConfig;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Spans per post (the OpenTelemetry SDKs' default batch size).
const BATCH_SPANS: usize = 512;
/// How long one post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// A batch is posted at most this often (a refused or unreachable collector: 1 s, then 2 s apart).
const POST_ATTEMPTS: u32 = 3;
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct Exporter {
    url: String,
    http: reqwest::Client,
    headers: HeaderMap,
    resource: Resource,
    delay: Duration,
}

impl Exporter {
    pub fn new(config: &OtelConfig, url: String, http: reqwest::Client) -> Exporter {
        let mut headers = HeaderMap::new();
        for (configured, value) in &config.headers {
            let name = HeaderName::from_bytes(configured.replace('_', "-").as_bytes());
            let value = HeaderValue::from_str(value.expose());
            match (name, value) {
                (Ok(name), Ok(mut value)) => {
                    value.set_sensitive(true);
                    headers.insert(name, value);
                }
                _ => tracing::warn!(
                    header = %configured,
                    "otel.headers: not a valid HTTP header; not sent"
                ),
            }
        }
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        Exporter {
            url,
            http,
            headers,
            resource: Resource {
                attributes: vec![
                    text("service.name", &config.service_name),
                    text("service.version", env!("CARGO_PKG_VERSION")),
                ],
                ..Resource::default()
            },
            delay: Duration::from_millis(config.batch_delay_ms),
        }
    }

    pub async fn run(self, mut queue: mpsc::Receiver<Vec<Span>>, mut stop: watch::Receiver<bool>) {
        let mut batch: Vec<Span> = Vec::new();
        loop {
            tokio::select! {
                received = queue.recv() => match received {
                    Some(spans) => batch.extend(spans),
                    None => break,
                },
                _ = stop.wait_for(|stopping| *stopping) => break,
            }
            // The first spans of a batch wait at most `delay` for company.
            let deadline = tokio::time::Instant::now() + self.delay;
            while batch.len() < BATCH_SPANS {
                match tokio::time::timeout_at(deadline, queue.recv()).await {
                    Ok(Some(spans)) => batch.extend(spans),
                    Ok(None) | Err(_) => break,
                }
            }
            self.post(std::mem::take(&mut batch)).await;
        }
        // Stopping: what the finished requests queued is still sent.
        while let Ok(spans) = queue.try_recv() {
            batch.extend(spans);
        }
        for chunk in batch.chunks(BATCH_SPANS) {
            self.post(chunk.to_vec()).await;
        }
    }

    async fn post(&self, spans: Vec<Span>) {
        if spans.is_empty() {
            return;
        }
        let count = spans.len();
        let body = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "spidergate".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..InstrumentationScope::default()
                    }),
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
        .encode_to_vec();
        let body = bytes::Bytes::from(body);
        for attempt in 1..=POST_ATTEMPTS {
            let sent = self
                .http
                .post(&self.url)
                .headers(self.headers.clone())
                .timeout(POST_TIMEOUT)
                .body(body.clone())
                .send()
                .await;
            // What OTLP/HTTP says to retry: 429, 502, 503, 504, and a collector not reached.
            let retry = match &sent {
                Ok(response) if response.status().is_success() => return,
                Ok(response) => matches!(response.status().as_u16(), 429 | 502 | 503 | 504),
                Err(_) => true,
            };
            if !retry || attempt == POST_ATTEMPTS {
                match sent {
                    Ok(response) => tracing::warn!(
                        status = response.status().as_u16(),
                        spans = count,
                        "the OTLP collector refused a batch of spans; dropped"
                    ),
                    Err(err) => tracing::warn!(
                        spans = count,
                        "the OTLP collector could not be reached: {}; dropped",
                        err.without_url()
                    ),
                }
                return;
            }
            tokio::time::sleep(RETRY_AFTER * attempt).await;
        }
    }
}
