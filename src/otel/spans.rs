//! OTLP spans from a finished request's trace record: the request, each upstream attempt, and
//! each gateway phase. Names and attributes follow the OpenTelemetry GenAI conventions plus ours
//! (`spidergate.*`); nothing secret and no prompt content is ever an attribute.

use super::context::CallTrace;
use crate::usage::{TraceRecord, TraceStatus};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span::SpanKind, status::StatusCode};
use std::time::{Duration, SystemTime};

/// The semantic-convention operation for one of our request kinds.
fn operation(kind: &str) -> &'static str {
    match kind {
        "chat" => "chat",
        "embeddings" => "embeddings",
        "images" => "image_generation",
        "speech" => "text_to_speech",
        "transcriptions" => "speech_to_text",
        _ => "generate_content",
    }
}

/// `gen_ai.provider.name`: the well-known value where the conventions name one, else ours.
pub fn provider_name(id: &str) -> String {
    let known = match id {
        "openai" => "openai",
        "anthropic" => "anthropic",
        "google_ai" => "gcp.gemini",
        "vertex_ai" => "gcp.vertex_ai",
        "bedrock" => "aws.bedrock",
        "azure" => "azure.ai.openai",
        "groq" => "groq",
        "mistral" => "mistral_ai",
        "cohere" => "cohere",
        "deepseek" => "deepseek",
        "perplexity" => "perplexity",
        "xai" => "x_ai",
        _ => return format!("spidergate.{id}"),
    };
    known.to_owned()
}

/// Every span of one request: the request span first.
pub fn spans(trace: &TraceRecord, call: &CallTrace, ended: SystemTime) -> Vec<Span> {
    let op = operation(trace.request_kind);
    let mut spans = Vec::with_capacity(1 + trace.attempts.len() + trace.spans.len());
    spans.push(request_span(trace, call, op, ended));
    for attempt in &trace.attempts {
        let Some(span) = attempt.span else { continue };
        let mut attributes = vec![
            text("gen_ai.operation.name", op),
            text("gen_ai.provider.name", provider_name(attempt.provider())),
            text("gen_ai.request.model", attempt.model_id()),
            int("spidergate.integration_id", attempt.integration_id.into()),
            text("spidergate.attempt.status", attempt.status),
        ];
        if let Some(code) = &attempt.error_code {
            attributes.push(text("error.type", code));
        }
        spans.push(Span {
            trace_id: call.trace_id.to_vec(),
            span_id: span.id.to_vec(),
            parent_span_id: call.span_id.to_vec(),
            name: format!("{op} {}", attempt.model_id()),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: nanos(span.started),
            end_time_unix_nano: nanos(span.started + span.duration),
            attributes,
            status: Some(status(attempt.error_code.as_deref())),
            ..Span::default()
        });
    }
    for phase in &trace.spans {
        let start = call.started + Duration::from_secs_f64(phase.start_ms.max(0.0) / 1000.0);
        let end = start + Duration::from_secs_f64(phase.duration_ms.max(0.0) / 1000.0);
        spans.push(Span {
            trace_id: call.trace_id.to_vec(),
            span_id: super::context::new_span_id().to_vec(),
            parent_span_id: call.span_id.to_vec(),
            name: format!("spidergate.{}", phase.name.as_str()),
            kind: SpanKind::Internal as i32,
            start_time_unix_nano: nanos(start),
            end_time_unix_nano: nanos(end),
            ..Span::default()
        });
    }
    spans
}

fn request_span(
    trace: &TraceRecord,
    call: &CallTrace,
    op: &'static str,
    ended: SystemTime,
) -> Span {
    let mut attributes = vec![
        text("gen_ai.operation.name", op),
        text("gen_ai.request.model", &trace.requested_model),
        text("spidergate.request_id", &trace.id),
        int("spidergate.brand_id", trace.brand_id.into()),
        int("http.response.status_code", trace.http_status.into()),
        boolean("spidergate.fallback_used", trace.fallback_used),
        boolean("spidergate.streamed", trace.streamed),
        double("spidergate.cost_usd", trace.cost.as_usd()),
        int("gen_ai.usage.input_tokens", saturating(trace.prompt_tokens)),
        int(
            "gen_ai.usage.output_tokens",
            saturating(trace.completion_tokens),
        ),
        int(
            "spidergate.attempts",
            saturating(trace.attempts.len() as u64),
        ),
    ];
    if trace.cache_read_tokens > 0 || trace.cache_write_tokens > 0 {
        attributes.push(int(
            "gen_ai.usage.cache_read.input_tokens",
            saturating(trace.cache_read_tokens),
        ));
        attributes.push(int(
            "gen_ai.usage.cache_creation.input_tokens",
            saturating(trace.cache_write_tokens),
        ));
    }
    if let Some(token) = trace.agent_key_id {
        attributes.push(int("spidergate.token_id", token.into()));
    }
    if let Some(model) = trace.model() {
        attributes.push(text("gen_ai.response.model", model));
    }
    if let Some(provider) = trace.provider() {
        attributes.push(text("gen_ai.provider.name", provider_name(provider)));
    }
    if let Some(ttft) = trace.ttft_ms {
        attributes.push(double(
            "gen_ai.response.time_to_first_chunk",
            ttft as f64 / 1000.0,
        ));
    }
    let error = match trace.status {
        TraceStatus::Success => None,
        TraceStatus::Error => Some(trace.error_code.unwrap_or("error")),
    };
    if let Some(code) = error {
        attributes.push(text("error.type", code));
    }
    Span {
        trace_id: call.trace_id.to_vec(),
        span_id: call.span_id.to_vec(),
        parent_span_id: call.parent.map(|p| p.to_vec()).unwrap_or_default(),
        trace_state: call.tracestate.clone().unwrap_or_default(),
        // Span flags: the parent's remoteness is known (0x100), and it is remote (0x200).
        flags: 0x100 | (u32::from(call.parent.is_some()) << 9),
        name: format!("{op} {}", trace.requested_model),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: nanos(call.started),
        end_time_unix_nano: nanos(ended),
        attributes,
        status: Some(status(error)),
        ..Span::default()
    }
}

fn status(error: Option<&str>) -> Status {
    match error {
        None => Status::default(),
        Some(code) => Status {
            message: code.to_owned(),
            code: StatusCode::Error as i32,
        },
    }
}

fn nanos(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn saturating(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn attribute(key: &'static str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

pub(super) fn text(key: &'static str, value: impl Into<String>) -> KeyValue {
    attribute(key, Value::StringValue(value.into()))
}

fn int(key: &'static str, value: i64) -> KeyValue {
    attribute(key, Value::IntValue(value))
}

fn double(key: &'static str, value: f64) -> KeyValue {
    attribute(key, Value::DoubleValue(value))
}

fn boolean(key: &'static str, value: bool) -> KeyValue {
    attribute(key, Value::BoolValue(value))
}
