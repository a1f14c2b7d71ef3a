//! The OpenAI-only endpoints: embeddings, image generation, speech and transcription.
//!
//! They route like chat (brand's own OpenAI keys, then shared, then pool; fallback across keys),
//! but only to OpenAI, and answer 503 `no_openai_key` when no OpenAI key is usable.

use super::call::GateCall;
use super::fields;
use crate::auth::Principal;
use crate::catalog::{Catalog, Model};
use crate::error::{ApiError, ErrorCode};
use crate::json;
use crate::limits::Estimate;
use crate::providers::sse::Usage;
use crate::providers::{Endpoint, ErrorKind, ProviderError};
use crate::routing::{self, Served};
use crate::state::AppState;
use crate::usage::Phase;
use actix_multipart::Multipart;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Map, Value};
use std::time::Duration;

const VOICES: [&str; 6] = ["alloy", "echo", "fable", "onyx", "nova", "shimmer"];
const AUDIO_FORMATS: [(&str, &str); 6] = [
    ("mp3", "audio/mpeg"),
    ("opus", "audio/opus"),
    ("aac", "audio/aac"),
    ("flac", "audio/flac"),
    ("wav", "audio/wav"),
    ("pcm", "audio/pcm"),
];
/// OpenAI's limit on an uploaded audio file.
pub const TRANSCRIPTION_LIMIT: usize = 25 * 1024 * 1024;

/// The OpenAI models `requested` may use for `capability`. Aliases are accepted only where the
/// contract allows them (`agent/embed*`); anything else must name an OpenAI model with that
/// capability: an unknown id is 404, a model of another kind or provider is 400.
fn openai_chain<'a>(
    catalog: &'a Catalog,
    requested: &str,
    capability: &str,
    aliases: bool,
) -> Result<Vec<&'a Model>, ApiError> {
    if aliases && let Some(alias) = catalog.alias(requested) {
        let chain: Vec<&Model> = alias
            .models
            .iter()
            .filter_map(|m| catalog.model(m))
            .filter(|m| m.provider == "openai" && m.has(capability))
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
    if model.provider != "openai" || !model.has(capability) {
        return Err(ApiError::invalid_field(
            "model",
            format!("`{requested}` is not an OpenAI {capability} model"),
        ));
    }
    Ok(vec![model])
}

/// Allow-list, plan (OpenAI only), limits with `estimate` held, then the call with fallback.
async fn route_openai<T, F, Fut>(
    state: &AppState,
    principal: &Principal,
    call: &mut GateCall,
    capability: &str,
    aliases: bool,
    estimate_tokens: u64,
    attempt: F,
) -> Result<Served<T>, ApiError>
where
    F: Fn(Endpoint, Model) -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    call.check_model(state, principal)?;
    let requested = call.requested().to_owned();
    let plan = {
        let catalog = state.catalog.load();
        let chain = openai_chain(&catalog, &requested, capability, aliases)?;
        routing::plan_models(
            &state.vault.snapshot(),
            &state.health,
            principal.brand_id,
            &requested,
            chain,
        )
    };
    let estimate = plan
        .candidates
        .iter()
        .map(|c| c.model.cost(estimate_tokens, 0))
        .max()
        .unwrap_or_default();
    call.admit(state, principal, &Estimate::Fixed(estimate))
        .await?;
    call.enter(Phase::Upstream);
    let served = routing::call_with_fallback(
        state,
        &plan,
        ErrorCode::NoOpenaiKey,
        &mut call.attempts,
        attempt,
    )
    .await?;
    call.served(&plan, &served);
    call.enter(Phase::Tracking);
    Ok(served)
}

