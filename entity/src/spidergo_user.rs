//! `spidergo_users`: SpiderGo's own accounts (not brands). Only `spidergo::accounts::store` reads it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "spidergo_users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub name: String,
    #[sea_orm(unique)]
    pub email: String,
    /// The argon2id PHC string.
    pub password_hash: String,
    pub email_verified_at: Option<DateTimeUtc>,
    pub key_serial: i32,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
