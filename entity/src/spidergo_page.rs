//! `spidergo_pages`: the pages of a crawl in the order they finished, each as its JSON.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "spidergo_pages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub crawl_id: String,
    pub seq: i32,
    pub data: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