fn required_str<'a>(
    body: &'a Map<String, Value>,
    field: &str,
    max_chars: usize,
) -> Result<&'a str, ApiError> {
    let text = body
        .get(field)
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    let text = text.ok_or_else(|| ApiError::invalid_field(field, "is required"))?;
    if text.chars().count() > max_chars {
        return Err(ApiError::invalid_field(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(text)
}

fn with_model(body: &Map<String, Value>, model: &Model) -> Vec<u8> {
    let mut body = body.clone();
    body.insert("model".into(), Value::String(model.provider_model.clone()));
    serde_json::to_vec(&body).unwrap_or_default()
}

/// POSTs JSON and reads the whole answer within `timeout` (head and body alike). A 2xx that is
/// not JSON, carries `{"error": …}` or lacks `data` is a failed attempt of the key, so the next
/// key or model is tried.
async fn post_json(
    http: reqwest::Client,
    endpoint: Endpoint,
    path: &'static str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Value, ProviderError> {
    let request = endpoint
        .request(&http, Method::POST, path)
        .header(CONTENT_TYPE.as_str(), "application/json")
        .timeout(timeout)
        .body(body);
    let bytes = endpoint
        .send(request, None)
        .await?
        .bytes()
        .await
        .map_err(|e| endpoint.scrub(ProviderError::from_reqwest(e)))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|_| ProviderError::malformed("with a body that is not JSON"))?;
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        return Err(endpoint.scrub(ProviderError::in_band(&error.to_string())));
    }
    if !value.get("data").is_some_and(Value::is_array) {
        return Err(ProviderError::malformed("without `data`"));
    }
    Ok(value)
}

/// Puts the gateway's model id in a JSON answer.
fn json_answer(served: Served<Value>) -> (Model, Value) {
    let mut value = served.value;
    if value.get("model").is_some() {
        value["model"] = Value::String(served.model.id.clone());
    }
    (served.model, value)
}

/// Embeddings, from OpenAI keys only.
#[utoipa::path(post, path = "/api/gate/v1/embeddings", tag = "gateway",
    request_body = super::openapi::EmbeddingsRequest,
    responses((status = 200, description = "OpenAI's embeddings answer", body = super::openapi::OpenAiObject), crate::openapi::schemas::Failed),
    security(("agent" = [])))]
pub async fn embeddings(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    json::Body(bytes): json::Body,
) -> Result<HttpResponse, ApiError> {
    let body: Map<String, Value> = json::parse(&bytes)?;
    let requested = required_str(&body, "model", 200)?;
    if body.get("input").is_none_or(Value::is_null) {
        return Err(ApiError::invalid_field(
            "input",
            "is required: a string or an array",
        ));
    }
    fields::check_map(&body, fields::EMBEDDINGS)?;
    let mut call = GateCall::begin(&state, &principal, &req, "embeddings", requested).await?;
    // At most one token per byte of the body: the hold is an upper bound, not an average.
    let tokens = bytes.len() as u64;
    let json = JsonCall {
        path: "/embeddings",
        capability: "embeddings",
        aliases: true,
        estimate_tokens: tokens,
    };
    json.run(&state, &principal, &mut call, &body).await
}

/// Image generation, from OpenAI keys only.
#[utoipa::path(post, path = "/api/gate/v1/images/generations", tag = "gateway",
    request_body = super::openapi::ImagesRequest,
    responses((status = 200, description = "OpenAI's images answer", body = super::openapi::OpenAiObject), crate::openapi::schemas::Failed),
    security(("agent" = [])))]
pub async fn images(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    json::Body(bytes): json::Body,
) -> Result<HttpResponse, ApiError> {
    let body: Map<String, Value> = json::parse(&bytes)?;
    required_str(&body, "prompt", 4000)?;
    fields::check_map(&body, fields::IMAGES)?;
    let requested = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("dall-e-2");
    let mut call = GateCall::begin(&state, &principal, &req, "images", requested).await?;
    let json = JsonCall {
        path: "/images/generations",
        capability: "image_generation",
        aliases: false,
        estimate_tokens: 0,
    };
    json.run(&state, &principal, &mut call, &body).await
}

/// A JSON-in, JSON-out OpenAI endpoint (embeddings, images).
struct JsonCall {
    path: &'static str,
    capability: &'static str,
    aliases: bool,
    estimate_tokens: u64,
}

impl JsonCall {
    async fn run(
        &self,
        state: &AppState,
        principal: &Principal,
        call: &mut GateCall,
        body: &Map<String, Value>,
    ) -> Result<HttpResponse, ApiError> {
        let timeout = state.config.upstream.timeout();
        let routed = route_openai(
            state,
            principal,
            call,
            self.capability,
            self.aliases,
            self.estimate_tokens,
            |endpoint, model| {
                post_json(
                    state.http.clone(),
                    endpoint,
                    self.path,
                    with_model(body, &model),
                    timeout,
                )
            },
        )
        .await;
        finish_json(call, routed.map(json_answer))
    }
}

