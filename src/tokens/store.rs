//! Agent-token rows. The only file of this concern that touches `entity`.

use super::fields::{BudgetMode, TokenSettings};
use crate::auth::{Digest, Scopes, TokenCache, TokenEntry, TokenLimits};
use crate::money::Money;
use chrono::{DateTime, Utc};
use entity::agent_token;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: i32,
    pub brand_id: i32,
    pub digest: Digest,
    pub preview: String,
    pub settings: TokenSettings,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl TokenRecord {
    /// The cache entry authentication reads for this token.
    pub fn cache_entry(&self, client_id: Arc<str>, anchor_day: Option<u32>) -> TokenEntry {
        let s = &self.settings;
        TokenEntry {
            id: self.id,
            brand_id: self.brand_id,
            client_id,
            scopes: s.scopes,
            limits: TokenLimits {
                monthly_budget: s.monthly_budget,
                hard_budget: s.budget_mode == BudgetMode::Hard,
                rpm: s.rpm,
                rpd: s.rpd,
                allowed_models: s.allowed_models.clone().into(),
                free_models_only: s.free_models_only,
            },
            anchor_day,
            expires_at: s.expires_at.timestamp(),
            revoked: self.revoked_at.is_some(),
            last_used: AtomicI64::new(self.last_used_at.map_or(0, |t| t.timestamp())),
        }
    }
}

impl TryFrom<agent_token::Model> for TokenRecord {
    type Error = DbErr;

    fn try_from(row: agent_token::Model) -> Result<Self, DbErr> {
        let corrupt = |what: &str| DbErr::Custom(format!("agent token {}: corrupt {what}", row.id));
        let settings = TokenSettings {
            name: row.name.clone(),
            monthly_budget: row.monthly_budget_nanos.map(Money::from_nanos),
            budget_mode: BudgetMode::parse(&row.budget_mode)
                .ok_or_else(|| corrupt("budget_mode"))?,
            rpm: row.rpm.map(|v| v as u32),
            rpd: row.rpd.map(|v| v as u32),
            allowed_models: serde_json::from_str(&row.allowed_models)
                .map_err(|_| corrupt("allowed_models"))?,
            free_models_only: row.free_models_only,
            scopes: Scopes::parse(row.scopes.split_whitespace()).map_err(|_| corrupt("scopes"))?,
            expires_at: row.expires_at,
        };
        Ok(TokenRecord {
            id: row.id,
            brand_id: row.brand_id,
            digest: Digest::from_hex(&row.token_hash).ok_or_else(|| corrupt("token_hash"))?,
            preview: row.token_preview,
            settings,
            revoked_at: row.revoked_at,
            last_used_at: row.last_used_at,
            created_at: row.created_at,
        })
    }
}

fn write_settings(row: &mut agent_token::ActiveModel, s: &TokenSettings, now: DateTime<Utc>) {
    row.name = Set(s.name.clone());
    row.monthly_budget_nanos = Set(s.monthly_budget.map(Money::nanos));
    row.budget_mode = Set(s.budget_mode.as_str().to_owned());
    row.rpm = Set(s.rpm.map(|v| v.min(i32::MAX as u32) as i32));
    row.rpd = Set(s.rpd.map(|v| v.min(i32::MAX as u32) as i32));
    row.allowed_models = Set(serde_json::Value::from(s.allowed_models.clone()).to_string());
    row.free_models_only = Set(s.free_models_only);
    row.scopes = Set(s.scopes.to_storage());
    row.expires_at = Set(s.expires_at);
    row.updated_at = Set(now);
}

pub async fn insert_token(
    db: &DatabaseConnection,
    brand_id: i32,
    digest: Digest,
    preview: &str,
    settings: &TokenSettings,
    now: DateTime<Utc>,
) -> Result<TokenRecord, DbErr> {
    let mut row = agent_token::ActiveModel {
        brand_id: Set(brand_id),
        token_hash: Set(digest.to_hex()),
        token_preview: Set(preview.to_owned()),
        revoked_at: Set(None),
        last_used_at: Set(None),
        created_at: Set(now),
        ..Default::default()
    };
    write_settings(&mut row, settings, now);
    row.insert(db).await?.try_into()
}

