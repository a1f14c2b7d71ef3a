//! Brands (workspaces, the tenants) and their client credentials.
//!
//! Owns creating brands, generating the `cli_…:key_…:secret_…` credential (shown once, stored as
//! SHA-256 digests), rotating it, and the operator endpoints. Both the HTTP operator API and the
//! CLI go through [`manage`], so they cannot disagree. Does not own authentication (`auth/`).
//!
//! Invariant: after a rotation the old credential fails on the very next request, because the
//! token cache is replaced before the response is sent.

pub mod admin;
mod credential;
pub mod manage;
mod store;

pub use credential::ClientCredential;
pub use manage::{
    BrandView, NewBrand, create_brand, load_into_cache, reload_into_cache, rotate_credential,
};
pub use store::BrandRecord;
