//! Authentication: who is calling, and may they use this route.
//!
//! Owns bearer parsing (client credential triple, PAT, operator token), the `Principal` handed to
//! handlers, scopes, and the in-memory [`TokenCache`] of hashed credentials. Does not own minting or
//! storing tokens (`tokens/`) or brands (`brands/`); those concerns update the cache after writing.
//!
//! Invariants: authentication never touches the database (the cache is loaded at start-up and kept
//! current by every write); secrets are compared as SHA-256 digests in constant time; a revoked or
//! expired token is refused on the very next request.

mod bearer;
mod cache;
mod digest;
mod middleware;
mod origin;
mod principal;
mod scope;

pub use bearer::{Credential, parse_bearer};
pub use cache::{BrandEntry, TokenCache, TokenEntry, TokenLimits};
pub use digest::Digest;
pub use middleware::{Operator, operator_only, optional, require};
pub use origin::same_site;
pub use principal::Principal;
pub use scope::{Scope, Scopes};
