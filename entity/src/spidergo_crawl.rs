//! `spidergo_crawls`: one row per scrape, crawl or crawl job (its CRID), with the summary.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "spidergo_crawls")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: i32,
    pub key_id: Option<String>,
    /// `scrape`, `crawl` or `job`.
    pub kind: String,
    pub url: String,
    /// `running`, `completed`, `cancelled` or `failed: …`.
    pub status: String,
    /// The request's options as JSON.
    pub options: String,
    pub total_pages: i32,
    pub total_response_ms: i64,
    pub total_payload: i64,
    pub stop_reason: Option<String>,
    /// `{"Robots","Scope","Duplicate"}` as JSON.
    pub skipped: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    /// The process running it (`SpiderGo::instance`).
    pub owner: Option<String>,
    pub heartbeat_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
