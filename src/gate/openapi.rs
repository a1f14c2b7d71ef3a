//! The gateway's operations in the OpenAPI document. Bodies are OpenAI's, so they are described by
//! the fields SpiderGate itself reads or adds; every other field is passed on as sent.

use crate::openapi::schemas::open_object;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{RefOr, schema::AdditionalProperties};
use utoipa::{OpenApi, PartialSchema, ToSchema};

/// Everything under `/api/gate/v1`.
pub fn api() -> utoipa::openapi::OpenApi {
    let mut doc = Generating::openapi();
    doc.merge(super::models::Api::openapi());
    doc.merge(super::status::Api::openapi());
    doc
}

#[derive(OpenApi)]
#[openapi(
    components(schemas(AnthropicError)),
    paths(
        super::chat::chat_completions,
        super::messages::messages,
        super::messages::count_tokens,
        super::media::embeddings,
        super::media::images,
        super::media::speech,
        super::media::transcriptions
    )
)]
struct Generating;

/// An object with these string properties required, and anything else allowed.
fn open_with(required: &[&str], description: &str) -> RefOr<Schema> {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description))
        .additional_properties(Some(AdditionalProperties::FreeForm(true)));
    for field in required {
        object = object
            .property(*field, ObjectBuilder::new().schema_type(Type::String))
            .required(*field);
    }
    object.into()
}

macro_rules! open_schema {
    ($name:ident, [$($field:literal),*], $description:literal) => {
        #[doc = $description]
        pub struct $name;
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                open_with(&[$($field),*], $description)
            }
        }
        impl ToSchema for $name {}
    };
}

open_schema!(
    EmbeddingsRequest,
    ["model"],
    "OpenAI's embeddings request: `model` (an OpenAI embedding model or `agent/embed*`) and `input`"
);
open_schema!(
    ImagesRequest,
    ["prompt"],
    "OpenAI's image request: `prompt` (at most 4000 characters); `model` defaults to `dall-e-2`"
);
open_schema!(
    SpeechRequest,
    ["model", "input", "voice"],
    "OpenAI's speech request: `model`, `input` (at most 4096 characters) and `voice`"
);
open_schema!(
    MessagesRequest,
    ["model"],
    "Anthropic's Messages request: `model` (a catalog id or an alias), `messages` and `max_tokens`; \
     other fields are forwarded to Anthropic as sent and translated for other providers"
);
open_schema!(
    OpenAiObject,
    [],
    "The upstream's answer, as OpenAI defines it"
);

/// OpenAI's chat request: `model` (a catalog id or an alias) and `messages`; everything else is
/// forwarded.
pub struct ChatRequest;

impl PartialSchema for ChatRequest {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "OpenAI's chat request: `model` (a catalog id or an alias such as `spideriq/fast`) \
                 and `messages`; other fields are forwarded as sent",
            ))
            .property("model", ObjectBuilder::new().schema_type(Type::String))
            .required("model")
            .property("messages", ArrayBuilder::new().items(open_object()))
            .required("messages")
            .property("stream", ObjectBuilder::new().schema_type(Type::Boolean))
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .into()
    }
}

impl ToSchema for ChatRequest {}

/// OpenAI's chat completion, with the gateway's model id and `spidergate_metadata`.
pub struct ChatCompletion;

impl PartialSchema for ChatCompletion {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("model", ObjectBuilder::new().schema_type(Type::String))
            .required("model")
            .property("choices", ArrayBuilder::new().items(open_object()))
            .required("choices")
            .property("spidergate_metadata", SpiderGateMetadata::schema())
            .required("spidergate_metadata")
            .property(
                "spidergate_route_trace",
                ArrayBuilder::new().items(open_object()),
            )
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .into()
    }
}

impl ToSchema for ChatCompletion {}

/// One server-sent event of a streamed completion: `data` holds a chunk (OpenAI's
/// `chat.completion.chunk` JSON, the last one with `usage` and `spidergate_metadata`), then `[DONE]`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema: written by stream.rs")]
pub struct StreamEvent {
    data: String,
    #[schema(required = false)]
    event: Option<String>,
}

/// Which provider and model served, what it cost, and whether a fallback did.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema: written by chat::render")]
struct SpiderGateMetadata {
    provider: String,
    provider_model: String,
    latency_ms: u64,
    cost_usd: crate::money::Money,
    fallback_used: bool,
    original_model: String,
}

/// `count_tokens`' answer: the estimated input tokens of the request.
#[derive(serde::Serialize, ToSchema)]
#[allow(dead_code, reason = "a schema: written by messages::count_tokens")]
pub struct TokenCount {
    input_tokens: u64,
}

/// An Anthropic-style failure of `/messages`.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, reason = "a schema")]
pub enum AnthropicFailed {
    #[response(status = "4XX", description = "Refused: `error.type` says what kind")]
    Client(AnthropicError),
    #[response(status = "5XX", description = "The gateway or an upstream failed")]
    Server(AnthropicError),
}

/// `{"type":"error","error":{"type","message"}}`, as Anthropic's API answers failures.
#[derive(serde::Serialize, ToSchema)]
#[allow(dead_code, reason = "a schema: written by messages::anthropic_errors")]
pub struct AnthropicError {
    #[serde(rename = "type")]
    kind: String,
    error: AnthropicErrorBody,
}

#[derive(serde::Serialize, ToSchema)]
#[allow(dead_code, reason = "a schema")]
struct AnthropicErrorBody {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}
