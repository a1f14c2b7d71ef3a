//! `token_usage_hourly`: an agent token's admitted requests and spend per UTC hour, kept by the
//! usage writer in the same transaction as the trace rows. Budgets (monthly spend) and the daily
//! rate window are rebuilt from it at start-up without scanning the ledger.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "token_usage_hourly")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub agent_key_id: i32,
    /// Unix seconds of the hour's start.
    #[sea_orm(primary_key, auto_increment = false)]
    pub hour_start: i64,
    pub requests: i64,
    pub cost_nanos: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
