//! `traces`: one row per gateway request; the rows with `status = "success"` are the spend ledger.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "traces")]
pub struct Model {
    /// The request id (`X-Request-Id`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub created_at: DateTimeUtc,
    pub brand_id: i32,
    pub agent_key_id: Option<i32>,
    pub request_kind: String,
    pub requested_model: String,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub integration_id: Option<i32>,
    pub status: String,
    pub http_status: i32,
    pub error_code: Option<String>,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub streamed: bool,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Prompt tokens read from the provider's cache (included in `prompt_tokens`).
    pub cache_read_tokens: i64,
    /// Prompt tokens written to the provider's cache (included in `prompt_tokens`).
    pub cache_write_tokens: i64,
    pub cost_nanos: i64,
    pub fallback_used: bool,
    /// JSON array of attempts.
    pub attempts: String,
    /// JSON array of spans.
    pub spans: String,
    pub request_body: Option<String>,
    pub response_body: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
