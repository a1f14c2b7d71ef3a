//! The keys' tables: `spidergo_api_keys` and the per-day request counts of `spidergo_key_usage`.

use crate::auth::Digest;
use chrono::{DateTime, NaiveDate, Utc};
use entity::{spidergo_api_key as key, spidergo_user as user};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, Set, Statement, TransactionTrait,
};

pub use entity::spidergo_api_key::Model as ApiKey;

/// What a create came to.
pub enum Created {
    Key(ApiKey),
    /// The user already holds the most active keys allowed.
    TooMany,
}

/// Creates a key unless the user already holds `max_active`. The user's row is updated first,
/// so concurrent creates of one user queue on its lock (PostgreSQL) or on the database's write
/// lock (SQLite) and each counts what the one before it committed: a fourth key cannot slip in.
pub async fn create(
    db: &DatabaseConnection,
    user_id: i32,
    name: &str,
    secret: &str,
    (max_active, daily_limit): (u32, u32),
    now: DateTime<Utc>,
) -> Result<Created, DbErr> {
    let txn = db.begin().await?;
    user::Entity::update_many()
        .col_expr(
            user::Column::KeySerial,
            Expr::col(user::Column::KeySerial).add(1),
        )
        .filter(user::Column::Id.eq(user_id))
        .exec(&txn)
        .await?;
    let active = key::Entity::find()
        .filter(key::Column::UserId.eq(user_id))
        .filter(key::Column::IsActive.eq(true))
        .count(&txn)
        .await?;
    if active >= u64::from(max_active) {
        txn.rollback().await?;
        return Ok(Created::TooMany);
    }
    let row = key::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        user_id: Set(user_id),
        name: Set(name.to_owned()),
        key_hash: Set(Digest::of(secret).to_hex()),
        last4: Set(secret[secret.len().saturating_sub(4)..].to_owned()),
        daily_limit: Set(i32::try_from(daily_limit).unwrap_or(i32::MAX)),
        is_active: Set(true),
        created_at: Set(now),
        revoked_at: Set(None),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(Created::Key(row))
}

/// A user's active keys, newest first.
pub async fn active(db: &DatabaseConnection, user_id: i32) -> Result<Vec<ApiKey>, DbErr> {
    key::Entity::find()
        .filter(key::Column::UserId.eq(user_id))
        .filter(key::Column::IsActive.eq(true))
        .order_by_desc(key::Column::CreatedAt)
        .all(db)
        .await
}

/// Revokes one of the user's keys; `false` when the user has no active key by that id.
pub async fn revoke(
    db: &DatabaseConnection,
    user_id: i32,
    key_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let done = key::Entity::update_many()
        .col_expr(key::Column::IsActive, Expr::value(false))
        .col_expr(key::Column::RevokedAt, Expr::value(now))
        .filter(key::Column::Id.eq(key_id))
        .filter(key::Column::UserId.eq(user_id))
        .filter(key::Column::IsActive.eq(true))
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}

pub async fn by_digest(db: &DatabaseConnection, digest: Digest) -> Result<Option<ApiKey>, DbErr> {
    key::Entity::find()
        .filter(key::Column::KeyHash.eq(digest.to_hex()))
        .one(db)
        .await
}

/// Counts one request of `day` if the key has one left: the new count, or `None` when the day
/// is spent. One statement, so concurrent requests (on any replica) never overshoot.
pub async fn spend(
    db: &DatabaseConnection,
    key_id: &str,
    day: NaiveDate,
    limit: u32,
) -> Result<Option<u32>, DbErr> {
    if limit == 0 {
        return Ok(None);
    }
    let sql = "INSERT INTO spidergo_key_usage (key_id, day, requests) VALUES ($1, $2, 1) \
               ON CONFLICT (key_id, day) DO UPDATE SET requests = spidergo_key_usage.requests + 1 \
               WHERE spidergo_key_usage.requests < $3 RETURNING requests";
    let statement = Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        [key_id.into(), day.to_string().into(), (limit as i32).into()],
    );
    let row = db.query_one_raw(statement).await?;
    row.map(|r| {
        r.try_get::<i32>("", "requests")
            .map(|n| Ord::max(n, 0) as u32)
    })
    .transpose()
}

/// Requests counted on `day` so far.
pub async fn used(db: &DatabaseConnection, key_id: &str, day: NaiveDate) -> Result<u32, DbErr> {
    let statement = Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT requests FROM spidergo_key_usage WHERE key_id = $1 AND day = $2",
        [key_id.into(), day.to_string().into()],
    );
    let row = db.query_one_raw(statement).await?;
    Ok(row
        .map(|r| r.try_get::<i32>("", "requests"))
        .transpose()?
        .map_or(0, |n| Ord::max(n, 0) as u32))
}

/// One of the user's active keys by id.
pub async fn active_by_id(
    db: &DatabaseConnection,
    user_id: i32,
    key_id: &str,
) -> Result<Option<ApiKey>, DbErr> {
    key::Entity::find_by_id(key_id)
        .filter(key::Column::UserId.eq(user_id))
        .filter(key::Column::IsActive.eq(true))
        .one(db)
        .await
}