/// Charges a JSON answer by its `usage` block (embeddings report prompt tokens) and renders it.
fn finish_json(
    call: &mut GateCall,
    answer: Result<(Model, Value), ApiError>,
) -> Result<HttpResponse, ApiError> {
    let (model, value) = answer.map_err(|err| call.fail(err))?;
    let usage = &value["usage"];
    let usage = Usage {
        prompt_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
        completion_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
    };
    call.succeed(&model, usage);
    let mut response = HttpResponse::Ok();
    call.headers(&mut response);
    Ok(response.json(value))
}

/// Text to speech, from OpenAI keys only; the audio is streamed as it arrives.
#[utoipa::path(post, path = "/api/gate/v1/audio/speech", tag = "gateway",
    request_body = super::openapi::SpeechRequest,
    responses(
        (status = 200, description = "The audio, in `response_format`'s type",
            content((Vec<u8> = "audio/mpeg"), (Vec<u8> = "audio/opus"), (Vec<u8> = "audio/aac"),
                (Vec<u8> = "audio/flac"), (Vec<u8> = "audio/wav"), (Vec<u8> = "audio/pcm"))),
        crate::openapi::schemas::Failed),
    security(("agent" = [])))]
pub async fn speech(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    json::Body(bytes): json::Body,
) -> Result<HttpResponse, ApiError> {
    let body: Map<String, Value> = json::parse(&bytes)?;
    let requested = required_str(&body, "model", 200)?;
    let input_chars = required_str(&body, "input", 4096)?.chars().count() as u64;
    let voice = body
        .get("voice")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !VOICES.contains(&voice) {
        return Err(ApiError::new(
            ErrorCode::InvalidVoice,
            format!("`voice` must be one of {}", VOICES.join(", ")),
        )
        .with_param("voice"));
    }
    let format = body
        .get("response_format")
        .and_then(Value::as_str)
        .unwrap_or("mp3");
    let Some((_, content_type)) = AUDIO_FORMATS.iter().find(|(name, _)| *name == format) else {
        let names: Vec<&str> = AUDIO_FORMATS.iter().map(|(n, _)| *n).collect();
        return Err(ApiError::new(
            ErrorCode::InvalidResponseFormat,
            format!("`response_format` must be one of {}", names.join(", ")),
        )
        .with_param("response_format"));
    };
    let mut call = GateCall::begin(&state, &principal, &req, "speech", requested).await?;
    let timeout = state.config.upstream.timeout();
    let routed = route_openai(
        &state,
        &principal,
        &mut call,
        "speech",
        false,
        input_chars,
        |endpoint, model| {
            let request = endpoint
                .request(&state.http, Method::POST, "/audio/speech")
                .header(CONTENT_TYPE.as_str(), "application/json")
                .body(with_model(&body, &model));
            // Only the head is awaited here: the audio is relayed as it arrives.
            async move { endpoint.send(request, Some(timeout)).await }
        },
    )
    .await;
    let served = routed.map_err(|err| call.fail(err))?;
    // Speech is priced per input character, kept in the catalog as the input price per million.
    call.succeed(
        &served.model,
        Usage {
            prompt_tokens: input_chars,
            completion_tokens: 0,
        },
    );
    let mut response = HttpResponse::Ok();
    call.headers(&mut response);
    // Audio is relayed as it arrives, never buffered whole.
    Ok(response
        .content_type(*content_type)
        .streaming(served.value.bytes_stream()))
}

/// A parsed transcription upload.
struct Upload {
    file: Bytes,
    file_name: String,
    file_type: String,
    fields: Vec<(String, String)>,
}

/// Speech to text, from OpenAI keys only: `multipart/form-data` with `file` (at most 25 MiB) and
/// `model`.
#[utoipa::path(post, path = "/api/gate/v1/audio/transcriptions", tag = "gateway",
    request_body(content = super::openapi::OpenAiObject, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The upstream's transcript, as it answered",
            content((super::openapi::OpenAiObject = "application/json"), (String = "text/plain"))),
        crate::openapi::schemas::Failed),
    security(("agent" = [])))]
