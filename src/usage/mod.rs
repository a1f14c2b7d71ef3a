//! Usage: the trace of every gateway request (which is also the spend ledger), written by one
//! batched writer task, and the queries behind `/traces`, `/usage` and the agent keys' `spend`.
//!
//! Invariants: the request path never touches the database: a request takes a slot in the
//! writer's bounded queue when it starts (waiting only when the ledger is behind) and enqueues its
//! trace into it when it ends; the writer commits a batch every `usage.flush_window_ms` or
//! `usage.batch_rows` rows, retrying a failed batch until it lands; `UsageWriter::flush` returns
//! once everything enqueued before it is committed, which is how graceful shutdown loses nothing.
//! A hard kill loses what is queued: one window's rows while the writer keeps up, at most
//! `usage.queue_rows`.

pub mod http;
mod ledger;
mod record;
mod store;
mod writer;

pub use record::{Phase, Span, SpanClock, TraceRecord, TraceStatus};
pub use store::{
    IntegrationSpend, TokenSeed, TraceFilter, TraceTotals, TraceView, brand_month_by_model,
    find_trace, hourly_counters, load_integration_spend, load_token_seeds, token_month_by_model,
    trace_page, trace_totals,
};
pub use writer::{LedgerSlot, UsageWriter};
