//! Integration rows. The only file of the vault that touches `entity`.

use super::key::{KeyRecord, Owner};
use crate::money::Money;
use chrono::{DateTime, Utc};
use entity::integration;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
};

/// A row with its still-encrypted credential.
pub struct StoredKey {
    pub record: KeyRecord,
    pub credentials_enc: String,
}

impl TryFrom<integration::Model> for StoredKey {
    type Error = DbErr;

    fn try_from(row: integration::Model) -> Result<Self, DbErr> {
        let key_preview = serde_json::from_str(&row.key_preview)
            .map_err(|_| DbErr::Custom(format!("integration {}: corrupt key_preview", row.id)))?;
        Ok(StoredKey {
            record: KeyRecord {
                id: row.id,
                owner: row.brand_id.map_or(Owner::Pool, Owner::Brand),
                provider: row.provider_name,
                key_label: row.key_label,
                key_preview,
                is_active: row.is_active,
                is_primary: row.is_primary,
                share_with_pool: row.share_with_pool,
                daily_limit: row.daily_limit.map(|v| v.max(0) as u32),
                minute_limit: row.minute_limit.map(|v| v.max(0) as u32),
                spend_limit: row.spend_limit_nanos.map(Money::from_nanos),
                spend_limit_period: row.spend_limit_period,
                spend_limit_action: row.spend_limit_action,
                consecutive_failures: row.consecutive_failures.max(0) as u32,
                last_used_at: row.last_used_at,
                last_error: row.last_error,
                disabled_reason: row.disabled_reason,
                created_at: row.created_at,
                updated_at: row.updated_at,
            },
            credentials_enc: row.credentials_enc,
        })
    }
}

fn to_i32(v: Option<u32>) -> Option<i32> {
    v.map(|v| v.min(i32::MAX as u32) as i32)
}

fn write_settings(row: &mut integration::ActiveModel, r: &KeyRecord, now: DateTime<Utc>) {
    row.key_label = Set(r.key_label.clone());
    row.is_active = Set(r.is_active);
    row.is_primary = Set(r.is_primary);
    row.share_with_pool = Set(r.share_with_pool);
    row.daily_limit = Set(to_i32(r.daily_limit));
    row.minute_limit = Set(to_i32(r.minute_limit));
    row.spend_limit_nanos = Set(r.spend_limit.map(Money::nanos));
    row.spend_limit_period = Set(r.spend_limit_period.clone());
    row.spend_limit_action = Set(r.spend_limit_action.clone());
    row.disabled_reason = Set(r.disabled_reason.clone());
    row.updated_at = Set(now);
}

pub async fn insert_key(
    db: &DatabaseConnection,
    r: &KeyRecord,
    credentials_enc: String,
    fingerprint: String,
) -> Result<StoredKey, DbErr> {
    let mut row = integration::ActiveModel {
        brand_id: Set(r.owner.brand_id()),
        provider_name: Set(r.provider.clone()),
        credentials_enc: Set(credentials_enc),
        fingerprint: Set(fingerprint),
        key_preview: Set(serde_json::to_string(&r.key_preview).unwrap_or_else(|_| "{}".into())),
        health_status: Set("healthy".into()),
        consecutive_failures: Set(0),
        last_used_at: Set(None),
        last_error: Set(None),
        created_at: Set(r.created_at),
        ..Default::default()
    };
    write_settings(&mut row, r, r.created_at);
    row.insert(db).await?.try_into()
}

/// Every key of `owner`, oldest first (the caller filters and pages).
pub async fn list_keys(db: &DatabaseConnection, owner: Owner) -> Result<Vec<StoredKey>, DbErr> {
    let query = match owner {
        Owner::Brand(id) => integration::Entity::find().filter(integration::Column::BrandId.eq(id)),
        Owner::Pool => integration::Entity::find().filter(integration::Column::BrandId.is_null()),
    };
    let rows = query.order_by_asc(integration::Column::Id).all(db).await?;
    rows.into_iter().map(StoredKey::try_from).collect()
}

