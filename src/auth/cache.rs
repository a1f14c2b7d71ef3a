//! `TokenCache`: every brand credential and agent token, by digest, in memory.
//!
//! Loaded from the database at start-up; `brands/` and `tokens/` call the `put_*` methods after
//! each write, so the cache is never stale on this node. Reads are a sharded-map lookup: no global
//! lock and no database on the request path.

use super::bearer::Credential;
use super::digest::Digest;
use super::principal::Principal;
use super::scope::Scopes;
use crate::error::{ApiError, ErrorCode};
use crate::money::Money;
use dashmap::DashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A brand's client credential, as digests.
#[derive(Debug)]
pub struct BrandEntry {
    pub id: i32,
    pub client_id: Arc<str>,
    pub anchor_day: Option<u32>,
    pub key_hash: Digest,
    pub secret_hash: Digest,
}

/// The per-token controls enforced at request time.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLimits {
    pub monthly_budget: Option<Money>,
    pub hard_budget: bool,
    pub rpm: Option<u32>,
    pub rpd: Option<u32>,
    pub allowed_models: Arc<[String]>,
    pub free_models_only: bool,
}

/// An agent token as authentication needs it.
#[derive(Debug)]
pub struct TokenEntry {
    pub id: i32,
    pub brand_id: i32,
    pub client_id: Arc<str>,
    pub scopes: Scopes,
    pub limits: TokenLimits,
    /// The brand's billing anchor day: budget months start on it (`None` = the 1st).
    pub anchor_day: Option<u32>,
    /// Unix seconds.
    pub expires_at: i64,
    pub revoked: bool,
    /// Unix seconds of the last authenticated use; 0 = never. Persisted by `tokens::LastUsedFlusher`.
    pub last_used: AtomicI64,
}

impl TokenEntry {
    pub fn last_used_at(&self) -> i64 {
        self.last_used.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Default)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    tokens: DashMap<Digest, Arc<TokenEntry>>,
    brands: DashMap<Arc<str>, Arc<BrandEntry>>,
}

impl TokenCache {
    pub fn put_brand(&self, brand: BrandEntry) {
        let brand = Arc::new(brand);
        self.inner.brands.insert(brand.client_id.clone(), brand);
    }

    /// Inserts or replaces a token. A replaced entry's `last_used` carries over.
    pub fn put_token(&self, hash: Digest, entry: TokenEntry) {
        if let Some(old) = self.inner.tokens.get(&hash) {
            let seen = old.last_used_at().max(entry.last_used_at());
            entry.last_used.store(seen, Ordering::Relaxed);
        }
        self.inner.tokens.insert(hash, Arc::new(entry));
    }

    /// The in-memory `last_used` stamp of a token (unix seconds), if it was ever used.
    pub fn last_used(&self, hash: &Digest) -> Option<i64> {
        let seen = self.inner.tokens.get(hash)?.last_used_at();
        (seen > 0).then_some(seen)
    }

    /// The `client_id` of brand `id` (a scan: for the rare cache reloads, not the request path).
    pub fn client_id_of(&self, brand_id: i32) -> Option<Arc<str>> {
        self.inner
            .brands
            .iter()
            .find(|b| b.id == brand_id)
            .map(|b| b.client_id.clone())
    }

    /// The billing anchor day of the brand `client_id`.
    pub fn anchor_day(&self, client_id: &str) -> Option<u32> {
        self.inner.brands.get(client_id).and_then(|b| b.anchor_day)
    }

    /// Every token entry, for the periodic `last_used_at` flush.
    pub fn tokens(&self) -> Vec<Arc<TokenEntry>> {
        self.inner
            .tokens
            .iter()
            .map(|e| e.value().clone())
            .collect()
    }

    /// Resolves a credential to a `Principal`, or 401 with the contract's code. `now` is unix seconds.
    pub fn authenticate(
        &self,
        credential: &Credential<'_>,
        now: i64,
    ) -> Result<Principal, ApiError> {
        match *credential {
            Credential::Pat(token) => self.authenticate_pat(token, now),
            Credential::Triple {
                client_id,
                api_key,
                api_secret,
            } => self.authenticate_triple(client_id, api_key, api_secret),
            Credential::Opaque(_) => Err(super::bearer::bad_format()),
        }
    }

    fn authenticate_pat(&self, token: &str, now: i64) -> Result<Principal, ApiError> {
        let digest = Digest::of(token);
        let Some(entry) = self.inner.tokens.get(&digest).map(|e| e.value().clone()) else {
            return Err(invalid("unknown agent token"));
        };
        if entry.revoked {
            return Err(invalid("this agent token has been revoked"));
        }
        if entry.expires_at <= now {
            return Err(invalid("this agent token has expired"));
        }
        entry.last_used.store(now, Ordering::Relaxed);
        Ok(Principal {
            brand_id: entry.brand_id,
            client_id: entry.client_id.clone(),
            scopes: entry.scopes,
            token: Some(entry),
        })
    }

    fn authenticate_triple(
        &self,
        client_id: &str,
        key: &str,
        secret: &str,
    ) -> Result<Principal, ApiError> {
        let Some(brand) = self.inner.brands.get(client_id).map(|e| e.value().clone()) else {
            return Err(invalid("unknown client credential"));
        };
        // Evaluate both comparisons so timing does not say which part was wrong.
        let key_ok = brand.key_hash.matches(&Digest::of(key));
        let secret_ok = brand.secret_hash.matches(&Digest::of(secret));
        if !(key_ok & secret_ok) {
            return Err(invalid("unknown client credential"));
        }
        Ok(Principal {
            brand_id: brand.id,
            client_id: brand.client_id.clone(),
            scopes: Scopes::all(),
            token: None,
        })
    }
}

fn invalid(message: &'static str) -> ApiError {
    ApiError::new(ErrorCode::InvalidApiKey, message)
}