pub async fn list_tokens(
    db: &DatabaseConnection,
    brand_id: i32,
    include_revoked: bool,
) -> Result<Vec<TokenRecord>, DbErr> {
    let mut query = agent_token::Entity::find().filter(agent_token::Column::BrandId.eq(brand_id));
    if !include_revoked {
        query = query.filter(agent_token::Column::RevokedAt.is_null());
    }
    let rows = query.order_by_asc(agent_token::Column::Id).all(db).await?;
    rows.into_iter().map(TokenRecord::try_from).collect()
}

/// The brand's token `id`; `None` for a missing or foreign one (they must look the same).
pub async fn find_token(
    db: &DatabaseConnection,
    brand_id: i32,
    id: i32,
) -> Result<Option<TokenRecord>, DbErr> {
    let row = find_row(db, brand_id, id).await?;
    row.map(TokenRecord::try_from).transpose()
}

async fn find_row(
    db: &DatabaseConnection,
    brand_id: i32,
    id: i32,
) -> Result<Option<agent_token::Model>, DbErr> {
    agent_token::Entity::find_by_id(id)
        .filter(agent_token::Column::BrandId.eq(brand_id))
        .one(db)
        .await
}

pub async fn update_settings(
    db: &DatabaseConnection,
    brand_id: i32,
    id: i32,
    s: &TokenSettings,
    now: DateTime<Utc>,
) -> Result<Option<TokenRecord>, DbErr> {
    let Some(row) = find_row(db, brand_id, id).await? else {
        return Ok(None);
    };
    let mut row: agent_token::ActiveModel = row.into();
    write_settings(&mut row, s, now);
    Ok(Some(row.update(db).await?.try_into()?))
}

/// Marks the token revoked (keeping the first revocation time); `None` if missing or foreign.
pub async fn revoke_token(
    db: &DatabaseConnection,
    brand_id: i32,
    id: i32,
    now: DateTime<Utc>,
) -> Result<Option<TokenRecord>, DbErr> {
    let Some(row) = find_row(db, brand_id, id).await? else {
        return Ok(None);
    };
    if row.revoked_at.is_some() {
        return Ok(Some(row.try_into()?));
    }
    let mut row: agent_token::ActiveModel = row.into();
    row.revoked_at = Set(Some(now));
    row.updated_at = Set(now);
    Ok(Some(row.update(db).await?.try_into()?))
}

/// Writes `last_used_at` for each `(token id, unix seconds)`.
pub async fn write_last_used(db: &DatabaseConnection, uses: &[(i32, i64)]) -> Result<(), DbErr> {
    for &(id, at) in uses {
        let Some(at) = DateTime::from_timestamp(at, 0) else {
            continue;
        };
        agent_token::Entity::update_many()
            .col_expr(agent_token::Column::LastUsedAt, Expr::value(at))
            .filter(agent_token::Column::Id.eq(id))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Start-up: every token (revoked ones too, so their callers hear "revoked") into the cache.
/// Re-reads token `id` into the cache, after another replica changed it (minted, edited, revoked).
pub async fn reload_into_cache(
    db: &DatabaseConnection,
    cache: &TokenCache,
    id: i32,
) -> anyhow::Result<()> {
    let Some(row) = agent_token::Entity::find_by_id(id).one(db).await? else {
        return Ok(());
    };
    let record = TokenRecord::try_from(row)?;
    let Some(client_id) = cache.client_id_of(record.brand_id) else {
        anyhow::bail!(
            "token {id} belongs to brand {}, not in the cache",
            record.brand_id
        );
    };
    let anchor_day = cache.anchor_day(&client_id);
    cache.put_token(record.digest, record.cache_entry(client_id, anchor_day));
    Ok(())
}

pub async fn load_into_cache(
    db: &DatabaseConnection,
    cache: &TokenCache,
    brands: &HashMap<i32, Arc<str>>,
) -> anyhow::Result<usize> {
    let rows = agent_token::Entity::find().all(db).await?;
    let count = rows.len();
    for row in rows {
        let record = TokenRecord::try_from(row)?;
        let Some(client_id) = brands.get(&record.brand_id) else {
            continue;
        };
        cache.put_token(
            record.digest,
            record.cache_entry(client_id.clone(), cache.anchor_day(client_id)),
        );
    }
    Ok(count)
}
