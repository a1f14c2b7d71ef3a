//! Invite and outbox rows. The only file of this concern that touches `entity`.

use chrono::{DateTime, Utc};
use entity::{invite, oauth_flow, outbox};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteStatus {
    Pending,
    Used,
    Revoked,
}

impl InviteStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            InviteStatus::Pending => "pending",
            InviteStatus::Used => "used",
            InviteStatus::Revoked => "revoked",
        }
    }

    fn parse(text: &str) -> InviteStatus {
        match text {
            "used" => InviteStatus::Used,
            "revoked" => InviteStatus::Revoked,
            _ => InviteStatus::Pending,
        }
    }
}

/// What a link does when used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteKind {
    /// Adds a new key to the brand's vault.
    NewKey,
    /// Replaces the credential of an existing (disabled) key in place.
    Reauth,
}

impl InviteKind {
    /// The stored kind, which is also the first segment of the link's path (`/invite/<token>`).
    pub fn as_str(self) -> &'static str {
        match self {
            InviteKind::NewKey => "invite",
            InviteKind::Reauth => "reauth",
        }
    }
}

#[derive(Debug, Clone)]
pub struct InviteRecord {
    pub id: i32,
    pub brand_id: i32,
    pub kind: InviteKind,
    pub email: String,
    pub provider_name: String,
    pub message: Option<String>,
    pub status: InviteStatus,
    pub integration_id: Option<i32>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl From<invite::Model> for InviteRecord {
    fn from(row: invite::Model) -> Self {
        InviteRecord {
            id: row.id,
            brand_id: row.brand_id,
            kind: if row.kind == InviteKind::Reauth.as_str() {
                InviteKind::Reauth
            } else {
                InviteKind::NewKey
            },
            email: row.email,
            provider_name: row.provider_name,
            message: row.message,
            status: InviteStatus::parse(&row.status),
            integration_id: row.integration_id,
            expires_at: row.expires_at,
            created_at: row.created_at,
        }
    }
}

pub struct NewInvite<'a> {
    pub brand_id: i32,
    pub kind: InviteKind,
    /// For re-auth links: the key to repair.
    pub integration_id: Option<i32>,
    pub email: &'a str,
    pub provider_name: &'a str,
    pub message: Option<&'a str>,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// An outbox row for `mail`, due now: `channel` is `email`, or `webhook` (an alert's JSON in `text`).
pub fn queued(mail: Mail, channel: &str, now: DateTime<Utc>) -> outbox::ActiveModel {
    outbox::ActiveModel {
        to_email: Set(mail.to),
        subject: Set(mail.subject),
        text_body: Set(mail.text),
        html_body: Set(mail.html),
        attempts: Set(0),
        next_attempt_at: Set(now),
        sent_at: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        channel: Set(channel.to_owned()),
        ..Default::default()
    }
}

/// Writes the invite and its email in one transaction: both exist, or neither.
pub async fn insert_invite_with_mail(
    db: &DatabaseConnection,
    new: NewInvite<'_>,
    mail: Mail,
    now: DateTime<Utc>,
) -> Result<InviteRecord, DbErr> {
    let txn = db.begin().await?;
    let row = invite::ActiveModel {
        brand_id: Set(new.brand_id),
        kind: Set(new.kind.as_str().to_owned()),
        email: Set(new.email.to_owned()),
        provider_name: Set(new.provider_name.to_owned()),
        message: Set(new.message.map(str::to_owned)),
        token_hash: Set(new.token_hash),
        status: Set(InviteStatus::Pending.as_str().to_owned()),
        integration_id: Set(new.integration_id),
        expires_at: Set(new.expires_at),
        created_at: Set(now),
        used_at: Set(None),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    queued(mail, "email", now).insert(&txn).await?;
    txn.commit().await?;
    Ok(row.into())
}

pub async fn list_invites(
    db: &DatabaseConnection,
    brand_id: i32,
) -> Result<Vec<InviteRecord>, DbErr> {
    let rows = invite::Entity::find()
        .filter(invite::Column::BrandId.eq(brand_id))
        .order_by_desc(invite::Column::Id)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(InviteRecord::from).collect())
}

pub async fn find_by_token(
    db: &DatabaseConnection,
    token_hash: &str,
) -> Result<Option<InviteRecord>, DbErr> {
    let row = invite::Entity::find()
        .filter(invite::Column::TokenHash.eq(token_hash))
        .one(db)
        .await?;
    Ok(row.map(InviteRecord::from))
}

