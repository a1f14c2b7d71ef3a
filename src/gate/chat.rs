//! `POST /api/gate/v1/chat/completions`.

use super::call::GateCall;
use super::fields;
use super::pipeline::{self, Job};
use super::stream::{self, OpenAiOut, Opened, StreamReply};
use crate::auth::Principal;
use crate::catalog::Model;
use crate::error::ApiError;
use crate::json;
use crate::limits::{CandidatePrice, Estimate};
use crate::money::Money;
use crate::providers::{self, ChatRequest, Endpoint, Outgoing, ProviderError, Usage};
use crate::raw::RawObject;
use crate::routing::{Plan, Served};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

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
    fields::check(request.body(), fields::CHAT)?;
    let job = ChatJob {
        request,
        body_len: body.len(),
        include_route_trace: query.include_route_trace,
    };
    pipeline::run(&state, &principal, &req, Some(&body), job).await
}

/// A chat completion in OpenAI's shape, through whichever dialect serves it.
pub(super) struct ChatJob {
    pub request: ChatRequest,
    pub body_len: usize,
    pub include_route_trace: bool,
}

/// A served chat completion: the whole answer, or an opened stream.
pub(super) enum ChatAnswer {
    Whole(RawObject),
    Stream(Opened),
}

impl Job for ChatJob {
    type Answer = ChatAnswer;

    fn kind(&self) -> &'static str {
        "chat"
    }

    fn requested(&self) -> &str {
        &self.request.model
    }

    fn plan(&self, state: &AppState, principal: &Principal) -> Result<Plan, ApiError> {
        pipeline::chat_plan(state, principal, &self.request.model)
    }

    fn estimate(&self, plan: &Plan) -> Estimate {
        worst_case(plan, &self.request, self.body_len)
    }

    async fn attempt(
        &self,
        state: &AppState,
        endpoint: Endpoint,
        model: Arc<Model>,
        completion_limit: Option<u64>,
    ) -> Result<ChatAnswer, ProviderError> {
        attempt_chat(state, &endpoint, &model, &self.request, completion_limit).await
    }

    fn respond(
        self,
        state: &AppState,
        mut call: GateCall,
        plan: &Plan,
        served: Served<ChatAnswer>,
    ) -> Result<HttpResponse, ApiError> {
        let mut response = HttpResponse::Ok();
        fallback_header(&mut response, plan, &served.model.id);
        let answer = match served.value {
            ChatAnswer::Stream(opened) => {
                let reply = StreamReply {
                    model: served.model,
                    prompt_estimate: self.request.prompt_estimate(),
                    idle_timeout: state.config.upstream.stream_idle_timeout(),
                    native: false,
                };
                let outbound = Box::new(OpenAiOut {
                    include_usage: self.request.include_usage,
                });
                return Ok(reply.respond(call, response, opened, outbound));
            }
            ChatAnswer::Whole(answer) => answer,
        };
        let served = Served {
            value: answer,
            model: served.model,
            integration_id: served.integration_id,
        };
        let usage = served
            .value
            .get::<Usage>("usage")
            .and_then(Result::ok)
            .unwrap_or_default();
        let cost = call.succeed(&served.model, usage);
        let bytes = render(plan, &served, &call, cost, self.include_route_trace);
        call.store_response_body(&bytes);
        call.headers(&mut response);
        Ok(response.content_type("application/json").body(bytes))
    }
}

/// One attempt of a chat completion with `endpoint`: the whole answer within the timeout, or a
/// stream that has produced its first event.
async fn attempt_chat(
    state: &AppState,
    endpoint: &Endpoint,
    model: &Model,
    request: &ChatRequest,
    completion_limit: Option<u64>,
) -> Result<ChatAnswer, ProviderError> {
    let timeout = state.config.upstream.timeout();
    let outgoing = Outgoing {
        request,
        model,
        completion_limit,
    };
    let upstream = providers::chat::request(endpoint, &state.upstream.client(), &outgoing)?;
    if request.stream {
        return stream::open(endpoint, upstream, model, timeout)
            .await
            .map(ChatAnswer::Stream);
    }
    let response = endpoint.send(upstream.timeout(timeout), None).await?;
    let bytes = response
        .bytes()
        .await
        .map_err(|e| endpoint.scrub(ProviderError::from_reqwest(e)))?;
    providers::chat::answer(endpoint.api, &bytes, model)
        .map(ChatAnswer::Whole)
        .map_err(|e| endpoint.scrub(e))
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
