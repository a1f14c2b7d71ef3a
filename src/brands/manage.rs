//! What the operator can do to brands, shared by the HTTP operator API and the CLI.

use super::credential::ClientCredential;
use super::store::{self, BrandRecord, InsertBrand};
use crate::auth::{BrandEntry, TokenCache};
use crate::error::ApiError;
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};

/// `POST /api/v1/admin/brands` body and the CLI's arguments.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBrand {
    pub name: String,
    pub contact_email: Option<String>,
    /// The day of the month budgets reset (1 to 28; default the 1st).
    pub billing_anchor_day: Option<i32>,
}

/// A brand as the operator sees it (never the credential digests).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BrandView {
    pub client_id: String,
    pub name: String,
    pub contact_email: Option<String>,
    pub billing_anchor_day: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<BrandRecord> for BrandView {
    fn from(r: BrandRecord) -> Self {
        BrandView {
            client_id: r.client_id,
            name: r.name,
            contact_email: r.contact_email,
            billing_anchor_day: r.billing_anchor_day,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl NewBrand {
    fn validate(&self) -> Result<(), ApiError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(ApiError::invalid_field(
                "name",
                "must be 1 to 200 characters",
            ));
        }
        if let Some(email) = &self.contact_email
            && !is_plausible_email(email)
        {
            return Err(ApiError::invalid_field(
                "contact_email",
                "must be an email address",
            ));
        }
        if let Some(day) = self.billing_anchor_day
            && !(1..=28).contains(&day)
        {
            return Err(ApiError::invalid_field(
                "billing_anchor_day",
                "must be between 1 and 28",
            ));
        }
        Ok(())
    }
}

/// A cheap sanity check, not RFC 5322: something@domain.tld without spaces, at most 254 bytes.
pub fn is_plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !email.chars().any(char::is_whitespace)
        && email.len() <= 254
}

/// Creates a brand and returns it with its credential, which is not stored and cannot be shown again.
pub async fn create_brand(
    db: &DatabaseConnection,
    cache: &TokenCache,
    new: NewBrand,
    now: DateTime<Utc>,
) -> Result<(BrandView, Secret), ApiError> {
    new.validate()?;
    let credential = ClientCredential::generate().map_err(ApiError::internal)?;
    let record = store::insert_brand(
        db,
        InsertBrand {
            client_id: &credential.client_id,
            name: new.name.trim(),
            contact_email: new.contact_email.as_deref(),
            billing_anchor_day: new.billing_anchor_day,
            key_hash: credential.key_digest(),
            secret_hash: credential.secret_digest(),
        },
        now,
    )
    .await?;
    cache.put_brand(entry(&record));
    Ok((record.into(), credential.bearer()))
}

/// Issues a new key and secret for `client_id`; the old credential stops working at once.
pub async fn rotate_credential(
    db: &DatabaseConnection,
    cache: &TokenCache,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<(BrandView, Secret), ApiError> {
    let credential =
        ClientCredential::generate_for(client_id.to_owned()).map_err(ApiError::internal)?;
    let record = store::replace_credential(
        db,
        client_id,
        credential.key_digest(),
        credential.secret_digest(),
        now,
    )
    .await?
    .ok_or_else(|| ApiError::not_found("brand"))?;
    cache.put_brand(entry(&record));
    // Whoever signed in to the dashboard with the old credential is signed out.
    crate::dashboard::store::end_brand_sessions(db, record.id)
        .await
        .map_err(ApiError::internal)?;
    Ok((record.into(), credential.bearer()))
}

pub async fn list_brands(db: &DatabaseConnection) -> Result<Vec<BrandView>, ApiError> {
    Ok(store::list_brands(db)
        .await?
        .into_iter()
        .map(BrandView::from)
        .collect())
}

/// The contact email of brand `id`, if it gave one.
pub async fn contact_email(db: &DatabaseConnection, id: i32) -> Result<Option<String>, ApiError> {
    Ok(store::find_brand_by_id(db, id)
        .await?
        .and_then(|b| b.contact_email))
}

/// The display name of brand `id` (for pages that only know the id).
pub async fn brand_name(db: &DatabaseConnection, id: i32) -> Result<Option<String>, ApiError> {
    Ok(store::find_brand_by_id(db, id).await?.map(|b| b.name))
}

pub async fn get_brand(db: &DatabaseConnection, client_id: &str) -> Result<BrandView, ApiError> {
    let record = store::find_brand(db, client_id).await?;
    record
        .map(BrandView::from)
        .ok_or_else(|| ApiError::not_found("brand"))
}

/// Start-up: every brand's credential digests into the cache. Returns the brands for callers
/// that need `id → client_id` (the token loader).
pub async fn load_into_cache(
    db: &DatabaseConnection,
    cache: &TokenCache,
) -> anyhow::Result<Vec<BrandRecord>> {
    let brands = store::list_brands(db).await?;
    for brand in &brands {
        cache.put_brand(entry(brand));
    }
    Ok(brands)
}

/// Re-reads brand `id` into the cache, after another replica changed it.
pub async fn reload_into_cache(
    db: &DatabaseConnection,
    cache: &TokenCache,
    id: i32,
) -> anyhow::Result<()> {
    if let Some(record) = store::find_brand_by_id(db, id).await? {
        cache.put_brand(entry(&record));
    }
    Ok(())
}

fn entry(record: &BrandRecord) -> BrandEntry {
    BrandEntry {
        id: record.id,
        client_id: record.client_id.as_str().into(),
        anchor_day: record.billing_anchor_day.map(|d| d as u32),
        key_hash: record.key_hash,
        secret_hash: record.secret_hash,
    }
}
