//! Routing: which (model, provider, key) serves a request, and the fallback loop.
//!
//! `candidates` is pure: it turns a model id or alias into an ordered chain, candidates with a
//! healthy key first, each with its keys ranked brand-own → shared → pool, primary first.
//! `fallback` walks that chain: next key, then next model, up to `routing.max_attempts`, and
//! builds the 502/503/504 that tells the caller what was tried. The rule that a stream may fall
//! back only before its first byte lives in the caller's attempt closure: an attempt ends when the
//! first chunk arrived, after which nothing here runs again.

mod candidates;
mod fallback;

pub use candidates::{Candidate, Plan, plan, plan_models};
pub use fallback::{Attempt, Attempts, Served, call_with_fallback};
