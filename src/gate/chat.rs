//! `POST /api/gate/v1/chat/completions`.

use super::request::ChatRequest;
use super::stream;
use crate::auth::Principal;
use crate::catalog::Model;
use crate::error::{ApiError, ErrorCode};
use crate::providers::{Endpoint, ErrorKind, ProviderError};
use crate::routing::{self, Plan, Served};
use crate::state::AppState;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpResponse, HttpResponseBuilder, web};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub const FALLBACK_FROM: &str = "x-spidergate-fallback-from";

#[derive(Deserialize)]
pub struct GateQuery {
    #[serde(default)]
    include_route_trace: bool,
}

pub async fn chat_completions(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<GateQuery>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request = ChatRequest::parse(&body)?;
    let plan = routing::plan(
        &state.catalog.load(),
        &state.vault.snapshot(),
        &state.health,
        principal.brand_id,
        &request.model,
    )?;
    if request.stream {
        return stream::chat_stream(&state, &plan, &request).await;
    }
    let started = Instant::now();
    let timeout = state.config.upstream.timeout();
    let served = routing::call_with_fallback(
        &state,
        &plan,
        ErrorCode::NoAvailableKey,
        |endpoint, model| {
            complete(
                state.http.clone(),
                endpoint,
                request.upstream_body(&model),
                timeout,
            )
        },
    )
    .await?;
    Ok(render(&plan, served, started, query.include_route_trace))
}

/// One non-streamed call: the whole answer within `timeout`, parsed.
async fn complete(
    http: reqwest::Client,
    endpoint: Endpoint,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Value, ProviderError> {
    let request = endpoint
        .request(&http, Method::POST, "/chat/completions")
        .header(CONTENT_TYPE.as_str(), "application/json")
        .timeout(timeout)
        .body(body);
    let response = endpoint.send(request, None).await?;
    let bytes = response
        .bytes()
        .await
        .map_err(|e| endpoint.scrub(ProviderError::from_reqwest(e)))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
        ProviderError::new(
            ErrorKind::Decode,
            None,
            "upstream answered 2xx with a body that is not JSON",
        )
    })?;
    if !value.is_object() {
        return Err(ProviderError::new(
            ErrorKind::Decode,
            None,
            "upstream answered 2xx with a body that is not a JSON object",
        ));
    }
    Ok(value)
}

/// The upstream answer with the gateway's model id, `spidergate_metadata`, and the route trace.
fn render(
    plan: &Plan,
    served: Served<Value>,
    started: Instant,
    include_route_trace: bool,
) -> HttpResponse {
    let Served {
        value: mut body,
        model,
        attempts,
        ..
    } = served;
    let usage = &body["usage"];
    let cost = model.cost(
        usage["prompt_tokens"].as_u64().unwrap_or(0),
        usage["completion_tokens"].as_u64().unwrap_or(0),
    );
    let fallback_used = model.id != plan.first_choice;
    body["model"] = Value::String(model.id.clone());
    body["spidergate_metadata"] = json!({
        "provider": model.provider,
        "provider_model": model.provider_model,
        "latency_ms": started.elapsed().as_millis() as u64,
        "cost_usd": cost,
        "fallback_used": fallback_used,
        "original_model": plan.requested,
    });
    if include_route_trace {
        body["spidergate_route_trace"] = json!(attempts);
    }
    let mut response = HttpResponse::Ok();
    fallback_header(&mut response, plan, &model);
    response.json(body)
}

/// `X-SpiderGate-Fallback-From: <first choice>` when something else served the request.
pub fn fallback_header(response: &mut HttpResponseBuilder, plan: &Plan, served: &Model) {
    if served.id != plan.first_choice {
        response.insert_header((FALLBACK_FROM, plan.first_choice.as_str()));
    }
}
