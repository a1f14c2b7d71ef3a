//! The one request pipeline every generating endpoint runs: begin the trace, check the model
//! against the allow-list, plan, take limits and the budget hold, attempt with fallback, then
//! hand the answer to the endpoint to render (JSON or a stream) and settle. The call's `Drop`
//! records the trace whatever happened.
//!
//! A [`Job`] says only what is specific to its endpoint: which models may serve it, what it can
//! cost, one upstream attempt, and how the answer is rendered.

use super::call::GateCall;
use crate::auth::Principal;
use crate::catalog::{Catalog, Model};
use crate::error::{ApiError, ErrorCode};
use crate::limits::Estimate;
use crate::providers::{Endpoint, ProviderError};
use crate::routing::{self, Plan, Served};
use crate::state::AppState;
use crate::usage::Phase;
use actix_web::{HttpRequest, HttpResponse};
use std::sync::Arc;

/// What one generating endpoint does; the pipeline does the rest.
pub(super) trait Job {
    /// What a successful attempt produced.
    type Answer;

    /// The trace's `request_kind`.
    fn kind(&self) -> &'static str;

    /// The model id or alias asked for.
    fn requested(&self) -> &str;

    /// Which models may serve it, in order.
    fn plan(&self, state: &AppState, principal: &Principal) -> Result<Plan, ApiError>;

    /// The most it can cost on the plan, for the budget hold.
    fn estimate(&self, plan: &Plan) -> Estimate;

    /// The code for "no usable key for any candidate".
    fn no_key(&self, _plan: &Plan) -> ErrorCode {
        ErrorCode::NoAvailableKey
    }

    /// One upstream attempt with `endpoint` on `model`, sent `completion_limit` when a hard
    /// budget imposes one.
    async fn attempt(
        &self,
        state: &AppState,
        endpoint: Endpoint,
        model: Arc<Model>,
        completion_limit: Option<u64>,
    ) -> Result<Self::Answer, ProviderError>;

    /// Renders the served answer and settles the call (or hands it to the stream that will).
    fn respond(
        self,
        state: &AppState,
        call: GateCall,
        plan: &Plan,
        served: Served<Self::Answer>,
    ) -> Result<HttpResponse, ApiError>;
}

/// Runs `job` for `principal`; `body` is stored with the trace when bodies are kept.
pub(super) async fn run<J: Job>(
    state: &AppState,
    principal: &Principal,
    req: &HttpRequest,
    body: Option<&[u8]>,
    job: J,
) -> Result<HttpResponse, ApiError> {
    let mut call = GateCall::begin(state, principal, req, job.kind(), job.requested()).await?;
    if let Some(body) = body {
        call.store_request_body(body);
    }
    match route(state, principal, &mut call, &job).await {
        Ok((plan, served)) => {
            call.enter(Phase::Tracking);
            job.respond(state, call, &plan, served)
        }
        Err(err) => Err(call.fail(err)),
    }
}

async fn route<J: Job>(
    state: &AppState,
    principal: &Principal,
    call: &mut GateCall,
    job: &J,
) -> Result<(Plan, Served<J::Answer>), ApiError> {
    call.check_model(state, principal)?;
    let mut plan = job.plan(state, principal)?;
    let grant = call.admit(state, principal, &job.estimate(&plan)).await?;
    plan.limit_completions(&grant.completion_limits);
    call.enter(Phase::Upstream);
    let no_key = job.no_key(&plan);
    let served = routing::call_with_fallback(
        state,
        &plan,
        no_key,
        &mut call.attempts,
        |endpoint, model| {
            let limit = plan.completion_limit(&model.id);
            job.attempt(state, endpoint, model, limit)
        },
    )
    .await?;
    call.served(&plan, &served);
    Ok((plan, served))
}

/// For OpenAI's media endpoints: `no_openai_key` when only OpenAI models could have served
/// (the contract's code), else `no_available_key`.
pub(super) fn media_no_key(plan: &Plan) -> ErrorCode {
    if plan.candidates.iter().all(|c| c.model.provider == "openai") {
        ErrorCode::NoOpenaiKey
    } else {
        ErrorCode::NoAvailableKey
    }
}

/// A chat plan: the model or alias chain (free-tier models only when the token says so).
pub(super) fn chat_plan(
    state: &AppState,
    principal: &Principal,
    requested: &str,
) -> Result<Plan, ApiError> {
    let free_only = principal
        .token
        .as_ref()
        .is_some_and(|t| t.limits.free_models_only);
    routing::plan(
        &state.catalog.load(),
        &state.vault.snapshot(),
        &state.health,
        principal.brand_id,
        requested,
        free_only,
    )
}

/// A plan for one of OpenAI's other endpoints: models with `capability` whose provider speaks
/// OpenAI's API. Aliases are accepted only where the contract allows them (`agent/embed*`);
/// anything else must name such a model: an unknown id is 404, a model of another kind is 400.
pub(super) fn capability_plan(
    state: &AppState,
    principal: &Principal,
    requested: &str,
    capability: &str,
    aliases: bool,
) -> Result<Plan, ApiError> {
    let catalog = state.catalog.load();
    let chain = capability_chain(&catalog, requested, capability, aliases)?;
    Ok(routing::plan_models(
        &state.vault.snapshot(),
        &state.health,
        principal.brand_id,
        requested,
        chain,
    ))
}

fn capability_chain<'a>(
    catalog: &'a Catalog,
    requested: &str,
    capability: &str,
    aliases: bool,
) -> Result<Vec<&'a Arc<Model>>, ApiError> {
    let serves = |model: &Model| {
        model.has(capability)
            && catalog
                .provider(&model.provider)
                .is_some_and(|p| crate::providers::chat::serves_openai_media(p.api))
    };
    if aliases && let Some(alias) = catalog.alias(requested) {
        let chain: Vec<&Arc<Model>> = alias
            .models
            .iter()
            .filter_map(|m| catalog.model(m))
            .filter(|m| serves(m))
            .collect();
        if !chain.is_empty() {
            return Ok(chain);
        }
    }
    let Some(model) = catalog.model(requested) else {
        return Err(ApiError::new(
            ErrorCode::ModelNotFound,
            format!("model `{requested}` does not exist"),
        )
        .with_param("model"));
    };
    if !serves(model) {
        return Err(ApiError::invalid_field(
            "model",
            format!("`{requested}` is not a {capability} model"),
        ));
    }
    Ok(vec![model])
}
