//! The adapter layer: one adapter per wire dialect, chosen by each catalog provider's `api`.
//!
//! - `openai`: OpenAI's API, which most providers speak; bodies and SSE bytes pass through.
//! - `anthropic`: Anthropic Messages, translated to and from OpenAI shapes.
//! - `gemini`: Google Gemini `generateContent`, translated to and from OpenAI shapes.
//!
//! The gateway speaks OpenAI chat completions inside: an adapter builds the upstream request
//! (path, headers, auth, body) from a [`ChatRequest`] and turns the answer and stream back into
//! OpenAI shapes and [`Usage`]. Shared by all: [`Endpoint`] (URL, auth scheme, static headers),
//! the one-time classification of upstream failures ([`ProviderError`]), and SSE framing.
//!
//! Adding a dialect: a file here implementing the three `chat` entry points, one arm in each
//! function of `chat.rs`, and a variant of `catalog::Api`.
//!
//! Invariant: no error message, log line or trace leaving this module contains a credential or a
//! URL that might carry one (`reqwest::Error::without_url`, and key scrubbing of upstream text).

pub mod anthropic;
pub mod chat;
pub mod client;
mod endpoint;
mod error;
pub mod gemini;
pub mod oauth;
mod openai;
mod request;
pub mod sse;
mod usage;

pub use chat::{Outgoing, StreamDecoder};
pub use endpoint::{BASE_URL_FIELD, Endpoint, check_base_url};
pub use error::{ErrorKind, ProviderError};
pub use request::{ChatRequest, IMAGE_PART_TOKENS, TOOL_TOKENS};
pub use usage::Usage;
