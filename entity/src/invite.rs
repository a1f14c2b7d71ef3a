//! `invites`: signed single-use links for contributing a provider key. Only the SHA-256 of the
//! link's token is stored.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invites")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub brand_id: i32,
    /// "invite" (a new key) or "reauth" (replace the credential of `integration_id` in place).
    pub kind: String,
    pub email: String,
    pub provider_name: String,
    pub message: Option<String>,
    #[sea_orm(unique)]
    pub token_hash: String,
    /// "pending", "used" or "revoked".
    pub status: String,
    pub integration_id: Option<i32>,
    pub expires_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
