//! `GateCall`: one generating request's passage through limits, routing and accounting.
//!
//! Created when a handler starts; checks the model against the token's allow-list and takes the
//! budget reservation; collects the route, attempts, spans and usage; and when dropped (success,
//! error, or the client gone) settles the reservation and enqueues the trace exactly once.

use crate::auth::Principal;
use crate::catalog::Model;
use crate::error::{ApiError, RateHeaders};
use crate::health::Health;
use crate::limits::{self, Estimate, Grant, ReservationGuard};
use crate::money::Money;
use crate::providers::Usage;
use crate::routing::{Attempts, Plan, Served};
use crate::state::AppState;
use crate::telemetry::{RequestId, RequestStart};
use crate::usage::{LedgerSlot, Phase, SpanClock, TraceRecord, TraceStatus};
use actix_web::{HttpMessage, HttpRequest, HttpResponseBuilder};

/// `http_status` of a request whose client went away before the answer (nginx's convention).
const CLIENT_CLOSED: u16 = 499;

pub struct GateCall {
    trace: TraceRecord,
    clock: Option<SpanClock>,
    guard: Option<ReservationGuard>,
    /// What a hard budget holds for this call (zero otherwise): a provider billing more is warned of.
    held: Money,
    rate: Option<RateHeaders>,
    budget_warning: Option<String>,
    /// Where the trace goes when the call ends; taken before anything else happens.
    ledger: Option<LedgerSlot>,
    health: Health,
    metrics: crate::metrics::Metrics,
    store_bodies: bool,
    finished: bool,
    otel: crate::otel::Otel,
    /// Attempts made by the router, in order, and the trace they belong to.
    pub attempts: Attempts,
}

impl GateCall {
    /// Starts the trace; the `auth` span covers everything before the handler ran. Waits for
    /// room in the ledger's queue first (503 when it stays full), so every call can be recorded.
    pub async fn begin(
        state: &AppState,
        principal: &Principal,
        req: &HttpRequest,
        kind: &'static str,
        requested: &str,
    ) -> Result<GateCall, ApiError> {
        let ledger = state.usage.slot().await?;
        let extensions = req.extensions();
        let id = extensions
            .get::<RequestId>()
            .and_then(|r| r.0.to_str().ok().map(str::to_owned))
            .unwrap_or_default();
        let started = extensions
            .get::<RequestStart>()
            .map_or_else(crate::clock::stopwatch, |s| s.0);
        let trace = state.otel.begin(req.headers(), started);
        let mut clock = SpanClock::new(started);
        clock.enter_at(Phase::Auth, started);
        clock.enter(Phase::Limits);
        Ok(GateCall {
            trace: TraceRecord {
                id,
                created_at: state.clock.now(),
                brand_id: principal.brand_id,
                agent_key_id: principal.token.as_ref().map(|t| t.id),
                request_kind: kind,
                requested_model: requested.to_owned(),
                http_status: CLIENT_CLOSED,
                ..TraceRecord::empty()
            },
            clock: Some(clock),
            guard: None,
            held: Money::ZERO,
            rate: None,
            budget_warning: None,
            ledger: Some(ledger),
            health: state.health.clone(),
            metrics: state.metrics.clone(),
            store_bodies: state.config.traces.store_bodies,
            finished: false,
            otel: state.otel.clone(),
            attempts: Attempts {
                list: Vec::new(),
                trace,
            },
        })
    }

    /// 403 `model_not_allowed` unless the token may request this model: before anything else.
    pub fn check_model(&self, state: &AppState, principal: &Principal) -> Result<(), ApiError> {
        limits::check_model(
            principal,
            &state.catalog.load(),
            &self.trace.requested_model,
        )
    }

    /// RPM/RPD and the budget hold for `estimate`. Nothing reaches a provider unless this
    /// succeeds. Returns the grant: under a hard budget, the completion limit of each candidate.
    pub async fn admit(
        &mut self,
        state: &AppState,
        principal: &Principal,
        estimate: &Estimate,
    ) -> Result<Grant, ApiError> {
        let mut grant = Grant::default();
        if let Some(token) = principal.token.as_deref() {
            let (admission, guard) = state
                .budgets
                .reserve(token, estimate, state.clock.now(), &self.trace.id)
                .await?;
            self.rate = admission.rate;
            self.budget_warning = admission
                .budget_warning
                .map(|(spent, cap)| format!("{:.2}/{:.2}", spent.as_usd(), cap.as_usd()));
            self.guard = Some(guard);
            if token.limits.hard_budget && token.limits.monthly_budget.is_some() {
                self.held = admission.grant.hold;
            }
            grant = admission.grant;
        }
        self.trace.admitted = true;
        self.enter(Phase::Route);
        Ok(grant)
    }

    /// Opens the next phase's span.
    pub fn enter(&mut self, span: Phase) {
        if let Some(clock) = self.clock.as_mut() {
            clock.enter(span);
        }
    }

    /// Records which model and key served, after the router succeeded.
    pub fn served<T>(&mut self, plan: &Plan, served: &Served<T>) {
        self.trace.served_by = Some(served.model.clone());
        self.trace.integration_id = Some(served.integration_id);
        self.trace.fallback_used = served.model.id != plan.first_choice;
    }

