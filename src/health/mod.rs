//! Key health: one `ProviderKeys` per provider owns each key's consecutive failures, health,
//! cool-down and single probe, 429 rest, auth-failure count, and per-key minute/day counters.
//!
//! Taking a key for a request is one atomic step under the provider's lock (`take_slot`), so a
//! key at its minute or daily limit is skipped and never over-used, however many requests race.
//! Outcomes are recorded at once, on the request's thread (never lost to a client disconnect). Routing reads health from a published snapshot.
//! Does not own the keys themselves (`vault/`) nor the order of candidates (`routing/`).
//!
//! Replicas with Redis share each key's failures, cool-down, rest, probe and minute/day limits
//! (`shared.rs`); every replica still routes from its own snapshot.

mod handle;
mod key_state;
mod keys;
mod shared;
mod window;

pub use handle::{Health, KeyHealthView};
pub use key_state::{FailureKind, HealthStatus, KeyLimits, Outcome, SpendBlock};
pub use keys::SlotRequest;
pub use shared::{SharedHealth, SharedKeys};
