//! Alerts: signed webhooks (and optional email) when something an operator must know happens.
//!
//! Whoever notices an event calls [`Alerts::raise`], which only queues it (never waits, never
//! fails a request). The writer task stores each event in `alert_events` under its `event_key`,
//! unique, so an event noticed twice (by two replicas, or again after a restart) is recorded and
//! sent once; in the same transaction it queues the deliveries in the outbox, whose mailer posts
//! the webhook (or sends the email) and retries with back-off until it is taken.

pub mod http;
mod store;
pub mod webhook;

use crate::clock::Clock;
use crate::config::AlertsConfig;
use crate::money::Money;
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

/// Events waiting to be stored; beyond this a burst is dropped with a warning.
const QUEUE: usize = 4096;

/// One event. `key` names it uniquely: raising the same key again sends nothing.
#[derive(Debug, Clone)]
pub struct Alert {
    pub key: String,
    pub kind: &'static str,
    pub brand_id: Option<i32>,
    pub data: Value,
}

/// The provider key an alert is about; `brand_id` is its owner (`None` for a pool key).
#[derive(Debug, Clone, Copy)]
pub struct KeyRef<'a> {
    pub provider: &'a str,
    pub integration_id: i32,
    pub brand_id: Option<i32>,
}

/// Where alerts are raised; cheap to clone. Off when no webhook and no email is configured.
#[derive(Clone, Default)]
pub struct Alerts {
    queue: Option<mpsc::Sender<Alert>>,
}

impl Alerts {
    /// Starts the writer when `config` sends alerts anywhere; it stores what is queued and returns
    /// once `stop` turns true.
    pub fn start(
        config: &AlertsConfig,
        db: DatabaseConnection,
        mailer: crate::invites::Mailer,
        clock: Clock,
        stop: watch::Receiver<bool>,
    ) -> (Alerts, Option<tokio::task::JoinHandle<()>>) {
        if !config.enabled() {
            return (Alerts::default(), None);
        }
        let (queue, received) = mpsc::channel(QUEUE);
        let writer = store::Writer {
            db,
            mailer,
            clock,
            email: (!config.email.is_empty()).then(|| config.email.clone()),
            webhook: !config.webhook_url.is_empty(),
        };
        let task = tokio::spawn(writer.run(received, stop));
        (Alerts { queue: Some(queue) }, Some(task))
    }

    pub fn raise(&self, alert: Alert) {
        let Some(queue) = &self.queue else { return };
        if let Err(err) = queue.try_send(alert) {
            tracing::warn!(
                kind = err.into_inner().kind,
                "alert queue full: an alert was dropped"
            );
        }
    }

    /// A token's spend crossed 80 % or 100 % of its monthly budget (once per budget month).
    pub fn budget_spent(
        &self,
        token_id: i32,
        brand_id: i32,
        period_start: DateTime<Utc>,
        (before, after): (Money, Money),
        cap: Money,
    ) {
        if cap <= Money::ZERO {
            return;
        }
        for (percent, kind) in [(80u128, "budget.80_percent"), (100, "budget.exhausted")] {
            let at = |spent: Money| spent.nanos() as u128 * 100 >= cap.nanos() as u128 * percent;
            if !at(before) && at(after) {
                self.raise(Alert {
                    key: format!("{kind}:{token_id}:{}", period_start.timestamp()),
                    kind,
                    brand_id: Some(brand_id),
                    data: json!({
                        "agent_key_id": token_id,
                        "monthly_budget_usd": cap,
                        "spent_usd": after,
                        "period_start": period_start,
                    }),
                });
            }
        }
    }

    /// A provider key turned unhealthy (at most once per key per hour), or was disabled.
    pub fn key_health(
        &self,
        kind: &'static str,
        key: KeyRef<'_>,
        at: DateTime<Utc>,
        detail: Option<&str>,
    ) {
        let KeyRef {
            provider,
            integration_id,
            brand_id,
        } = key;
        let bucket = match kind {
            "key.disabled" => at.timestamp(),
            _ => at.timestamp() / 3600,
        };
        self.raise(Alert {
            key: format!("{kind}:{integration_id}:{bucket}"),
            kind,
            brand_id,
            data: json!({
                "integration_id": integration_id,
                "provider": provider,
                "last_error": detail,
            }),
        });
    }

    /// A key's spend reached its `spend_limit_amount` (once per key per limit period).
    pub fn key_spend_limit(
        &self,
        key: KeyRef<'_>,
        limit: Money,
        spent: Money,
        daily: bool,
        today: chrono::NaiveDate,
    ) {
        let KeyRef {
            provider,
            integration_id,
            brand_id,
        } = key;
        let period = if daily {
            today.to_string()
        } else {
            today.format("%Y-%m").to_string()
        };
        self.raise(Alert {
            key: format!("key.spend_limit:{integration_id}:{period}"),
            kind: "key.spend_limit",
            brand_id,
            data: json!({
                "integration_id": integration_id,
                "provider": provider,
                "spend_limit_usd": limit,
                "spent_usd": spent,
                "period": if daily { "daily" } else { "monthly" },
            }),
        });
    }
}