/// Revokes the brand's pending invite `id`; `None` if missing or foreign.
pub async fn revoke(
    db: &DatabaseConnection,
    brand_id: i32,
    id: i32,
) -> Result<Option<InviteRecord>, DbErr> {
    let Some(row) = invite::Entity::find_by_id(id)
        .filter(invite::Column::BrandId.eq(brand_id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if row.status != InviteStatus::Pending.as_str() {
        return Ok(Some(row.into()));
    }
    let mut row: invite::ActiveModel = row.into();
    row.status = Set(InviteStatus::Revoked.as_str().to_owned());
    Ok(Some(row.update(db).await?.into()))
}

/// Moves a pending invite to `used`, atomically: `false` if someone else got there first.
pub async fn claim(db: &DatabaseConnection, id: i32, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let result = invite::Entity::update_many()
        .col_expr(
            invite::Column::Status,
            sea_orm::sea_query::Expr::value(InviteStatus::Used.as_str()),
        )
        .col_expr(invite::Column::UsedAt, sea_orm::sea_query::Expr::value(now))
        .filter(invite::Column::Id.eq(id))
        .filter(invite::Column::Status.eq(InviteStatus::Pending.as_str()))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Undoes a claim whose key could not be stored, so the link can be used again.
pub async fn unclaim(db: &DatabaseConnection, id: i32) -> Result<(), DbErr> {
    invite::Entity::update_many()
        .col_expr(
            invite::Column::Status,
            sea_orm::sea_query::Expr::value(InviteStatus::Pending.as_str()),
        )
        .filter(invite::Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

pub async fn set_integration(
    db: &DatabaseConnection,
    id: i32,
    integration_id: i32,
) -> Result<(), DbErr> {
    invite::Entity::update_many()
        .col_expr(
            invite::Column::IntegrationId,
            sea_orm::sea_query::Expr::value(integration_id),
        )
        .filter(invite::Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

/// An email waiting to go out.
pub struct Pending {
    pub id: i32,
    pub attempts: i32,
    /// `email` or `webhook`.
    pub channel: String,
    pub mail: Mail,
}

/// Unsent mail whose next attempt is due, oldest first.
pub async fn due_mail(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Pending>, DbErr> {
    let rows = outbox::Entity::find()
        .filter(outbox::Column::SentAt.is_null())
        .filter(outbox::Column::NextAttemptAt.lte(now))
        .order_by_asc(outbox::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Pending {
            id: r.id,
            attempts: r.attempts,
            channel: r.channel,
            mail: Mail {
                to: r.to_email,
                subject: r.subject,
                text: r.text_body,
                html: r.html_body,
            },
        })
        .collect())
}

/// Leases a due, unsent email to the caller until `lease_until`: `false` if another mailer
/// claimed or sent it first (the condition and the write are one statement).
pub async fn claim_mail(
    db: &DatabaseConnection,
    id: i32,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = outbox::Entity::update_many()
        .col_expr(
            outbox::Column::NextAttemptAt,
            sea_orm::sea_query::Expr::value(lease_until),
        )
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::SentAt.is_null())
        .filter(outbox::Column::NextAttemptAt.lte(now))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

pub async fn mark_sent(db: &DatabaseConnection, id: i32, now: DateTime<Utc>) -> Result<(), DbErr> {
    outbox::Entity::update_many()
        .col_expr(outbox::Column::SentAt, sea_orm::sea_query::Expr::value(now))
        .filter(outbox::Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

pub async fn mark_failed(
    db: &DatabaseConnection,
    id: i32,
    attempts: i32,
    next: DateTime<Utc>,
    error: &str,
) -> Result<(), DbErr> {
    outbox::Entity::update_many()
        .col_expr(
            outbox::Column::Attempts,
            sea_orm::sea_query::Expr::value(attempts),
        )
        .col_expr(
            outbox::Column::NextAttemptAt,
            sea_orm::sea_query::Expr::value(next),
        )
        .col_expr(
            outbox::Column::LastError,
            sea_orm::sea_query::Expr::value(error.chars().take(500).collect::<String>()),
        )
        .filter(outbox::Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

/// Who contributed key `integration_id` through an invite, if anyone (the latest such invite).
pub async fn contributor_of(
    db: &DatabaseConnection,
    integration_id: i32,
) -> Result<Option<String>, DbErr> {
    let row = invite::Entity::find()
        .filter(invite::Column::IntegrationId.eq(integration_id))
        .filter(invite::Column::Status.eq(InviteStatus::Used.as_str()))
        .order_by_desc(invite::Column::Id)
        .one(db)
        .await?;
    Ok(row.map(|r| r.email))
}

pub async fn find_invite(db: &DatabaseConnection, id: i32) -> Result<Option<InviteRecord>, DbErr> {
    let row = invite::Entity::find_by_id(id).one(db).await?;
    Ok(row.map(InviteRecord::from))
}

/// An OAuth sign-in in progress, as its callback finds it.
pub struct OAuthFlow {
    pub invite_id: i32,
    pub code_verifier: String,
    pub expires_at: DateTime<Utc>,
}

/// Records a sign-in's PKCE verifier under the SHA-256 of its `state`, and forgets flows that
/// expired unused (abandoned sign-ins), so the table stays small.
pub async fn insert_flow(
    db: &DatabaseConnection,
    state_hash: String,
    flow: OAuthFlow,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    oauth_flow::Entity::delete_many()
        .filter(oauth_flow::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?;
    oauth_flow::ActiveModel {
        state_hash: Set(state_hash),
        invite_id: Set(flow.invite_id),
        code_verifier: Set(flow.code_verifier),
        expires_at: Set(flow.expires_at),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .map(|_| ())
}

/// Takes the flow of `state_hash` out of the table: each `state` is used once, even by two
/// callbacks racing. `None` when unknown or already taken.
pub async fn take_flow(
    db: &DatabaseConnection,
    state_hash: &str,
) -> Result<Option<OAuthFlow>, DbErr> {
    let Some(row) = oauth_flow::Entity::find()
        .filter(oauth_flow::Column::StateHash.eq(state_hash))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let deleted = oauth_flow::Entity::delete_by_id(row.id).exec(db).await?;
    Ok((deleted.rows_affected == 1).then_some(OAuthFlow {
        invite_id: row.invite_id,
        code_verifier: row.code_verifier,
        expires_at: row.expires_at,
    }))
}
