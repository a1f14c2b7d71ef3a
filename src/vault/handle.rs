//! `Vault`: what the rest of the app uses. Reads the snapshot; writes go through the actor.

use super::actor::{Remove, SetCredentials, UpdateRecord, Upsert, VaultActor};
use super::credentials::Credentials;
use super::crypto::VaultCipher;
use super::key::{KeyRecord, VaultKey};
use super::snapshot::VaultSnapshot;
use super::store;
use crate::clock::Clock;
use crate::health::HealthStatus;
use actix::{Actor, Addr, Handler, Message};
use arc_swap::{ArcSwap, Guard};
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc::UnboundedSender;

#[derive(Clone)]
pub struct Vault {
    snapshot: Arc<ArcSwap<VaultSnapshot>>,
    actor: Addr<VaultActor>,
    cipher: Option<Arc<VaultCipher>>,
    db: DatabaseConnection,
    /// Told the id of every key disabled for authentication failures (re-auth emails).
    disabled: Option<UnboundedSender<i32>>,
    clock: Clock,
    /// Rounds the OAuth refresher has completed (each looks for due tokens once).
    refresh_rounds: Arc<AtomicU64>,
}

impl Vault {
    /// Loads and decrypts every key, then starts the actor. A row that no configured vault key
    /// decrypts is skipped with an error in the log (the server still starts; that key is unusable).
    pub async fn start(
        db: &DatabaseConnection,
        cipher: Option<VaultCipher>,
        disabled: Option<UnboundedSender<i32>>,
        clock: Clock,
    ) -> anyhow::Result<Vault> {
        let rows = store::load_all(db).await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(cipher) = cipher.as_ref() else {
                tracing::error!(
                    integration_id = row.record.id,
                    "no vault key configured: provider key left unusable"
                );
                continue;
            };
            match cipher.decrypt(&row.credentials_enc) {
                Ok(credentials) => keys.push(VaultKey {
                    record: row.record,
                    credentials,
                }),
                Err(err) => tracing::error!(integration_id = row.record.id, "{err}"),
            }
        }
        let snapshot = Arc::new(ArcSwap::from_pointee(VaultSnapshot::default()));
        let actor = VaultActor::new(keys, snapshot.clone()).start();
        Ok(Vault {
            snapshot,
            actor,
            cipher: cipher.map(Arc::new),
            db: db.clone(),
            disabled,
            clock,
            refresh_rounds: Arc::default(),
        })
    }

    /// How many rounds the OAuth refresher has completed: a round that starts after a change
    /// has seen it.
    pub fn refresh_rounds(&self) -> u64 {
        self.refresh_rounds.load(Ordering::Relaxed)
    }

    pub(super) fn count_refresh_round(&self) {
        self.refresh_rounds.fetch_add(1, Ordering::Relaxed);
    }

    /// The app's clock reading, for the timestamps of the rows the vault writes.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The current keys. Never waits.
    pub fn snapshot(&self) -> Guard<Arc<VaultSnapshot>> {
        self.snapshot.load()
    }

    pub fn cipher(&self) -> Option<&VaultCipher> {
        self.cipher.as_deref()
    }

    pub(super) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Persists a health transition (called by the health actors, off the request path).
    pub async fn write_health(
        &self,
        id: i32,
        status: HealthStatus,
        failures: u32,
        error: Option<String>,
        used: Option<DateTime<Utc>>,
    ) {
        if let Err(err) = store::write_health(
            &self.db,
            id,
            status.as_str(),
            failures,
            error.as_deref(),
            used,
        )
        .await
        {
            tracing::warn!(integration_id = id, "writing key health: {err}");
        }
    }

    /// Takes a key out of rotation after repeated authentication failures: `is_active: false`,
    /// `disabled_reason: "auth_failed"`, in the database and in the published snapshot.
    pub async fn disable_for_auth_failures(&self, id: i32) {
        let Some(key) = self.snapshot().get(id).cloned() else {
            return;
        };
        let mut record = key.record.clone();
        record.is_active = false;
        record.disabled_reason = Some("auth_failed".into());
        match store::update_settings(&self.db, &record, self.clock.now()).await {
            Ok(stored) => {
                tracing::warn!(integration_id = id, provider = %record.provider, "key disabled after repeated authentication failures");
                self.update_record(stored.record, None).await;
                if let Some(disabled) = &self.disabled {
                    let _ = disabled.send(id);
                }
            }
            Err(err) => tracing::error!(integration_id = id, "disabling key: {err}"),
        }
    }

    /// Publishes a written key; returns once routing can see it.
    pub async fn upsert(&self, key: VaultKey) {
        self.publish(Upsert(key)).await;
    }

    /// Publishes a key's written settings, keeping the credential the vault holds (`fallback`
    /// for a key it does not hold yet); returns once routing can see them.
    pub async fn update_record(&self, record: KeyRecord, fallback: Option<Credentials>) {
        self.publish(UpdateRecord { record, fallback }).await;
    }

    /// Publishes a key's written new credential (an OAuth refresh), keeping its settings.
    pub async fn set_credentials(&self, id: i32, credentials: Credentials) {
        self.publish(SetCredentials { id, credentials }).await;
    }

    pub async fn remove(&self, id: i32) {
        self.publish(Remove(id)).await;
    }

    /// Re-reads key `id` after another replica wrote it: decrypted here, from the row (decrypted
    /// credentials never travel between replicas); a deleted row leaves the snapshot.
    pub async fn reload(&self, id: i32) -> anyhow::Result<()> {
        let Some(row) = store::find_any(&self.db, id).await? else {
            self.remove(id).await;
            return Ok(());
        };
        let Some(cipher) = self.cipher() else {
            anyhow::bail!("no vault key configured: key {id} left unusable");
        };
        let credentials = cipher.decrypt(&row.credentials_enc)?;
        self.upsert(VaultKey {
            record: row.record,
            credentials,
        })
        .await;
        Ok(())
    }

    /// Hands a change to the actor and waits until it is published. The row is already written,
    /// so if the actor is gone (shutdown) the change is only missing from memory.
    async fn publish<M>(&self, change: M)
    where
        M: Message<Result = ()> + Send + 'static,
        VaultActor: Handler<M>,
    {
        if self.actor.send(change).await.is_err() {
            tracing::error!("vault actor is gone; a key change was not published");
        }
    }
}
