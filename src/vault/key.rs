//! What the vault knows about one provider key, without and with its decrypted credential.

use super::credentials::Credentials;
use crate::health::{KeyLimits, SpendBlock};
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

    /// The limits health enforces when this key takes a request.
    pub fn limits(&self) -> KeyLimits {
        let spend = self.spend_limit.map(|limit| SpendBlock {
            limit,
            daily: self.spend_limit_period == "daily",
        });
        KeyLimits {
            per_minute: self.minute_limit,
            per_day: self.daily_limit,
            block: spend.filter(|_| self.spend_limit_action == "block"),
            spend,
        }
    }

    /// Whether this period's spend has reached the key's spend limit (either action).
    pub fn spend_limit_reached(&self, today: Money, month: Money) -> bool {
        let Some(limit) = self.spend_limit else {
            return false;
        };
        let spent = if self.spend_limit_period == "daily" {
            today
        } else {
            month
        };
        spent >= limit
    }
}

/// A key as the router uses it: settings plus the decrypted credential, in memory only.
#[derive(Debug, Clone)]
pub struct VaultKey {
    pub record: KeyRecord,
    pub credentials: Credentials,
}
