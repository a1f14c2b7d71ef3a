//! `agent_tokens`: per-agent PATs. Only the SHA-256 of the token is stored (`token_hash`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub brand_id: i32,
    pub name: String,
    #[sea_orm(unique)]
    pub token_hash: String,
    pub token_preview: String,
    /// Space-separated scope names.
    pub scopes: String,
    /// Monthly budget in nano-dollars; `None` = no budget.
    pub monthly_budget_nanos: Option<i64>,
    pub budget_mode: String,
    pub rpm: Option<i32>,
    pub rpd: Option<i32>,
    /// JSON array of model ids and aliases; empty = all.
    pub allowed_models: String,
    pub free_models_only: bool,
    pub expires_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    pub last_used_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::brand::Entity",
        from = "Column::BrandId",
        to = "super::brand::Column::Id"
    )]
    Brand,
}

impl Related<super::brand::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Brand.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
