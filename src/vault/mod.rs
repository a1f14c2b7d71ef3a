//! The key vault: provider credentials, Fernet-encrypted at rest, decrypted only in memory.
//!
//! Owns the `integrations` rows (brand keys and operator pool keys), their encryption and keyed
//! HMAC fingerprints (duplicate detection), masked previews, the `VaultActor` that publishes the
//! decrypted key set as a snapshot, and the `/api/v1/integrations` and `/api/v1/admin/pool-keys`
//! endpoints, and the refresh of OAuth keys' access tokens before they expire. Does not decide
//! which key serves a request (`routing/`) nor track health (`health/`).
//!
//! Invariants: no credential ever leaves this module except to the provider call that uses it;
//! responses carry only `key_preview`; a foreign integration id answers exactly like a missing one.

mod actor;
pub mod admin;
mod credentials;
mod crypto;
mod handle;
mod key;
mod manage;
mod refresh;
mod rotate;
mod snapshot;
mod store;
mod view;

pub use credentials::Credentials;
pub use crypto::VaultCipher;
pub use handle::Vault;
pub use key::{KeyRecord, Owner, VaultKey};
pub use manage::{
    IntegrationFields, create_key, create_key_with, delete_key, list_keys, parse_credentials,
    replace_credentials, unknown_provider,
};
pub use refresh::OAuthRefresher;
pub use rotate::reencrypt_all;
pub use snapshot::{Tier, VaultSnapshot};
