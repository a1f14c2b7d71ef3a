//! Usage: the trace of every gateway request (which is also the spend ledger), written by one
//! batched writer task, and the queries behind `/traces`, `/usage` and the agent keys' `spend`.
//!
//! Invariants: the request path only enqueues (an unbounded channel send, never the database);
//! the writer commits a batch every `usage.flush_window_ms` or `usage.batch_rows` rows, retrying a
//! failed batch until it lands; `UsageWriter::flush` returns once everything enqueued before it is
//! committed, which is how graceful shutdown loses nothing. A hard kill loses at most one window.

pub mod http;
mod record;
mod store;
mod writer;

pub use record::{Span, SpanClock, TraceRecord, TraceStatus};
pub use store::{
    IntegrationSpend, TokenSeed, load_integration_spend, load_token_seeds, token_month_by_model,
};
pub use writer::UsageWriter;
