//! The fallback loop: next key, then next model, until one attempt succeeds or the budget of
//! attempts is spent.

use super::candidates::{Candidate, Plan};
use crate::catalog::Model;
use crate::error::{ApiError, ErrorCode};
use crate::health::Outcome;
use crate::otel::{AttemptSpan, CallTrace};
use crate::providers::{Endpoint, ErrorKind, ProviderError};
use crate::state::AppState;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;

/// One upstream call, as `?include_route_trace=true` shows it (`provider`, `model`,
/// `integration_id`, `status`, `error_code`, `latency_ms`).
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The model tried, shared with the catalog: its id and provider are the attempt's.
    pub model: Arc<Model>,
    pub integration_id: i32,
    pub status: &'static str,
    pub error_code: Option<String>,
    pub latency_ms: u64,
    /// Its span in the request's OpenTelemetry trace, when it has one.
    pub span: Option<AttemptSpan>,
}

impl Attempt {
    pub fn provider(&self) -> &str {
        &self.model.provider
    }

    pub fn model_id(&self) -> &str {
        &self.model.id
    }
}

impl Serialize for Attempt {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("Attempt", 6)?;
        out.serialize_field("provider", self.provider())?;
        out.serialize_field("model", self.model_id())?;
        out.serialize_field("integration_id", &self.integration_id)?;
        out.serialize_field("status", self.status)?;
        out.serialize_field("error_code", &self.error_code)?;
        out.serialize_field("latency_ms", &self.latency_ms)?;
        out.end()
    }
}

/// The attempts of one request, and the trace they are part of (their upstream `traceparent`).
#[derive(Debug, Default)]
pub struct Attempts {
    pub list: Vec<Attempt>,
    pub trace: Option<CallTrace>,
}

/// A successful call: the value, and the model and key that produced it.
pub struct Served<T> {
    pub value: T,
    pub model: Arc<Model>,
    pub integration_id: i32,
}

/// Runs `call` over the plan's candidates until one succeeds.
///
/// `no_key` is the code for "no usable key anywhere" (`no_available_key`, or `no_openai_key` for
/// the OpenAI-only endpoints). A non-retryable upstream error (a bad request) is returned at once
/// as 400, since no other key or model would answer differently. Every attempt made is pushed to
/// `attempts`, so the caller's trace has them whatever the outcome.
pub async fn call_with_fallback<T, F, Fut>(
    state: &AppState,
    plan: &Plan,
    no_key: ErrorCode,
    attempts: &mut Attempts,
    call: F,
) -> Result<Served<T>, ApiError>
where
    F: Fn(Endpoint, Arc<Model>) -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let max_attempts = state.config.routing.max_attempts.max(1);
    let trace = attempts.trace.as_ref();
    let attempts = &mut attempts.list;
    attempts.clear();
    let mut last_error: Option<ProviderError> = None;
    for candidate in &plan.candidates {
        let mut keys = candidate.keys.clone();
        while !keys.is_empty() && attempts.len() < max_attempts {
            let provider = candidate.model.provider.as_str();
            let Some(key_id) = state.health.take_slot(provider, &keys).await else {
                break;
            };
            keys.retain(|k| k.id != key_id);
            let Some(mut endpoint) = endpoint_for(state, candidate, key_id) else {
                continue;
            };
            let mut span = trace.map(CallTrace::attempt);
            if let (Some(trace), Some(span)) = (trace, &span) {
                endpoint.trace(trace.traceparent(span.id), trace.tracestate.as_deref());
            }
            let started = crate::clock::stopwatch();
            let result = call(endpoint, candidate.model.clone()).await;
            let elapsed = started.elapsed();
            let latency_ms = elapsed.as_millis() as u64;
            if let Some(span) = span.as_mut() {
                span.duration = elapsed;
            }
            let mut attempt = Attempt {
                model: candidate.model.clone(),
                integration_id: key_id,
                status: "ok",
                error_code: None,
                latency_ms,
                span,
            };
            match result {
                Ok(value) => {
                    // The caller reports the success with its cost, in one message (`report_served`).
                    attempts.push(attempt);
                    return Ok(Served {
                        value,
                        model: candidate.model.clone(),
                        integration_id: key_id,
                    });
                }
                Err(err) => {
                    tracing::debug!(provider, model = %candidate.model.id, integration_id = key_id, "attempt failed: {}", err.message);
                    if let Some(kind) = err.key_failure() {
                        state.health.report(
                            provider,
                            key_id,
                            Outcome::Failure {
                                kind,
                                message: err.message.clone(),
                            },
                        );
                    }
                    attempt.status = "error";
                    attempt.error_code = Some(err.code());
                    attempts.push(attempt);
                    if !err.retryable() {
                        return Err(ApiError::new(ErrorCode::InvalidRequest, err.message)
                            .with_param("model"));
                    }
                    let next_model = err.kind == ErrorKind::NotFound;
                    last_error = Some(err);
                    if next_model {
                        break;
                    }
                }
            }
        }
    }
    Err(exhausted(plan, no_key, attempts, last_error))
}

fn endpoint_for(state: &AppState, candidate: &Candidate, key_id: i32) -> Option<Endpoint> {
    let vault = state.vault.snapshot();
    let key = vault.get(key_id)?;
    let catalog = state.catalog.load();
    let provider = catalog.provider(&candidate.model.provider)?;
    match Endpoint::new(provider, &key.credentials) {
        Ok(endpoint) => Some(endpoint),
        Err(err) => {
            tracing::warn!(integration_id = key_id, "unusable key: {}", err.message);
            None
        }
    }
}

/// 503 when nothing could be tried; 504 when the last attempt timed out; else 502 listing attempts.
fn exhausted(
    plan: &Plan,
    no_key: ErrorCode,
    attempts: &[Attempt],
    last: Option<ProviderError>,
) -> ApiError {
    let Some(last) = last else {
        let providers: Vec<&str> = plan
            .candidates
            .iter()
            .map(|c| c.model.provider.as_str())
            .collect();
        let message = match no_key {
            ErrorCode::NoOpenaiKey => {
                "no usable OpenAI key: add one to the vault (brand or pool) to use this endpoint"
                    .to_owned()
            }
            _ => format!(
                "no usable key for `{}`: every key of {} is missing, inactive, unhealthy, resting or at its limit",
                plan.requested,
                providers.join(", ")
            ),
        };
        return ApiError::new(no_key, message).with_retry_after(std::time::Duration::from_secs(1));
    };
    let tried: Vec<String> = attempts
        .iter()
        .map(|a| {
            format!(
                "{} {} ({})",
                a.provider(),
                a.model_id(),
                a.error_code.as_deref().unwrap_or("ok")
            )
        })
        .collect();
    let code = if last.kind == ErrorKind::Timeout {
        ErrorCode::UpstreamTimeout
    } else {
        ErrorCode::UpstreamError
    };
    ApiError::new(
        code,
        format!(
            "every candidate failed: {}; last: {}",
            tried.join(", "),
            last.message
        ),
    )
}
