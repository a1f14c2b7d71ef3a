//! Brand rows. The only file of this concern that touches `entity`.

use crate::auth::Digest;
use chrono::{DateTime, Utc};
use entity::brand;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
};

#[derive(Debug, Clone)]
pub struct BrandRecord {
    pub id: i32,
    pub client_id: String,
    pub name: String,
    pub contact_email: Option<String>,
    pub billing_anchor_day: Option<i32>,
    pub key_hash: Digest,
    pub secret_hash: Digest,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<brand::Model> for BrandRecord {
    type Error = DbErr;

    fn try_from(row: brand::Model) -> Result<Self, DbErr> {
        let digest = |hex: &str| {
            Digest::from_hex(hex).ok_or_else(|| {
                DbErr::Custom(format!("brand {}: corrupt credential digest", row.id))
            })
        };
        Ok(BrandRecord {
            key_hash: digest(&row.key_hash)?,
            secret_hash: digest(&row.secret_hash)?,
            id: row.id,
            client_id: row.client_id,
            name: row.name,
            contact_email: row.contact_email,
            billing_anchor_day: row.billing_anchor_day,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

pub struct InsertBrand<'a> {
    pub client_id: &'a str,
    pub name: &'a str,
    pub contact_email: Option<&'a str>,
    pub billing_anchor_day: Option<i32>,
    pub key_hash: Digest,
    pub secret_hash: Digest,
}

pub async fn insert_brand(
    db: &DatabaseConnection,
    new: InsertBrand<'_>,
    now: DateTime<Utc>,
) -> Result<BrandRecord, DbErr> {
    let row = brand::ActiveModel {
        client_id: Set(new.client_id.to_owned()),
        name: Set(new.name.to_owned()),
        contact_email: Set(new.contact_email.map(str::to_owned)),
        billing_anchor_day: Set(new.billing_anchor_day),
        key_hash: Set(new.key_hash.to_hex()),
        secret_hash: Set(new.secret_hash.to_hex()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    row.insert(db).await?.try_into()
}

pub async fn list_brands(db: &DatabaseConnection) -> Result<Vec<BrandRecord>, DbErr> {
    let rows = brand::Entity::find()
        .order_by_asc(brand::Column::Id)
        .all(db)
        .await?;
    rows.into_iter().map(BrandRecord::try_from).collect()
}

pub async fn find_brand(
    db: &DatabaseConnection,
    client_id: &str,
) -> Result<Option<BrandRecord>, DbErr> {
    let row = brand::Entity::find()
        .filter(brand::Column::ClientId.eq(client_id))
        .one(db)
        .await?;
    row.map(BrandRecord::try_from).transpose()
}

pub async fn find_brand_by_id(
    db: &DatabaseConnection,
    id: i32,
) -> Result<Option<BrandRecord>, DbErr> {
    brand::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(BrandRecord::try_from)
        .transpose()
}

/// Replaces the credential digests; `None` when no brand has `client_id`.
pub async fn replace_credential(
    db: &DatabaseConnection,
    client_id: &str,
    key_hash: Digest,
    secret_hash: Digest,
    now: DateTime<Utc>,
) -> Result<Option<BrandRecord>, DbErr> {
    let Some(row) = brand::Entity::find()
        .filter(brand::Column::ClientId.eq(client_id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let mut row: brand::ActiveModel = row.into();
    row.key_hash = Set(key_hash.to_hex());
    row.secret_hash = Set(secret_hash.to_hex());
    row.updated_at = Set(now);
    Ok(Some(row.update(db).await?.try_into()?))
}
