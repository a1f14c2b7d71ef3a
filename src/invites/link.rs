//! Issuing a signed link (invite or re-auth): the token, its email, and the outbox row, together.

use super::email::{self, InviteEmail};
use super::store::{self, InviteKind, InviteRecord, NewInvite};
use crate::auth::Digest;
use crate::random::hex_secret;
use crate::state::AppState;

/// Who gets a link, for what.
pub struct LinkRequest<'a> {
    pub kind: InviteKind,
    pub brand_id: i32,
    pub brand_name: &'a str,
    pub to: &'a str,
    pub provider_id: &'a str,
    pub provider_label: &'a str,
    pub message: Option<&'a str>,
    /// For re-auth: the key the link repairs.
    pub integration_id: Option<i32>,
}

/// Creates the link's row and its email in one transaction, then wakes the mailer. The token
/// exists only in the email; the database keeps its SHA-256.
pub async fn issue(state: &AppState, request: LinkRequest<'_>) -> anyhow::Result<InviteRecord> {
    let token = hex_secret(32)?;
    let now = state.clock.now();
    let hours = state.config.invites.ttl_hours;
    let link = format!(
        "{}/{}/{token}",
        state.config.server.public_url.trim_end_matches('/'),
        request.kind.as_str()
    );
    let content = InviteEmail {
        to: request.to,
        brand: request.brand_name,
        provider: request.provider_label,
        link: &link,
        message: request.message,
        valid_hours: hours,
    };
    let mail = match request.kind {
        InviteKind::NewKey => email::invite(&content),
        InviteKind::Reauth => email::reauth(&content),
    };
    let row = NewInvite {
        brand_id: request.brand_id,
        kind: request.kind,
        integration_id: request.integration_id,
        email: request.to,
        provider_name: request.provider_id,
        message: request.message,
        token_hash: Digest::of(&token).to_hex(),
        expires_at: now + chrono::Duration::hours(hours as i64),
    };
    let invite = store::insert_invite_with_mail(&state.db, row, mail, now).await?;
    state.mailer.wake();
    Ok(invite)
}
