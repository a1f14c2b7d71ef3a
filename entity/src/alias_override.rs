//! `alias_overrides`: operator replacements of a task alias's fallback chain.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "alias_overrides")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub alias_id: String,
    /// JSON array of model ids, best first.
    pub models: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
