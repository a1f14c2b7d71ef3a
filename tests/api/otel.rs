//! OpenTelemetry traces: spans posted over OTLP/HTTP (protobuf) to an in-test collector, the
//! client's `traceparent` continued, and each upstream attempt sent its own span as parent.

use crate::fake_provider::Behaviour;
use crate::helpers::{eventually, spawn_app, spawn_app_with};
use actix_web::{App, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind};
use prost::Message;
use reqwest::StatusCode;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MODEL: &str = "gpt-4o-mini";
const FAILING: &str = "sk-openai-otel-own-5xx";
const POOLED: &str = "sk-openai-otel-pool-ok";
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP trace receiver: every span it was posted, and the headers of each post.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    api_keys: Arc<Mutex<Vec<String>>>,
    service_names: Arc<Mutex<Vec<String>>>,
    /// Posts still to answer 503 (a collector that is briefly overloaded).
    refusals: Arc<AtomicUsize>,
    posts: Arc<AtomicUsize>,
}

impl Collector {
    async fn start() -> (Collector, String) {
        let collector = Collector::default();
        let shared = collector.clone();
        let server = HttpServer::new(move || {
            let shared = shared.clone();
            App::new().route(
                "/v1/traces",
                web::post().to(move |req: actix_web::HttpRequest, body: web::Bytes| {
                    let shared = shared.clone();
                    async move { shared.receive(&req, &body) }
                }),
            )
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind collector");
        let port = server.addrs()[0].port();
        actix_web::rt::spawn(server.run());
        (collector, format!("http://127.0.0.1:{port}"))
    }

    fn receive(&self, req: &actix_web::HttpRequest, body: &[u8]) -> HttpResponse {
        self.posts.fetch_add(1, Ordering::SeqCst);
        let refused = self
            .refusals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refused {
            return HttpResponse::ServiceUnavailable().finish();
        }
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        if content_type != Some("application/x-protobuf") {
            return HttpResponse::UnsupportedMediaType().finish();
        }
        let Ok(export) = ExportTraceServiceRequest::decode(body) else {
            return HttpResponse::BadRequest().finish();
        };
        if let Some(key) = req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) {
            self.api_keys.lock().unwrap().push(key.to_owned());
        }
        for resource in export.resource_spans {
            for attribute in resource.resource.map(|r| r.attributes).unwrap_or_default() {
                if attribute.key == "service.name" {
                    self.service_names
                        .lock()
                        .unwrap()
                        .push(string(&attribute.value));
                }
            }
            for scope in resource.scope_spans {
                self.spans.lock().unwrap().extend(scope.spans);
            }
        }
        HttpResponse::Ok()
            .content_type("application/x-protobuf")
            .finish()
    }

    fn of_trace(&self, trace_id: &str) -> Vec<Span> {
        let spans = self.spans.lock().unwrap();
        spans
            .iter()
            .filter(|s| hex::encode(&s.trace_id) == trace_id)
            .cloned()
            .collect()
    }

    async fn wait_for_trace(&self, trace_id: &str) -> Vec<Span> {
        eventually(
            "the request's spans reach the collector",
            Duration::from_secs(20),
            async || {
                self.of_trace(trace_id)
                    .iter()
                    .any(|s| s.kind == SpanKind::Server as i32)
            },
        )
        .await;
        self.of_trace(trace_id)
    }
}

fn string(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(Any::DoubleValue(d)) => d.to_string(),
        Some(Any::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .map(|a| string(&a.value))
}

#[actix_web::test]
async fn a_request_is_one_server_span_with_a_child_per_attempt_sent_upstream_as_parent() {
    let (collector, endpoint) = Collector::start().await;
    let app = spawn_app_with(|config| {
        config.otel.endpoint = endpoint.clone();
        config.otel.batch_delay_ms = 20;
        config.otel.service_name = "gateway-under-test".into();
        config.otel.headers.insert(
            "x_api_key".into(),
            spidergate::secret::Secret::new("collector-key-1"),
        );
    })
    .await;
    let (_, credential) = app.create_brand("Acme").await;
    app.add_key(&credential, "openai", FAILING, json!({})).await;
    app.add_pool_key("openai", POOLED).await;
    app.fake.set(FAILING, Behaviour::ServerError);
    let (token, minted) = app
        .mint_token(&credential, json!({ "name": "agent" }))
        .await;
    // The first export is refused: the exporter tries it again.
    collector.refusals.store(1, Ordering::SeqCst);

    let response = app
        .client
        .post(format!("{}/api/gate/v1/chat/completions", app.address))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .header("tracestate", "vendor=opaque")
        .json(&json!({ "model": MODEL, "messages": [{ "role": "user", "content": "secret prompt" }] }))
        .send()
        .await
        .expect("chat");
    assert_eq!(response.status(), StatusCode::OK);

    let spans = collector.wait_for_trace(CLIENT_TRACE).await;
    assert!(
        collector.posts.load(Ordering::SeqCst) >= 2,
        "a refused batch is posted again"
    );
    let request = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("server span");
    assert_eq!(
        hex::encode(&request.parent_span_id),
        CLIENT_SPAN,
        "the client's span is the parent"
    );
    assert_eq!(request.trace_state, "vendor=opaque");
    assert_eq!(request.name, format!("chat {MODEL}"));
    for (key, expected) in [
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.request.model", MODEL),
        ("gen_ai.response.model", MODEL),
        ("gen_ai.provider.name", "openai"),
        ("spidergate.fallback_used", "false"),
        ("spidergate.attempts", "2"),
        ("http.response.status_code", "200"),
    ] {
        assert_eq!(attribute(request, key).as_deref(), Some(expected), "{key}");
    }
    let usage = app.fake.requests();
    assert!(attribute(request, "gen_ai.usage.input_tokens").is_some_and(|t| t != "0"));
    assert!(attribute(request, "gen_ai.usage.output_tokens").is_some_and(|t| t != "0"));
    assert!(
        attribute(request, "spidergate.cost_usd").is_some_and(|c| c.parse::<f64>().unwrap() > 0.0)
    );
    assert_eq!(
        attribute(request, "spidergate.token_id"),
        Some(minted["id"].to_string())
    );

    let attempts: Vec<&Span> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    assert_eq!(attempts.len(), 2, "one client span per upstream attempt");
    assert_eq!(usage.len(), 2, "two upstream calls");
    for (attempt, call) in attempts.iter().zip(&usage) {
        assert_eq!(
            attempt.parent_span_id, request.span_id,
            "an attempt is a child of the request"
        );
        let expected = format!("00-{CLIENT_TRACE}-{}-01", hex::encode(&attempt.span_id));
        assert_eq!(
            call.traceparent.as_deref(),
            Some(expected.as_str()),
            "sent upstream as parent"
        );
        assert!(attempt.start_time_unix_nano >= request.start_time_unix_nano);
        assert!(attempt.end_time_unix_nano <= request.end_time_unix_nano);
    }
    assert_eq!(
        attribute(attempts[0], "spidergate.attempt.status").as_deref(),
        Some("error")
    );
    assert!(attribute(attempts[0], "error.type").is_some());
    assert_eq!(
        attribute(attempts[1], "spidergate.attempt.status").as_deref(),
        Some("ok")
    );
    let phases: Vec<&str> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Internal as i32)
        .map(|s| s.name.as_str())
        .collect();
    assert!(
        phases.contains(&"spidergate.upstream") && phases.contains(&"spidergate.auth"),
        "{phases:?}"
    );

    let everything = format!("{spans:?}");
    for secret in [
        FAILING,
        POOLED,
        token.as_str(),
        credential.as_str(),
        "secret prompt",
    ] {
        assert!(!everything.contains(secret), "a span carries {secret}");
    }
    assert!(
        collector
            .api_keys
            .lock()
            .unwrap()
            .iter()
            .all(|k| k == "collector-key-1")
    );
    assert!(
        !collector.api_keys.lock().unwrap().is_empty(),
        "otel.headers are sent"
    );
    assert!(
        collector
            .service_names
            .lock()
            .unwrap()
            .iter()
            .all(|n| n == "gateway-under-test")
    );
}

#[actix_web::test]
async fn unsampled_clients_are_not_exported_and_new_roots_follow_the_ratio() {
    let (collector, endpoint) = Collector::start().await;
    let app = spawn_app_with(|config| {
        config.otel.endpoint = endpoint.clone();
        config.otel.batch_delay_ms = 20;
        config.otel.sample_ratio = 0.0;
    })
    .await;
    let (_, credential) = app.create_brand("Acme").await;
    app.add_key(&credential, "openai", POOLED, json!({})).await;
    let (token, _) = app
        .mint_token(&credential, json!({ "name": "agent" }))
        .await;
    let chat = |traceparent: Option<String>| {
        let mut request = app
            .client
            .post(format!("{}/api/gate/v1/chat/completions", app.address))
            .bearer_auth(&token)
            .json(&json!({ "model": MODEL, "messages": [{ "role": "user", "content": "hi" }] }));
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        request.send()
    };
    let unsampled = "5bf92f3577b34da6a3ce929d0e0e4736";
    assert!(
        chat(Some(format!("00-{unsampled}-{CLIENT_SPAN}-00")))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    assert!(chat(None).await.unwrap().status().is_success());
    let upstream = app.fake.requests();
    let root = upstream[1]
        .traceparent
        .clone()
        .expect("a new root is still propagated");
    assert!(
        root.ends_with("-00"),
        "a root outside the ratio is sent unsampled: {root}"
    );
    assert!(
        upstream[0]
            .traceparent
            .as_deref()
            .unwrap()
            .starts_with(&format!("00-{unsampled}-"))
    );
    // A sampled request after both: once it arrives, nothing earlier was queued.
    assert!(
        chat(Some(format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    collector.wait_for_trace(CLIENT_TRACE).await;
    let traces: std::collections::HashSet<String> = collector
        .spans
        .lock()
        .unwrap()
        .iter()
        .map(|s| hex::encode(&s.trace_id))
        .collect();
    assert_eq!(
        traces.len(),
        1,
        "only the sampled request was exported: {traces:?}"
    );
}

#[actix_web::test]
async fn without_a_collector_the_clients_trace_context_is_passed_upstream_unchanged() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    app.add_key(&credential, "openai", POOLED, json!({})).await;
    let (token, _) = app
        .mint_token(&credential, json!({ "name": "agent" }))
        .await;
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let response = app
        .client
        .post(format!("{}/api/gate/v1/chat/completions", app.address))
        .bearer_auth(&token)
        .header("traceparent", &traceparent)
        .json(&json!({ "model": MODEL, "messages": [{ "role": "user", "content": "hi" }] }))
        .send()
        .await
        .expect("chat");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(app.chat(&token, MODEL).await.status.is_success());
    let upstream = app.fake.requests();
    assert_eq!(
        upstream[0].traceparent.as_deref(),
        Some(traceparent.as_str())
    );
    assert_eq!(
        upstream[1].traceparent, None,
        "no context is invented when not tracing"
    );
}

#[actix_web::test]
async fn a_claude_calls_span_carries_its_prompt_cache_counts() {
    let (collector, endpoint) = Collector::start().await;
    let app = spawn_app_with(|config| {
        config.otel.endpoint = endpoint.clone();
        config.otel.batch_delay_ms = 20;
    })
    .await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "anthropic", "sk-ant-otel", json!({}))
        .await;
    let trace = "5cf92f3577b34da6a3ce929d0e0e4737";
    let response = app
        .client
        .post(format!("{}/api/gate/v1/chat/completions", app.address))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace}-{CLIENT_SPAN}-01"))
        .json(&json!({ "model": "anthropic/claude-haiku-4-5", "messages": [{ "role": "user", "content": "hi" }] }))
        .send()
        .await
        .expect("chat");
    assert_eq!(response.status(), StatusCode::OK);
    let spans = collector.wait_for_trace(trace).await;
    let request = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("server span");
    let (_, read, written, _) = crate::fake_dialects::ANTHROPIC_USAGE;
    assert_eq!(
        attribute(request, "gen_ai.usage.cache_read.input_tokens"),
        Some(read.to_string())
    );
    assert_eq!(
        attribute(request, "gen_ai.usage.cache_creation.input_tokens"),
        Some(written.to_string())
    );
    assert_eq!(
        attribute(request, "gen_ai.provider.name").as_deref(),
        Some("anthropic")
    );
}
