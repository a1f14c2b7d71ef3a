//! `POST /api/gate/v1/chat/completions`.

use super::call::GateCall;
use super::raw::RawObject;
use super::request::ChatRequest;
use super::stream;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};
use crate::json;
use crate::limits::{CandidatePrice, Estimate};
use crate::money::Money;
use crate::providers::sse::Usage;
use crate::providers::{Endpoint, ProviderError};
use crate::routing::{self, Plan, Served};
use crate::state::AppState;
use crate::usage::Phase;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use reqwest::Method;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use std::time::Duration;

pub const FALLBACK_FROM: &str = "x-spidergate-fallback-from";

#[derive(Deserialize)]
pub struct GateQuery {
    #[serde(default)]
    include_route_trace: bool,
}

/// A chat completion, or with `"stream": true` its server-sent events (`data: {chunk}` lines,
/// then `data: [DONE]`).
#[utoipa::path(post, path = "/api/gate/v1/chat/completions", tag = "gateway",
    params(("include_route_trace" = Option<bool>, Query,
        description = "Add `spidergate_route_trace`: every upstream attempt")),
    request_body = super::openapi::ChatRequest,
    responses(
        (status = 200, description = "The completion (JSON), or its event stream",
            content((super::openapi::ChatCompletion = "application/json"), (super::openapi::StreamEvent = "text/event-stream"))),
        crate::openapi::schemas::Failed),
    security(("agent" = [])))]
pub async fn chat_completions(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    query: web::Query<GateQuery>,
    json::Body(body): json::Body,
) -> Result<HttpResponse, ApiError> {
    let request = ChatRequest::parse(&body)?;
    let mut call = GateCall::begin(&state, &principal, &req, "chat", &request.model).await?;
    call.store_request_body(&body);
    let plan = match admit(&state, &principal, &mut call, &request, body.len()).await {
        Ok(plan) => plan,
        Err(err) => return Err(call.fail(err)),
    };
    if request.stream {
        return stream::chat_stream(&state, call, &plan, &request).await;
    }
    match complete_chat(
        &state,
        &mut call,
        &plan,
        &request,
        query.include_route_trace,
    )
    .await
    {
        Ok(response) => Ok(response),
        Err(err) => Err(call.fail(err)),
    }
}

/// Allow-list, plan, then limits and the budget hold for the plan's worst case.
async fn admit(
    state: &AppState,
    principal: &Principal,
    call: &mut GateCall,
    request: &ChatRequest,
    body_len: usize,
) -> Result<Plan, ApiError> {
    call.check_model(state, principal)?;
    let free_only = principal
        .token
        .as_ref()
        .is_some_and(|t| t.limits.free_models_only);
    let mut plan = routing::plan(
        &state.catalog.load(),
        &state.vault.snapshot(),
        &state.health,
        principal.brand_id,
        &request.model,
        free_only,
    )?;
    let grant = call
        .admit(state, principal, &worst_case(&plan, request, body_len))
        .await?;
    plan.limit_completions(&grant.completion_limits);
    Ok(plan)
}

/// The most this request can cost on each model of the plan: its prompt bound at the input
/// price plus the completion limit (the client's, at most the model's maximum output) at the
/// output price. A hard budget lowers the completion limit to what it can pay for.
fn worst_case(plan: &Plan, request: &ChatRequest, body_len: usize) -> Estimate {
    let prompt = request.prompt_bound(body_len);
    let prices = plan
        .candidates
        .iter()
        .map(|c| {
            let model_max = u64::from(c.model.max_output_tokens);
            CandidatePrice {
                prompt: c.model.cost(prompt, 0),
                nanos_per_output_token: c.model.output_per_mtok * 1000.0,
                max_output: request.max_tokens.map_or(model_max, |m| m.min(model_max)),
            }
        })
        .collect();
    Estimate::Chat(prices)
}

async fn complete_chat(
    state: &AppState,
    call: &mut GateCall,
    plan: &Plan,
    request: &ChatRequest,
    include_route_trace: bool,
) -> Result<HttpResponse, ApiError> {
    call.enter(Phase::Upstream);
    let timeout = state.config.upstream.timeout();
    let served = routing::call_with_fallback(
        state,
        plan,
        ErrorCode::NoAvailableKey,
        &mut call.attempts,
        |endpoint, model| {
            complete(
                state.http.clone(),
                endpoint,
                request.upstream_body(&model, plan.completion_limit(&model.id)),
                timeout,
            )
        },
    )
    .await?;
    call.served(plan, &served);
    call.enter(Phase::Tracking);
    let usage = served
        .value
        .get::<Usage>("usage")
        .and_then(Result::ok)
        .unwrap_or_default();
    let cost = call.succeed(&served.model, usage);
    let bytes = render(plan, &served, call, cost, include_route_trace);
    call.store_response_body(&bytes);
    let mut response = HttpResponse::Ok();
    call.headers(&mut response);
    fallback_header(&mut response, plan, &served.model.id);
    Ok(response.content_type("application/json").body(bytes))
}

/// One non-streamed call: the whole answer within `timeout`, its fields left undecoded.
async fn complete(
    http: reqwest::Client,
    endpoint: Endpoint,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<RawObject, ProviderError> {
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
    let answer = RawObject::parse(&bytes)
        .map_err(|_| ProviderError::malformed("with a body that is not a JSON object"))?;
    if let Some(error) = answer.raw("error").filter(|e| *e != "null") {
        return Err(endpoint.scrub(ProviderError::in_band(error)));
    }
    match answer.get::<Vec<IgnoredAny>>("choices") {
        Some(Ok(choices)) if !choices.is_empty() => Ok(answer),
        _ => Err(ProviderError::malformed("without `choices`")),
    }
}

/// The upstream answer with the gateway's model id, `spidergate_metadata`, and the route trace;
/// `choices` and everything else are copied as they came.
fn render(
    plan: &Plan,
    served: &Served<RawObject>,
    call: &GateCall,
    cost: Money,
    include_route_trace: bool,
) -> Vec<u8> {
    let model = &served.model;
    let model_id = Value::String(model.id.clone()).to_string();
    let metadata = json!({
        "provider": model.provider,
        "provider_model": model.provider_model,
        "latency_ms": call.elapsed_ms(),
        "cost_usd": cost,
        "fallback_used": model.id != plan.first_choice,
        "original_model": plan.requested,
    });
    let mut append = vec![("spidergate_metadata", metadata.to_string())];
    if include_route_trace {
        append.push((
            "spidergate_route_trace",
            json!(call.attempts.list).to_string(),
        ));
    }
    let replace = |key: &str| match key {
        "model" => Some(model_id.clone()),
        "spidergate_metadata" | "spidergate_route_trace" => Some(String::new()),
        _ => None,
    };
    served.value.write(replace, &append)
}

/// `X-SpiderGate-Fallback-From: <first choice>` when another model served the request.
pub fn fallback_header(response: &mut HttpResponseBuilder, plan: &Plan, served: &str) {
    if served != plan.first_choice {
        response.insert_header((FALLBACK_FROM, plan.first_choice.as_str()));
    }
}