    pub fn mark_streamed(&mut self) {
        self.trace.streamed = true;
        self.trace.ttft_ms = self.clock.as_ref().map(SpanClock::elapsed_ms);
    }

    pub fn store_request_body(&mut self, body: &[u8]) {
        if self.store_bodies {
            self.trace.request_body = Some(redact(body));
        }
    }

    pub fn store_response_body(&mut self, body: &[u8]) {
        if self.store_bodies {
            self.trace.response_body = Some(redact(body));
        }
    }

    /// A served request: charge `usage` at `model`'s prices and settle the hold.
    pub fn succeed(&mut self, model: &Model, usage: Usage) -> Money {
        self.trace.status = TraceStatus::Success;
        self.trace.http_status = 200;
        self.charge(model, usage)
    }

    /// A request that failed but may have generated tokens (a stream cut short): bill what was
    /// generated, record the failure.
    pub fn fail_after_start(&mut self, model: &Model, usage: Usage, code: &'static str) {
        self.charge(model, usage);
        self.trace.status = TraceStatus::Error;
        self.trace.http_status = 200;
        self.trace.error_code = Some(code);
        self.finished = true;
    }

    fn charge(&mut self, model: &Model, usage: Usage) -> Money {
        let cost = model.bill(&usage);
        self.trace.prompt_tokens = usage.prompt_tokens;
        self.trace.completion_tokens = usage.completion_tokens;
        self.trace.cache_read_tokens = usage.cache_read_tokens;
        self.trace.cache_write_tokens = usage.cache_write_tokens;
        self.trace.cost = cost;
        if let Some(guard) = self.guard.take() {
            if self.held > Money::ZERO && cost > self.held {
                tracing::warn!(
                    provider = %model.provider,
                    model = %model.id,
                    billed_usd = cost.as_usd(),
                    held_usd = self.held.as_usd(),
                    "a provider reported more usage than the hard budget held; charged in full, \
                     the token is refused until its spend is under the cap again"
                );
            }
            guard.settle(cost);
        }
        if let (Some(provider), Some(id)) = (self.trace.provider(), self.trace.integration_id) {
            self.health.report_served(provider, id, cost);
        }
        self.finished = true;
        cost
    }

    /// Records a refusal or failure; the hold (if any) is released when the call drops.
    pub fn fail(&mut self, err: ApiError) -> ApiError {
        self.trace.status = TraceStatus::Error;
        self.trace.http_status = err.code().status().as_u16();
        self.trace.error_code = Some(err.code().as_str());
        self.finished = true;
        match self.rate {
            Some(rate) if err.code().status().as_u16() != 429 => err.with_rate_limit(rate),
            _ => err,
        }
    }

    /// Rate-limit and budget-warning headers for a successful response.
    pub fn headers(&self, response: &mut HttpResponseBuilder) {
        if let Some(rate) = &self.rate {
            rate.apply(response);
        }
        // What the OpenAI SDKs log as the server's processing time: ours, until the headers.
        response.insert_header(("openai-processing-ms", self.elapsed_ms()));
        if let Some(warning) = &self.budget_warning {
            response.insert_header(("x-spidergate-budget-warning", warning.as_str()));
        }
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.clock.as_ref().map_or(0, SpanClock::elapsed_ms)
    }
}

impl Drop for GateCall {
    fn drop(&mut self) {
        if !self.finished {
            self.trace.error_code = Some("client_disconnected");
        }
        if let Some(clock) = self.clock.take() {
            self.trace.latency_ms = clock.elapsed_ms();
            self.trace.spans = clock.finish();
        }
        self.trace.attempts = std::mem::take(&mut self.attempts.list);
        let trace = std::mem::replace(&mut self.trace, TraceRecord::empty());
        self.metrics.generated(&trace);
        if let Some(context) = &self.attempts.trace {
            self.otel.export(&trace, context);
        }
        if let Some(ledger) = self.ledger.take() {
            ledger.record(trace);
        }
    }
}

/// A body for storage: JSON with credential-like fields masked, else a size note.
fn redact(body: &[u8]) -> String {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return format!("[{} bytes, not JSON]", body.len());
    };
    mask_secrets(&mut value);
    value.to_string()
}

fn mask_secrets(value: &mut serde_json::Value) {
    const SECRET_WORDS: [&str; 6] = [
        "key",
        "secret",
        "token",
        "password",
        "authorization",
        "credential",
    ];
    match value {
        serde_json::Value::Object(map) => {
            for (name, field) in map.iter_mut() {
                let lower = name.to_ascii_lowercase();
                if SECRET_WORDS.iter().any(|w| lower.contains(w)) && !lower.contains("tokens") {
                    *field = serde_json::Value::String("[redacted]".into());
                } else {
                    mask_secrets(field);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stored_bodies_mask_credential_fields_but_keep_token_counts() {
        let body = br#"{"model":"x","api_key":"sk-1","nested":{"Authorization":"Bearer y"},"max_tokens":5,"messages":[{"content":"hi"}]}"#;
        let stored = super::redact(body);
        assert!(
            !stored.contains("sk-1") && !stored.contains("Bearer y"),
            "{stored}"
        );
        assert!(
            stored.contains("\"max_tokens\":5") && stored.contains("hi"),
            "{stored}"
        );
    }
}
