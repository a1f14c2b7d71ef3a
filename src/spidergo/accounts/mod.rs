//! SpiderGo accounts: users with argon2id passwords, cookie sessions of opaque tokens stored as
//! SHA-256 (so signing out and revocation take effect on the next request), refresh rotation with
//! reuse detection, and emailed codes to verify an address and to reset a password.

pub mod http;
pub mod password;
pub mod session;
pub mod store;
