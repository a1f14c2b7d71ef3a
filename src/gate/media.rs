//! OpenAI's other endpoints: embeddings, image generation, speech and transcription.
//!
//! They run the same pipeline as chat over any provider that speaks OpenAI's API and has a model
//! with the capability (brand's own keys, then shared, then pool; fallback across keys and
//! models). Where only OpenAI's models could serve, "no usable key" is 503 `no_openai_key`.

use super::call::GateCall;
use super::fields;
use super::pipeline::{self, Job};
use crate::auth::Principal;
use crate::catalog::Model;
use crate::error::{ApiError, ErrorCode};
use crate::json;
use crate::limits::Estimate;
use crate::providers::{Endpoint, ErrorKind, ProviderError, Usage};
use crate::routing::{Plan, Served};
use crate::state::AppState;
use actix_multipart::Multipart;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Map, Value};
use std::sync::Arc;

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

/// One media request: which models may serve it, what it holds, and its cost bound.
struct Media {
    kind: &'static str,
    requested: String,
    capability: &'static str,
    /// Whether an alias may name the chain (`agent/embed*`).
    aliases: bool,
    /// Input tokens (or characters) held against the budget, at the input price.
    estimate_tokens: u64,
    what: MediaRequest,
}

enum MediaRequest {
    /// JSON in, JSON out (embeddings, images) at `path`.
    Json {
        path: &'static str,
        body: Map<String, Value>,
    },
    /// JSON in, audio out, relayed as it arrives.
    Speech {
        body: Map<String, Value>,
        content_type: &'static str,
    },
    Transcription(Upload),
}

enum MediaAnswer {
    Json(Value),
    Audio(reqwest::Response),
    /// The transcript and its content type.
    Transcript(String, Bytes),
}

impl Job for Media {
    type Answer = MediaAnswer;

    fn kind(&self) -> &'static str {
        self.kind
    }

    fn requested(&self) -> &str {
        &self.requested
    }

    fn plan(&self, state: &AppState, principal: &Principal) -> Result<Plan, ApiError> {
        pipeline::capability_plan(
            state,
            principal,
            &self.requested,
            self.capability,
            self.aliases,
        )
    }

    fn estimate(&self, plan: &Plan) -> Estimate {
        let most = plan
            .candidates
            .iter()
            .map(|c| c.model.cost(self.estimate_tokens, 0))
            .max()
            .unwrap_or_default();
        Estimate::Fixed(most)
    }

    fn no_key(&self, plan: &Plan) -> ErrorCode {
        pipeline::media_no_key(plan)
    }

    async fn attempt(
        &self,
        state: &AppState,
        endpoint: Endpoint,
        model: Arc<Model>,
        _completion_limit: Option<u64>,
    ) -> Result<MediaAnswer, ProviderError> {
        let timeout = state.config.upstream.timeout();
        let http = state.upstream.client();
        match &self.what {
            MediaRequest::Json { path, body } => {
                post_json(&http, &endpoint, path, with_model(body, &model), timeout)
                    .await
                    .map(MediaAnswer::Json)
            }
            MediaRequest::Speech { body, .. } => {
                let request = endpoint
                    .request(&http, Method::POST, "/audio/speech")
                    .header(CONTENT_TYPE.as_str(), "application/json")
                    .body(with_model(body, &model));
                // Only the head is awaited here: the audio is relayed as it arrives.
                endpoint
                    .send(request, Some(timeout))
                    .await
                    .map(MediaAnswer::Audio)
            }
            MediaRequest::Transcription(upload) => {
                let form = form_for(upload, &model)
                    .map_err(|e| ProviderError::new(ErrorKind::Client, None, e))?;
                let request = endpoint
                    .request(&http, Method::POST, "/audio/transcriptions")
                    .timeout(timeout)
                    .multipart(form);
                let (content_type, bytes) = transcript(&endpoint, request).await?;
                Ok(MediaAnswer::Transcript(content_type, bytes))
            }
        }
    }

    fn respond(
        self,
        _state: &AppState,
        mut call: GateCall,
        _plan: &Plan,
        served: Served<MediaAnswer>,
    ) -> Result<HttpResponse, ApiError> {
        let model = served.model;
        let mut response = HttpResponse::Ok();
        match served.value {
            MediaAnswer::Json(mut value) => {
                if value.get("model").is_some() {
                    value["model"] = Value::String(model.id.clone());
                }
                // Embeddings report their prompt tokens; images report nothing.
                let usage = &value["usage"];
                let usage = Usage {
                    prompt_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
                    completion_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
                    ..Usage::default()
                };
                call.succeed(&model, usage);
                call.headers(&mut response);
                Ok(response.json(value))
            }
            MediaAnswer::Audio(audio) => {
                // Speech is priced per input character, kept as the input price per million.
                let usage = Usage {
                    prompt_tokens: self.estimate_tokens,
                    ..Usage::default()
                };
                call.succeed(&model, usage);
                call.headers(&mut response);
                let content_type = match &self.what {
                    MediaRequest::Speech { content_type, .. } => *content_type,
                    _ => "application/octet-stream",
                };
                // Audio is relayed as it arrives, never buffered whole.
                Ok(response
                    .content_type(content_type)
                    .streaming(audio.bytes_stream()))
            }
            MediaAnswer::Transcript(content_type, bytes) => {
                call.succeed(&model, Usage::default());
                call.headers(&mut response);
                Ok(response.content_type(content_type).body(bytes))
            }
        }
    }
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
    http: &reqwest::Client,
    endpoint: &Endpoint,
    path: &str,
    body: Vec<u8>,
    timeout: std::time::Duration,
) -> Result<Value, ProviderError> {
    let request = endpoint
        .request(http, Method::POST, path)
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
    let requested = required_str(&body, "model", 200)?.to_owned();
    if body.get("input").is_none_or(Value::is_null) {
        return Err(ApiError::invalid_field(
            "input",
            "is required: a string or an array",
        ));
    }
    fields::check_map(&body, fields::EMBEDDINGS)?;
    // At most one token per byte of the body: the hold is an upper bound, not an average.
    let job = Media {
        kind: "embeddings",
        requested,
        capability: "embeddings",
        aliases: true,
        estimate_tokens: bytes.len() as u64,
        what: MediaRequest::Json {
            path: "/embeddings",
            body,
        },
    };
    pipeline::run(&state, &principal, &req, None, job).await
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
        .unwrap_or("dall-e-2")
        .to_owned();
    let job = Media {
        kind: "images",
        requested,
        capability: "image_generation",
        aliases: false,
        estimate_tokens: 0,
        what: MediaRequest::Json {
            path: "/images/generations",
            body,
        },
    };
    pipeline::run(&state, &principal, &req, None, job).await
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
    let requested = required_str(&body, "model", 200)?.to_owned();
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
    let job = Media {
        kind: "speech",
        requested,
        capability: "speech",
        aliases: false,
        estimate_tokens: input_chars,
        what: MediaRequest::Speech { content_type, body },
    };
    pipeline::run(&state, &principal, &req, None, job).await
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
    let job = Media {
        kind: "transcriptions",
        requested,
        capability: "transcription",
        aliases: false,
        estimate_tokens: 0,
        what: MediaRequest::Transcription(upload),
    };
    pipeline::run(&state, &principal, &req, None, job).await
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
