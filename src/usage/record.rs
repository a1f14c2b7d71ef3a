//! `TraceRecord`: what one gateway request did, as the handlers fill it in.

use crate::catalog::Model;
use crate::money::Money;
use crate::routing::Attempt;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceStatus {
    Success,
    Error,
}

impl TraceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TraceStatus::Success => "success",
            TraceStatus::Error => "error",
        }
    }
}

/// The phases of a generating request, in order; each is a span of its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// From the request's arrival to the handler: authentication and body reading.
    Auth,
    /// The allow-list, rate limits and the budget hold.
    Limits,
    /// Choosing the candidates (models and keys).
    Route,
    /// The upstream attempts, to the last byte relayed.
    Upstream,
    /// Pricing, settling and rendering the answer.
    Tracking,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Auth => "auth",
            Phase::Limits => "limits",
            Phase::Route => "route",
            Phase::Upstream => "upstream",
            Phase::Tracking => "tracking",
        }
    }
}

/// One phase of a request: milliseconds from the request's start, and its duration.
#[derive(Debug, Clone, Serialize)]
pub struct Span {
    pub name: Phase,
    pub start_ms: f64,
    pub duration_ms: f64,
}

/// Measures spans relative to the request's start.
#[derive(Debug, Clone)]
pub struct SpanClock {
    started: Instant,
    spans: Vec<Span>,
    open: Option<(Phase, Instant)>,
}

impl SpanClock {
    pub fn new(started: Instant) -> Self {
        SpanClock {
            started,
            spans: Vec::with_capacity(5),
            open: None,
        }
    }

    /// Closes the open span (if any) and opens `name`.
    pub fn enter(&mut self, name: Phase) {
        self.enter_at(name, crate::clock::stopwatch());
    }

    /// Closes the open span at `at` and opens `name` from there.
    pub fn enter_at(&mut self, name: Phase, at: Instant) {
        self.close_at(at);
        self.open = Some((name, at));
    }

    fn close_at(&mut self, now: Instant) {
        if let Some((name, began)) = self.open.take() {
            let ms = |i: Instant| i.duration_since(self.started).as_secs_f64() * 1000.0;
            self.spans.push(Span {
                name,
                start_ms: ms(began),
                duration_ms: (ms(now) - ms(began)).max(0.0),
            });
        }
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Closes the open span and returns them all.
    pub fn finish(mut self) -> Vec<Span> {
        self.close_at(crate::clock::stopwatch());
        self.spans
    }
}

#[derive(Debug, Clone)]
pub struct TraceRecord {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub brand_id: i32,
    pub agent_key_id: Option<i32>,
    pub request_kind: &'static str,
    pub requested_model: String,
    /// The model that served (its id and provider are the trace's `model` and `provider`),
    /// shared with the catalog rather than copied.
    pub served_by: Option<Arc<Model>>,
    pub integration_id: Option<i32>,
    pub status: TraceStatus,
    pub http_status: u16,
    pub error_code: Option<&'static str>,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub streamed: bool,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Of `prompt_tokens`, read from and written to the provider's prompt cache.
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost: Money,
    pub fallback_used: bool,
    /// The request passed the token's limits (it counts against RPM/RPD even if upstream failed).
    pub admitted: bool,
    pub attempts: Vec<Attempt>,
    pub spans: Vec<Span>,
    pub request_body: Option<String>,
    pub response_body: Option<String>,
}

impl TraceRecord {
    /// The id of the model that served, if one did.
    pub fn model(&self) -> Option<&str> {
        self.served_by.as_deref().map(|m| m.id.as_str())
    }

    /// The provider of the model that served.
    pub fn provider(&self) -> Option<&str> {
        self.served_by.as_deref().map(|m| m.provider.as_str())
    }

    /// A trace with nothing known yet: an error until proven otherwise.
    pub fn empty() -> TraceRecord {
        TraceRecord {
            id: String::new(),
            created_at: DateTime::UNIX_EPOCH,
            brand_id: 0,
            agent_key_id: None,
            request_kind: "",
            requested_model: String::new(),
            served_by: None,
            integration_id: None,
            status: TraceStatus::Error,
            http_status: 0,
            error_code: None,
            latency_ms: 0,
            ttft_ms: None,
            streamed: false,
            prompt_tokens: 0,
            completion_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cost: Money::ZERO,
            fallback_used: false,
            admitted: false,
            attempts: Vec::new(),
            spans: Vec::new(),
            request_body: None,
            response_body: None,
        }
    }
}
