//! Re-authentication: when a key is disabled after repeated authentication failures, its
//! contributor (or, for a key nobody contributed, the brand's contact email) gets a
//! `/reauth/<token>` link that replaces the credential of the same key in place.

use super::link::{self, LinkRequest};
use super::store::{self, InviteKind};
use crate::brands;
use crate::state::AppState;
use crate::vault::Owner;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

/// Runs for the life of the server: one re-auth email per disabled key. When `stop` fires it
/// queues the emails of keys already disabled, then returns.
pub async fn listen(
    mut disabled: UnboundedReceiver<i32>,
    state: AppState,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let integration_id = tokio::select! {
            next = disabled.recv() => match next {
                Some(id) => id,
                None => return,
            },
            _ = stop.changed() => break,
        };
        queue(&state, integration_id).await;
    }
    while let Ok(integration_id) = disabled.try_recv() {
        queue(&state, integration_id).await;
    }
}

async fn queue(state: &AppState, integration_id: i32) {
    if let Err(err) = request(state, integration_id).await {
        tracing::warn!(integration_id, "re-auth email not queued: {err:#}");
    }
}

async fn request(state: &AppState, integration_id: i32) -> anyhow::Result<()> {
    let Some(key) = state.vault.snapshot().get(integration_id).cloned() else {
        return Ok(());
    };
    let Owner::Brand(brand_id) = key.record.owner else {
        tracing::warn!(
            integration_id,
            "a pool key was disabled; the operator must replace it"
        );
        return Ok(());
    };
    let recipient = match store::contributor_of(&state.db, integration_id).await? {
        Some(email) => Some(email),
        None => brands::manage::contact_email(&state.db, brand_id).await?,
    };
    let Some(to) = recipient else {
        tracing::warn!(
            integration_id,
            "disabled key has no contributor and its brand no contact email"
        );
        return Ok(());
    };
    let brand = brands::manage::brand_name(&state.db, brand_id)
        .await?
        .unwrap_or_default();
    let provider = state
        .catalog
        .load()
        .provider(&key.record.provider)
        .map_or(key.record.provider.clone(), |p| p.label.clone());
    let request = LinkRequest {
        kind: InviteKind::Reauth,
        brand_id,
        brand_name: &brand,
        to: &to,
        provider_id: &key.record.provider,
        provider_label: &provider,
        message: None,
        integration_id: Some(integration_id),
    };
    link::issue(state, request).await?;
    tracing::info!(integration_id, "re-auth email queued");
    Ok(())
}
