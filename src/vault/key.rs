//! What the vault knows about one provider key, without and with its decrypted credential.

use super::credentials::Credentials;
use crate::money::Money;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Who a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    Brand(i32),
    /// The operator's pool, usable by every brand after its own and shared keys.
    Pool,
}

impl Owner {
    pub fn brand_id(self) -> Option<i32> {
        match self {
            Owner::Brand(id) => Some(id),
            Owner::Pool => None,
        }
    }
}

/// A stored key's settings and bookkeeping. Never holds the credential.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub id: i32,
    pub owner: Owner,
    pub provider: String,
    pub key_label: Option<String>,
    pub key_preview: BTreeMap<String, String>,
    pub is_active: bool,
    pub is_primary: bool,
    pub share_with_pool: bool,
    pub daily_limit: Option<u32>,
    pub minute_limit: Option<u32>,
    pub spend_limit: Option<Money>,
    pub spend_limit_period: String,
    pub spend_limit_action: String,
    pub consecutive_failures: u32,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl KeyRecord {
    /// Primary keys are tried first: priority 10, others 0 (the seed's rule).
    pub fn priority(&self) -> i32 {
        if self.is_primary { 10 } else { 0 }
    }
}

/// A key as the router uses it: settings plus the decrypted credential, in memory only.
#[derive(Debug, Clone)]
pub struct VaultKey {
    pub record: KeyRecord,
    pub credentials: Credentials,
}
