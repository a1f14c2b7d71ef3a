//! Upstream adapters. Today one family: the OpenAI-compatible API that every catalog provider
//! except `fal_ai` speaks. Owns request URLs and auth headers, model-name mapping, the one-time
//! classification of upstream failures (`ProviderError`), and SSE framing.
//!
//! Invariant: no error message, log line or trace leaving this module contains a credential or a
//! URL that might carry one (`reqwest::Error::without_url`, and key scrubbing of upstream text).

mod endpoint;
mod error;
pub mod oauth;
pub mod sse;

pub use endpoint::Endpoint;
pub use error::{ErrorKind, ProviderError};
