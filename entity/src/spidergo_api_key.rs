//! `spidergo_api_keys`: `sk_live_` keys by SHA-256, with the last four characters for display.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "spidergo_api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: i32,
    pub name: String,
    #[sea_orm(unique)]
    pub key_hash: String,
    pub last4: String,
    pub daily_limit: i32,
    pub is_active: bool,
    pub created_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
