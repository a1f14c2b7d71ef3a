//! `integrations`: provider keys. `brand_id` NULL = an operator pool key. The credential is stored
//! only as a Fernet token (`credentials_enc`) plus a keyed HMAC `fingerprint` and a masked preview.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "integrations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub brand_id: Option<i32>,
    pub provider_name: String,
    pub key_label: Option<String>,
    pub credentials_enc: String,
    pub fingerprint: String,
    /// JSON object: field name -> masked preview.
    pub key_preview: String,
    pub is_active: bool,
    pub is_primary: bool,
    pub share_with_pool: bool,
    pub daily_limit: Option<i32>,
    pub minute_limit: Option<i32>,
    pub spend_limit_nanos: Option<i64>,
    pub spend_limit_period: String,
    pub spend_limit_action: String,
    pub health_status: String,
    pub consecutive_failures: i32,
    pub last_used_at: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
