//! The OpenAI-compatible surface under `/api/gate/v1`: catalog reads, service health, chat
//! completions (plain and streamed), Anthropic Messages, embeddings, images and audio.
//!
//! Handlers only: parse, ask the owning concern, render. The catalog's data belongs to `catalog/`.

mod call;
pub mod chat;
mod fields;
pub mod media;
pub mod messages;
pub mod models;
mod openapi;
mod pipeline;
pub mod status;
mod stream;

pub use openapi::api;