pub async fn transcriptions(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    payload: Multipart,
) -> Result<HttpResponse, ApiError> {
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > TRANSCRIPTION_LIMIT + 64 * 1024) {
        return Err(too_large());
    }
    let upload = read_upload(payload).await?;
    let requested = upload
        .fields
        .iter()
        .find(|(k, _)| k == "model")
        .map(|(_, v)| v.clone());
    let requested = requested.ok_or_else(|| ApiError::invalid_field("model", "is required"))?;
    let mut call = GateCall::begin(&state, &principal, &req, "transcriptions", &requested).await?;
    let timeout = state.config.upstream.timeout();
    let routed = route_openai(
        &state,
        &principal,
        &mut call,
        "transcription",
        false,
        0,
        |endpoint, model| {
            let form = form_for(&upload, &model);
            let http = state.http.clone();
            async move {
                let form = form.map_err(|e| ProviderError::new(ErrorKind::Client, None, e))?;
                let request = endpoint
                    .request(&http, Method::POST, "/audio/transcriptions")
                    .timeout(timeout)
                    .multipart(form);
                transcript(&endpoint, request).await
            }
        },
    )
    .await;
    let served = routed.map_err(|err| call.fail(err))?;
    let (content_type, bytes) = served.value;
    call.succeed(&served.model, Usage::default());
    let mut response = HttpResponse::Ok();
    call.headers(&mut response);
    Ok(response.content_type(content_type).body(bytes))
}

/// The whole transcript (JSON, or text for `response_format` text/srt/vtt) and its content
/// type, read within the request's timeout; a JSON `{"error": …}` is a failed attempt.
async fn transcript(
    endpoint: &Endpoint,
    request: reqwest::RequestBuilder,
) -> Result<(String, Bytes), ProviderError> {
    let response = endpoint.send(request, None).await?;
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| endpoint.scrub(ProviderError::from_reqwest(e)))?;
    if content_type.starts_with("application/json")
        && let Ok(value) = serde_json::from_slice::<Value>(&bytes)
        && let Some(error) = value.get("error").filter(|e| !e.is_null())
    {
        return Err(endpoint.scrub(ProviderError::in_band(&error.to_string())));
    }
    Ok((content_type, bytes))
}

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        "the audio file is larger than 25 MiB",
    )
    .with_param("file")
}

async fn read_upload(mut payload: Multipart) -> Result<Upload, ApiError> {
    let bad = |e: &dyn std::fmt::Display| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("invalid multipart body: {e}"),
        )
    };
    let mut upload = Upload {
        file: Bytes::new(),
        file_name: String::new(),
        file_type: String::new(),
        fields: Vec::new(),
    };
    let mut has_file = false;
    while let Some(field) = payload.next().await {
        let mut field = field.map_err(|e| bad(&e))?;
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            upload.file_name = field
                .content_disposition()
                .and_then(|d| d.get_filename())
                .unwrap_or("audio")
                .to_owned();
            upload.file_type = field
                .content_type()
                .map_or("application/octet-stream".to_owned(), |m| m.to_string());
            upload.file = field
                .bytes(TRANSCRIPTION_LIMIT)
                .await
                .map_err(|_| too_large())?
                .map_err(|e| bad(&e))?;
            has_file = true;
        } else {
            let value = field
                .bytes(64 * 1024)
                .await
                .map_err(|_| ApiError::invalid_field(&name, "is too long"))?
                .map_err(|e| bad(&e))?;
            let value = String::from_utf8(value.to_vec())
                .map_err(|_| ApiError::invalid_field(&name, "must be UTF-8 text"))?;
            upload.fields.push((name, value));
        }
    }
    if !has_file || upload.file.is_empty() {
        return Err(ApiError::invalid_field(
            "file",
            "is required: the audio to transcribe",
        ));
    }
    Ok(upload)
}

fn form_for(upload: &Upload, model: &Model) -> Result<reqwest::multipart::Form, String> {
    let file = reqwest::multipart::Part::bytes(upload.file.to_vec())
        .file_name(upload.file_name.clone())
        .mime_str(&upload.file_type)
        .map_err(|_| "the file's content type is invalid".to_owned())?;
    let mut form = reqwest::multipart::Form::new()
        .part("file", file)
        .text("model", model.provider_model.clone());
    for (name, value) in upload.fields.iter().filter(|(k, _)| k != "model") {
        form = form.text(name.clone(), value.clone());
    }
    Ok(form)
}
