//! `dashboard_sessions`: the only reader and writer of the table.

use chrono::{DateTime, Utc};
use entity::dashboard_session as session;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, Set,
};

pub use entity::dashboard_session::Model as SessionRow;

pub async fn create(
    db: &DatabaseConnection,
    token_hash: String,
    brand_id: Option<i32>,
    csrf: String,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    session::ActiveModel {
        token_hash: Set(token_hash),
        brand_id: Set(brand_id),
        csrf: Set(csrf),
        created_at: Set(now),
        last_seen_at: Set(now),
        expires_at: Set(expires_at),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// The live session with this digest: not past its end, and seen since `idle_since`.
pub async fn live(
    db: &DatabaseConnection,
    token_hash: &str,
    now: DateTime<Utc>,
    idle_since: DateTime<Utc>,
) -> Result<Option<SessionRow>, DbErr> {
    session::Entity::find()
        .filter(session::Column::TokenHash.eq(token_hash))
        .filter(session::Column::ExpiresAt.gt(now))
        .filter(session::Column::LastSeenAt.gt(idle_since))
        .one(db)
        .await
}

pub async fn touch(db: &DatabaseConnection, id: i32, now: DateTime<Utc>) -> Result<(), DbErr> {
    session::Entity::update_many()
        .col_expr(session::Column::LastSeenAt, Expr::value(now))
        .filter(session::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn end(db: &DatabaseConnection, token_hash: &str) -> Result<(), DbErr> {
    session::Entity::delete_many()
        .filter(session::Column::TokenHash.eq(token_hash))
        .exec(db)
        .await?;
    Ok(())
}

/// Ends every dashboard session of a brand (its credential was rotated).
pub async fn end_brand_sessions(db: &impl ConnectionTrait, brand_id: i32) -> Result<u64, DbErr> {
    let done = session::Entity::delete_many()
        .filter(session::Column::BrandId.eq(brand_id))
        .exec(db)
        .await?;
    Ok(done.rows_affected)
}
