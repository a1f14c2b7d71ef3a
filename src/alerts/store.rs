//! Stores each alert once and queues its deliveries in the outbox, in one transaction.

use super::Alert;
use crate::clock::Clock;
use crate::invites::store::{Mail, queued};
use entity::alert_event;
use sea_orm::{ActiveModelTrait, DatabaseConnection, DbErr, Set, SqlErr, TransactionTrait};
use serde_json::json;
use tokio::sync::{mpsc, watch};

pub struct Writer {
    pub db: DatabaseConnection,
    pub mailer: crate::invites::Mailer,
    pub clock: Clock,
    pub email: Option<String>,
    pub webhook: bool,
}

impl Writer {
    pub async fn run(self, mut queue: mpsc::Receiver<Alert>, mut stop: watch::Receiver<bool>) {
        loop {
            let alert = tokio::select! {
                alert = queue.recv() => alert,
                _ = stop.wait_for(|stopping| *stopping) => None,
            };
            let Some(alert) = alert else { break };
            self.store(alert).await;
        }
        // Stopping: what was noticed is still stored (and sent at the next start if not now).
        while let Ok(alert) = queue.try_recv() {
            self.store(alert).await;
        }
    }

    async fn store(&self, alert: Alert) {
        match self.insert(&alert).await {
            Ok(true) => {
                tracing::info!(kind = alert.kind, key = %alert.key, "alert raised");
                self.mailer.wake();
            }
            Ok(false) => tracing::debug!(key = %alert.key, "alert already raised"),
            Err(err) => tracing::warn!(key = %alert.key, "storing an alert: {err}"),
        }
    }

    /// `false` when the event was raised before (its key is taken).
    async fn insert(&self, alert: &Alert) -> Result<bool, DbErr> {
        let now = self.clock.now();
        let payload = json!({
            "id": alert.key,
            "type": alert.kind,
            "created_at": now,
            "brand_id": alert.brand_id,
            "data": alert.data,
        })
        .to_string();
        let txn = self.db.begin().await?;
        let event = alert_event::ActiveModel {
            event_key: Set(alert.key.clone()),
            kind: Set(alert.kind.to_owned()),
            brand_id: Set(alert.brand_id),
            payload: Set(payload.clone()),
            created_at: Set(now),
            ..Default::default()
        };
        match event.insert(&txn).await {
            Ok(_) => {}
            Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                return Ok(false);
            }
            Err(err) => return Err(err),
        }
        if self.webhook {
            let mail = Mail {
                to: String::new(),
                subject: alert.kind.to_owned(),
                text: payload.clone(),
                html: String::new(),
            };
            queued(mail, "webhook", now).insert(&txn).await?;
        }
        if let Some(to) = &self.email {
            queued(email(to, alert, &payload), "email", now)
                .insert(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(true)
    }
}

fn email(to: &str, alert: &Alert, payload: &str) -> Mail {
    let pretty = serde_json::from_str::<serde_json::Value>(payload)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| payload.to_owned());
    let escaped = pretty
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    Mail {
        to: to.to_owned(),
        subject: format!("[SpiderGate] {}", alert.kind),
        text: format!("SpiderGate raised an alert: {}\n\n{pretty}\n", alert.kind),
        html: format!(
            "<p>SpiderGate raised an alert: <b>{}</b></p><pre>{escaped}</pre>",
            alert.kind
        ),
    }
}

/// A brand's alerts, newest first, and how many it has in all.
pub async fn list(
    db: &DatabaseConnection,
    brand_id: i32,
    limit: u64,
    offset: u64,
) -> Result<(Vec<alert_event::Model>, u64), DbErr> {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
    let of_brand = || alert_event::Entity::find().filter(alert_event::Column::BrandId.eq(brand_id));
    let total = of_brand().count(db).await?;
    let rows = of_brand()
        .order_by_desc(alert_event::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((rows, total))
}