/// Whether `owner` already holds a `provider` key with one of these fingerprints (one indexed
/// query, not a scan of the owner's keys).
pub async fn has_fingerprint(
    db: &DatabaseConnection,
    owner: Owner,
    provider: &str,
    fingerprints: &[String],
) -> Result<bool, DbErr> {
    use sea_orm::PaginatorTrait;
    let owned = match owner {
        Owner::Brand(id) => integration::Column::BrandId.eq(id),
        Owner::Pool => integration::Column::BrandId.is_null(),
    };
    let count = integration::Entity::find()
        .filter(owned)
        .filter(integration::Column::ProviderName.eq(provider))
        .filter(integration::Column::Fingerprint.is_in(fingerprints.iter().map(String::as_str)))
        .count(db)
        .await?;
    Ok(count > 0)
}

pub async fn load_all(db: &DatabaseConnection) -> Result<Vec<StoredKey>, DbErr> {
    let rows = integration::Entity::find()
        .order_by_asc(integration::Column::Id)
        .all(db)
        .await?;
    rows.into_iter().map(StoredKey::try_from).collect()
}

/// The key `id`, whoever owns it (cache reloads).
pub async fn find_any(db: &DatabaseConnection, id: i32) -> Result<Option<StoredKey>, DbErr> {
    integration::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(StoredKey::try_from)
        .transpose()
}

/// The key `id` if `owner` owns it; a foreign key looks exactly like a missing one.
pub async fn find_key(
    db: &DatabaseConnection,
    owner: Owner,
    id: i32,
) -> Result<Option<StoredKey>, DbErr> {
    let Some(row) = integration::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    if row.brand_id != owner.brand_id() {
        return Ok(None);
    }
    Ok(Some(row.try_into()?))
}

pub async fn update_settings(
    db: &DatabaseConnection,
    r: &KeyRecord,
    now: DateTime<Utc>,
) -> Result<StoredKey, DbErr> {
    let row = integration::Entity::find_by_id(r.id)
        .one(db)
        .await?
        .ok_or(DbErr::RecordNotFound(format!("integration {}", r.id)))?;
    let mut row: integration::ActiveModel = row.into();
    write_settings(&mut row, r, now);
    row.update(db).await?.try_into()
}

/// Health bookkeeping written by the health actors (off the request path).
pub async fn write_health(
    db: &DatabaseConnection,
    id: i32,
    status: &str,
    failures: u32,
    last_error: Option<&str>,
    last_used: Option<chrono::DateTime<Utc>>,
) -> Result<(), DbErr> {
    let Some(row) = integration::Entity::find_by_id(id).one(db).await? else {
        return Ok(());
    };
    let mut row: integration::ActiveModel = row.into();
    row.health_status = Set(status.to_owned());
    row.consecutive_failures = Set(failures.min(i32::MAX as u32) as i32);
    row.last_error = Set(last_error.map(str::to_owned));
    if last_used.is_some() {
        row.last_used_at = Set(last_used);
    }
    row.update(db).await.map(|_| ())
}

pub async fn delete_key(db: &DatabaseConnection, id: i32) -> Result<(), DbErr> {
    integration::Entity::delete_by_id(id)
        .exec(db)
        .await
        .map(|_| ())
}

/// Rewrites a row's ciphertext and fingerprint (vault-key rotation).
pub async fn rewrite_secret(
    db: &DatabaseConnection,
    id: i32,
    credentials_enc: String,
    fingerprint: String,
) -> Result<(), DbErr> {
    replace_secret(db, id, credentials_enc, fingerprint, None).await
}

/// Puts a new credential into an existing row (re-authentication), with its new preview.
pub async fn replace_secret(
    db: &DatabaseConnection,
    id: i32,
    credentials_enc: String,
    fingerprint: String,
    preview: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<(), DbErr> {
    let Some(row) = integration::Entity::find_by_id(id).one(db).await? else {
        return Ok(());
    };
    let mut row: integration::ActiveModel = row.into();
    row.credentials_enc = Set(credentials_enc);
    row.fingerprint = Set(fingerprint);
    if let Some(preview) = preview {
        row.key_preview = Set(serde_json::to_string(preview).unwrap_or_else(|_| "{}".into()));
    }
    row.update(db).await.map(|_| ())
}
