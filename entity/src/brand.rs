//! `brands`: tenants. The client credential's key and secret are stored as SHA-256 hex only.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "brands")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub client_id: String,
    pub name: String,
    pub contact_email: Option<String>,
    pub billing_anchor_day: Option<i32>,
    pub key_hash: String,
    pub secret_hash: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::agent_token::Entity")]
    AgentToken,
}

impl Related<super::agent_token::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AgentToken.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
