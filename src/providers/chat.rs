//! A chat completion through whichever dialect the provider speaks: the request, the answer, and
//! the stream, each in OpenAI shapes on the gateway's side.

use super::{ChatRequest, Endpoint, ProviderError, anthropic, gemini, openai};
use crate::catalog::{Api, Model};
use crate::raw::RawObject;
use bytes::Bytes;
use reqwest::{Method, RequestBuilder};

/// One upstream call of a chat completion: what was asked, and who answers it.
pub struct Outgoing<'a> {
    pub request: &'a ChatRequest,
    pub model: &'a Model,
    /// The completion limit a hard budget imposes (`None`: the client's own).
    pub completion_limit: Option<u64>,
}

/// Turns one dialect's stream into OpenAI `chat.completion.chunk` events.
pub trait StreamDecoder: Send {
    /// One complete upstream SSE event; the OpenAI events it amounts to go to `out`.
    fn decode(&mut self, event: &[u8], out: &mut Vec<Bytes>);
    /// The upstream closed the stream. A dialect without a `[DONE]` marker emits its closing
    /// events here when the answer was complete; otherwise nothing, and the stream ended early.
    fn finish(&mut self, out: &mut Vec<Bytes>);
}

/// The upstream request: path, body and any dialect headers (auth and static headers come from
/// the endpoint). Fails only when the conversation cannot be said in the provider's dialect.
pub fn request(
    endpoint: &Endpoint,
    http: &reqwest::Client,
    out: &Outgoing<'_>,
) -> Result<RequestBuilder, ProviderError> {
    let stream = out.request.stream;
    let (path, body) = match endpoint.api {
        Api::Openai => (
            "/chat/completions".to_owned(),
            openai::chat_body(out, &endpoint.param_mappings),
        ),
        Api::Anthropic => ("/messages".to_owned(), anthropic::chat_body(out)?),
        Api::Gemini => (gemini::path(out.model, stream), gemini::chat_body(out)?),
    };
    let mut request = endpoint
        .request(http, Method::POST, &path)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    if stream && endpoint.api == Api::Gemini {
        request = request.query(&[("alt", "sse")]);
    }
    Ok(request)
}

/// A whole (non-streamed) answer as an OpenAI `chat.completion` object; a 2xx without one is a
/// failed attempt.
pub fn answer(api: Api, bytes: &[u8], model: &Model) -> Result<RawObject, ProviderError> {
    match api {
        Api::Openai => openai::chat_answer(bytes),
        Api::Anthropic => openai::chat_answer(&anthropic::chat_answer(bytes, model)?),
        Api::Gemini => openai::chat_answer(&gemini::chat_answer(bytes, model)?),
    }
}

/// The stream translator for `api`; `None` for OpenAI, whose events are relayed as they are.
pub fn decoder(api: Api, model: &Model) -> Option<Box<dyn StreamDecoder>> {
    match api {
        Api::Openai => None,
        Api::Anthropic => Some(Box::new(anthropic::ChunkDecoder::new(model))),
        Api::Gemini => Some(Box::new(gemini::ChunkDecoder::new(model))),
    }
}

/// Whether `api` serves OpenAI's other endpoints (embeddings, images, speech, transcription).
pub fn serves_openai_media(api: Api) -> bool {
    api == Api::Openai
}

/// A `chat.completion.chunk` event with one choice carrying `delta` and `finish_reason`.
pub fn chunk_event(id: &str, model: &str, delta: serde_json::Value, finish: Option<&str>) -> Bytes {
    super::sse::event(&serde_json::json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": crate::clock::unix_now(),
        "model": model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    }))
}

/// The closing events of a translated stream: the usage chunk, then `[DONE]`.
pub fn closing_events(id: &str, model: &str, usage: &super::Usage, out: &mut Vec<Bytes>) {
    out.push(super::sse::event(&serde_json::json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": crate::clock::unix_now(),
        "model": model,
        "choices": [],
        "usage": usage.to_json(),
    })));
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
}

/// An in-band error event, as OpenAI streams one.
pub fn error_event(message: &str, kind: &str) -> Bytes {
    super::sse::event(&serde_json::json!({ "error": { "message": message, "type": kind } }))
}
