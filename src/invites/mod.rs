//! Invites: a brand admin asks the owner of a provider key to contribute it through a signed,
//! single-use link; the key lands encrypted in the brand's vault without the admin seeing it.
//!
//! Owns the `invites` rows (only the SHA-256 of each link's token), the public pages that take the
//! key, and the `InviteMailer` with its persisted outbox: an email row is written in the same
//! transaction as the invite, so a crash or an SMTP outage delays mail but never loses it.
//! For providers configured with OAuth, the pages also offer "Sign in with <provider>": the
//! authorization-code flow with PKCE (`oauth.rs`), whose granted tokens are stored like a pasted
//! key. Does not store credentials itself: it hands them to the vault, which also refreshes
//! OAuth access tokens.

pub mod admin;
mod email;
mod link;
mod mailer;
pub mod oauth;
pub mod pages;
pub mod reauth;
pub(crate) mod store;

pub use mailer::Mailer;
