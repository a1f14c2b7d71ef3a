//! Agent tokens (PATs): mint, store, list, edit, revoke, expire; their brand endpoints.
//!
//! Owns the `spideriq_pat_` format (128 bits from the OS CSPRNG, SHA-256 stored, shown once), the
//! validation of per-token settings, and keeping the auth [`crate::auth::TokenCache`] in step with
//! every write. Does not enforce budgets or rate limits (`limits/`) nor authenticate (`auth/`).
//!
//! Invariant: a write is visible to authentication before its HTTP response is sent, so a revoke
//! takes effect on the very next request.

pub mod admin;
mod fields;
mod last_used;
mod pat;
mod store;

pub use fields::TokenFields;
pub use last_used::{WrittenStamps, flush_last_used, spawn_last_used_flusher};
pub use store::{load_into_cache, reload_into_cache};
