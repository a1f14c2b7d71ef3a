//! The OpenAI-compatible surface under `/api/gate/v1`: catalog reads and service health today;
//! chat, embeddings, images, audio and usage as later issues land.
//!
//! Handlers only: parse, ask the owning concern, render. The catalog's data belongs to `catalog/`.

pub mod chat;
pub mod models;
mod request;
pub mod status;
mod stream;
