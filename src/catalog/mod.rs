//! The catalog: providers, models, task aliases (ranked fallback chains), prices, free-tier flags.
//!
//! Ships in the binary as `catalog.toml`; provider base URLs can be overridden in config. Read on
//! every request through an immutable [`Catalog`] snapshot. Does not know which keys exist (that is
//! the vault's) nor how a request is routed (`routing/`).
//!
//! Invariants: every alias entry names a model of the catalog; every model names a provider.

pub mod admin;
mod data;
pub mod discovery;
mod store;

pub use data::{Alias, Api, Auth, Catalog, Model, Provider};
pub use store::{find_override, load_overrides};
