//! The accounts' tables: users, sessions and emailed codes. The only reader of their entities.

use crate::auth::Digest;
use chrono::{DateTime, Utc};
use entity::{spidergo_code as code, spidergo_session as session, spidergo_user as user};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, Set, SqlErr,
};
use serde::Serialize;

pub use entity::spidergo_user::Model as User;

/// A user as the API shows them (never the hash).
#[derive(Debug, Serialize)]
pub struct PublicUser {
    pub id: String,
    pub name: String,
    pub email: String,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
}

impl From<&User> for PublicUser {
    fn from(user: &User) -> PublicUser {
        PublicUser {
            id: user.id.to_string(),
            name: user.name.clone(),
            email: user.email.clone(),
            email_verified: user.email_verified_at.is_some(),
            created_at: user.created_at,
        }
    }
}

/// Inserts a user; `None` when the email is taken.
pub async fn create_user(
    db: &DatabaseConnection,
    name: &str,
    email: &str,
    password_hash: String,
    now: DateTime<Utc>,
) -> Result<Option<User>, DbErr> {
    let row = user::ActiveModel {
        name: Set(name.to_owned()),
        email: Set(email.to_owned()),
        password_hash: Set(password_hash),
        email_verified_at: Set(None),
        key_serial: Set(0),
        created_at: Set(now),
        ..Default::default()
    };
    match row.insert(db).await {
        Ok(user) => Ok(Some(user)),
        Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(None),
        Err(err) => Err(err),
    }
}

pub async fn user_by_email(db: &DatabaseConnection, email: &str) -> Result<Option<User>, DbErr> {
    user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(db)
        .await
}

pub async fn user_by_id(db: &DatabaseConnection, id: i32) -> Result<Option<User>, DbErr> {
    user::Entity::find_by_id(id).one(db).await
}

pub async fn set_password(
    db: &impl ConnectionTrait,
    user_id: i32,
    password_hash: String,
) -> Result<(), DbErr> {
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(password_hash))
        .filter(user::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn mark_verified(
    db: &DatabaseConnection,
    user_id: i32,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    user::Entity::update_many()
        .col_expr(user::Column::EmailVerifiedAt, Expr::value(now))
        .filter(user::Column::Id.eq(user_id))
        .filter(user::Column::EmailVerifiedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Which of a session's two tokens a row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }
}

/// One token to store: its digest, kind, family and expiry.
pub struct NewToken<'a> {
    pub digest: Digest,
    pub kind: TokenKind,
    pub family: &'a str,
    pub user_id: i32,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert_token(
    db: &impl ConnectionTrait,
    token: NewToken<'_>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    session::ActiveModel {
        user_id: Set(token.user_id),
        family: Set(token.family.to_owned()),
        kind: Set(token.kind.as_str().to_owned()),
        token_hash: Set(token.digest.to_hex()),
        expires_at: Set(token.expires_at),
        used_at: Set(None),
        revoked_at: Set(None),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// A live token's row: the right kind, not revoked, not expired.
pub async fn live_token(
    db: &DatabaseConnection,
    digest: Digest,
    kind: TokenKind,
    now: DateTime<Utc>,
) -> Result<Option<session::Model>, DbErr> {
    session::Entity::find()
        .filter(session::Column::TokenHash.eq(digest.to_hex()))
        .filter(session::Column::Kind.eq(kind.as_str()))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .one(db)
        .await
}

/// Marks a refresh token used, once: `false` when it already was (a replay).
pub async fn use_refresh(
    db: &impl ConnectionTrait,
    id: i32,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let done = session::Entity::update_many()
        .col_expr(session::Column::UsedAt, Expr::value(now))
        .filter(session::Column::Id.eq(id))
        .filter(session::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Ends every token of a family (sign-out, or a refresh token presented twice).
pub async fn revoke_family(
    db: &impl ConnectionTrait,
    family: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .filter(session::Column::Family.eq(family))
        .filter(session::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Ends every session of a user (a password reset).
pub async fn revoke_user(
    db: &impl ConnectionTrait,
    user_id: i32,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// What an emailed code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::ResetPassword => "reset_password",
        }
    }
}

/// Wrong guesses a code survives before it is spent.
pub const CODE_ATTEMPTS: i32 = 5;

/// Stores a new code (earlier unused codes of the same purpose stop working) in `txn`.
pub async fn insert_code(
    db: &impl ConnectionTrait,
    user_id: i32,
    purpose: Purpose,
    digest: Digest,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    code::Entity::update_many()
        .col_expr(code::Column::UsedAt, Expr::value(now))
        .filter(code::Column::UserId.eq(user_id))
        .filter(code::Column::Purpose.eq(purpose.as_str()))
        .filter(code::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    code::ActiveModel {
        user_id: Set(user_id),
        purpose: Set(purpose.as_str().to_owned()),
        code_hash: Set(digest.to_hex()),
        attempts: Set(0),
        expires_at: Set(expires_at),
        used_at: Set(None),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Spends the user's live code for `purpose` if `digest` is it; a wrong guess counts against
/// it. `true` only for the right, unexpired, unused code, once.
pub async fn redeem_code(
    db: &impl ConnectionTrait,
    user_id: i32,
    purpose: Purpose,
    digest: Digest,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let Some(live) = code::Entity::find()
        .filter(code::Column::UserId.eq(user_id))
        .filter(code::Column::Purpose.eq(purpose.as_str()))
        .filter(code::Column::UsedAt.is_null())
        .filter(code::Column::ExpiresAt.gt(now))
        .filter(code::Column::Attempts.lt(CODE_ATTEMPTS))
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    let right = Digest::from_hex(&live.code_hash).is_some_and(|stored| stored.matches(&digest));
    let spend = code::Entity::update_many().filter(code::Column::Id.eq(live.id));
    let spend = if right {
        spend
            .col_expr(code::Column::UsedAt, Expr::value(now))
            .filter(code::Column::UsedAt.is_null())
    } else {
        spend.col_expr(
            code::Column::Attempts,
            Expr::col(code::Column::Attempts).add(1),
        )
    };
    let done = spend.exec(db).await?;
    Ok(right && done.rows_affected == 1)
}
