//! The integration object of the seed "Create Integration", plus API.md section 5's additions.

use super::key::KeyRecord;
use crate::health::{HealthStatus, KeyHealthView};
use crate::money::Money;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize, utoipa::ToSchema)]
pub struct IntegrationView {
    pub id: i32,
    pub provider_name: String,
    pub provider_label: String,
    pub key_label: Option<String>,
    pub is_active: bool,
    pub is_primary: bool,
    pub priority: i32,
    pub daily_limit: Option<u32>,
    pub daily_count: u32,
    pub minute_limit: Option<u32>,
    pub minute_count: u32,
    #[schema(value_type = String, example = "healthy")]
    pub health_status: &'static str,
    pub consecutive_failures: u32,
    pub spend_limit_amount: Option<Money>,
    pub spend_limit_period: String,
    pub spend_limit_action: String,
    pub spend_limit_exceeded: bool,
    pub key_preview: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub share_with_pool: bool,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub spend_today: Money,
    pub spend_month: Money,
    pub disabled_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl IntegrationView {
    /// `health` is the live view from the key's health actor; without it, the stored figures.
    pub fn new(record: KeyRecord, provider_label: &str, health: Option<KeyHealthView>) -> Self {
        let health = health.unwrap_or(KeyHealthView {
            status: HealthStatus::from_failures(record.consecutive_failures),
            consecutive_failures: record.consecutive_failures,
            minute_count: 0,
            daily_count: 0,
            last_used_at: record.last_used_at,
            last_error: record.last_error.clone(),
            spend_today: Money::ZERO,
            spend_month: Money::ZERO,
        });
        let spend_limit_exceeded =
            record.spend_limit_reached(health.spend_today, health.spend_month);
        IntegrationView {
            id: record.id,
            priority: record.priority(),
            provider_label: provider_label.to_owned(),
            provider_name: record.provider,
            key_label: record.key_label,
            is_active: record.is_active,
            is_primary: record.is_primary,
            daily_limit: record.daily_limit,
            daily_count: health.daily_count,
            minute_limit: record.minute_limit,
            minute_count: health.minute_count,
            health_status: health.status.as_str(),
            consecutive_failures: health.consecutive_failures,
            spend_limit_amount: record.spend_limit,
            spend_limit_period: record.spend_limit_period,
            spend_limit_action: record.spend_limit_action,
            spend_limit_exceeded,
            key_preview: record.key_preview,
            created_at: record.created_at,
            share_with_pool: record.share_with_pool,
            last_used_at: health.last_used_at.or(record.last_used_at),
            last_error: health.last_error,
            spend_today: health.spend_today,
            spend_month: health.spend_month,
            disabled_reason: record.disabled_reason,
            updated_at: record.updated_at,
        }
    }
}
