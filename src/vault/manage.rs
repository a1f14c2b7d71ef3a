//! Creating, editing and deleting keys: validate, encrypt, write, then publish to the vault.

use super::credentials::Credentials;
use super::handle::Vault;
use super::key::{KeyRecord, Owner, VaultKey};
use super::store;
use crate::catalog::Catalog;
use crate::error::{ApiError, ErrorCode};
use crate::money::Money;
use serde::Deserialize;

/// The body of `POST` (provider and credentials required) and `PATCH` (both refused).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationFields {
    /// A catalog provider id; required on `POST`, refused on `PATCH`.
    provider_name: Option<String>,
    /// The provider's credential fields (`{"api_key": …}`); required on `POST`, refused on `PATCH`.
    #[schema(value_type = Option<Object>)]
    credentials: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "crate::json::present")]
    #[schema(value_type = Option<String>)]
    key_label: Option<Option<String>>,
    is_active: Option<bool>,
    is_primary: Option<bool>,
    #[serde(default, deserialize_with = "crate::json::present")]
    #[schema(value_type = Option<u32>)]
    daily_limit: Option<Option<u32>>,
    #[serde(default, deserialize_with = "crate::json::present")]
    #[schema(value_type = Option<u32>)]
    minute_limit: Option<Option<u32>>,
    #[serde(default, deserialize_with = "crate::json::present")]
    #[schema(value_type = Option<f64>)]
    spend_limit_amount: Option<Option<f64>>,
    spend_limit_period: Option<String>,
    spend_limit_action: Option<String>,
    share_with_pool: Option<bool>,
}

impl IntegrationFields {
    /// Settings that only name the key.
    pub fn labelled(label: String) -> Self {
        IntegrationFields {
            key_label: Some(Some(label)),
            ..Default::default()
        }
    }

    /// Applies the editable fields to `r`, validating each.
    fn apply(self, r: &mut KeyRecord) -> Result<(), ApiError> {
        if let Some(label) = self.key_label {
            r.key_label = label.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty());
        }
        if let Some(active) = self.is_active {
            if active && !r.is_active {
                r.disabled_reason = None;
            }
            r.is_active = active;
        }
        if let Some(primary) = self.is_primary {
            r.is_primary = primary;
        }
        if let Some(limit) = self.daily_limit {
            r.daily_limit = crate::json::positive_limit("daily_limit", limit)?;
        }
        if let Some(limit) = self.minute_limit {
            r.minute_limit = crate::json::positive_limit("minute_limit", limit)?;
        }
        if let Some(amount) = self.spend_limit_amount {
            r.spend_limit = amount
                .map(|usd| {
                    Money::from_usd(usd).ok_or_else(|| {
                        ApiError::invalid_field(
                            "spend_limit_amount",
                            "must be a non-negative amount of USD",
                        )
                    })
                })
                .transpose()?;
        }
        if let Some(period) = self.spend_limit_period {
            r.spend_limit_period = one_of("spend_limit_period", period, &["daily", "monthly"])?;
        }
        if let Some(action) = self.spend_limit_action {
            r.spend_limit_action = one_of("spend_limit_action", action, &["warn", "block"])?;
        }
        if let Some(shared) = self.share_with_pool {
            r.share_with_pool = shared;
        }
        Ok(())
    }
}

fn one_of(field: &str, value: String, allowed: &[&str]) -> Result<String, ApiError> {
    if allowed.contains(&value.as_str()) {
        return Ok(value);
    }
    Err(ApiError::invalid_field(
        field,
        format!("must be one of: {}", allowed.join(", ")),
    ))
}

/// 400 naming every provider, as the seed's error does.
pub fn unknown_provider(catalog: &Catalog) -> ApiError {
    let names: Vec<&str> = catalog.providers().iter().map(|p| p.id.as_str()).collect();
    ApiError::new(
        ErrorCode::InvalidRequest,
        format!("Invalid provider_name. Supported: {}", names.join(", ")),
    )
    .with_param("provider_name")
}

/// Validates `provider_name` and `credentials` of a request.
pub fn parse_credentials(
    catalog: &Catalog,
    provider: Option<&str>,
    credentials: Option<&serde_json::Value>,
) -> Result<(String, Credentials), ApiError> {
    let Some(provider) = provider.and_then(|p| catalog.provider(p)) else {
        return Err(unknown_provider(catalog));
    };
    let credentials =
        credentials.ok_or_else(|| ApiError::invalid_field("credentials", "is required"))?;
    let credentials = Credentials::from_request(provider, credentials)
        .map_err(|problem| ApiError::invalid_field("credentials", problem))?;
    Ok((provider.id.clone(), credentials))
}

fn no_vault_key() -> ApiError {
    ApiError::new(
        ErrorCode::ServiceUnavailable,
        "no vault key is configured, so credentials cannot be stored: set SPIDERGATE_VAULT_KEY (create one with `spidergate vault generate-key`)",
    )
}

/// Stores a new key for `owner` from a request; 409 `duplicate_key` when the same credential is
/// already there.
pub async fn create_key(
    vault: &Vault,
    catalog: &Catalog,
    owner: Owner,
    fields: IntegrationFields,
) -> Result<KeyRecord, ApiError> {
    let (provider, credentials) = parse_credentials(
        catalog,
        fields.provider_name.as_deref(),
        fields.credentials.as_ref(),
    )?;
    let settings = IntegrationFields {
        provider_name: None,
        credentials: None,
        ..fields
    };
    create_key_with(vault, owner, provider, credentials, settings).await
}

/// Stores a new key for `owner` with an already validated credential (pasted through an invite,
/// or granted by OAuth sign-in) and the editable `settings`.
pub async fn create_key_with(
    vault: &Vault,
    owner: Owner,
    provider: String,
    credentials: Credentials,
    settings: IntegrationFields,
) -> Result<KeyRecord, ApiError> {
    let cipher = vault.cipher().ok_or_else(no_vault_key)?;
    let now = vault.now();
    let mut record = KeyRecord {
        id: 0,
        owner,
        provider: provider.clone(),
        key_label: None,
        key_preview: credentials.preview(),
        is_active: true,
        is_primary: false,
        share_with_pool: false,
        daily_limit: None,
        minute_limit: None,
        spend_limit: None,
        spend_limit_period: "monthly".into(),
        spend_limit_action: "warn".into(),
        consecutive_failures: 0,
        last_used_at: None,
        last_error: None,
        disabled_reason: None,
        created_at: now,
        updated_at: now,
    };
    settings.apply(&mut record)?;
    let fingerprints = cipher.all_fingerprints(&provider, &credentials);
    if store::has_fingerprint(vault.db(), owner, &provider, &fingerprints).await? {
        return Err(ApiError::new(
            ErrorCode::DuplicateKey,
            "A key with this credential already exists for this provider",
        ));
    }
    let stored = store::insert_key(
        vault.db(),
        &record,
        cipher.encrypt(&credentials),
        cipher.fingerprint(&provider, &credentials),
    )
    .await?;
    vault
        .upsert(VaultKey {
            record: stored.record.clone(),
            credentials,
        })
        .await;
    Ok(stored.record)
}

/// Re-authentication: a new, already validated credential for key `id`, in place (same id,
/// label, sharing, limits and history), back in rotation. The caller resets its health.
pub async fn replace_credentials(
    vault: &Vault,
    owner: Owner,
    id: i32,
    credentials: Credentials,
) -> Result<KeyRecord, ApiError> {
    let cipher = vault.cipher().ok_or_else(no_vault_key)?;
    let stored = store::find_key(vault.db(), owner, id)
        .await?
        .ok_or_else(not_found)?;
    let mut record = stored.record;
    record.key_preview = credentials.preview();
    record.is_active = true;
    record.disabled_reason = None;
    let fingerprint = cipher.fingerprint(&record.provider, &credentials);
    store::replace_secret(
        vault.db(),
        id,
        cipher.encrypt(&credentials),
        fingerprint,
        Some(&record.key_preview),
    )
    .await?;
    let stored = store::update_settings(vault.db(), &record, vault.now()).await?;
    vault
        .upsert(VaultKey {
            record: stored.record.clone(),
            credentials,
        })
        .await;
    Ok(stored.record)
}

/// Key `id`'s credential as the database holds it (another replica may have refreshed it).
pub async fn stored_credentials(
    vault: &Vault,
    owner: Owner,
    id: i32,
) -> anyhow::Result<Option<Credentials>> {
    let cipher = vault
        .cipher()
        .ok_or_else(|| anyhow::anyhow!("no vault key is configured"))?;
    let Some(stored) = store::find_key(vault.db(), owner, id).await? else {
        return Ok(None);
    };
    Ok(Some(cipher.decrypt(&stored.credentials_enc)?))
}

/// An OAuth refresh: writes key `id`'s new tokens (encrypted) and puts them into rotation,
/// leaving every setting as it is.
pub async fn store_refreshed(
    vault: &Vault,
    id: i32,
    provider: &str,
    credentials: Credentials,
) -> anyhow::Result<()> {
    let cipher = vault
        .cipher()
        .ok_or_else(|| anyhow::anyhow!("no vault key is configured"))?;
    store::replace_secret(
        vault.db(),
        id,
        cipher.encrypt(&credentials),
        cipher.fingerprint(provider, &credentials),
        Some(&credentials.preview()),
    )
    .await?;
    vault.set_credentials(id, credentials).await;
    Ok(())
}

/// Applies a PATCH; provider and credentials are immutable.
pub async fn update_key(
    vault: &Vault,
    owner: Owner,
    id: i32,
    fields: IntegrationFields,
) -> Result<(KeyRecord, bool), ApiError> {
    if fields.provider_name.is_some() || fields.credentials.is_some() {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "provider_name and credentials cannot be changed; add a new key instead",
        ));
    }
    let stored = store::find_key(vault.db(), owner, id)
        .await?
        .ok_or_else(not_found)?;
    let mut record = stored.record;
    let was_active = record.is_active;
    fields.apply(&mut record)?;
    let stored = store::update_settings(vault.db(), &record, vault.now()).await?;
    let fallback = match vault.snapshot().get(id) {
        Some(_) => None,
        None => Some(
            vault
                .cipher()
                .ok_or_else(no_vault_key)?
                .decrypt(&stored.credentials_enc)
                .map_err(ApiError::internal)?,
        ),
    };
    vault.update_record(stored.record.clone(), fallback).await;
    Ok((stored.record, !was_active && record.is_active))
}

/// Deletes the key (its spend history stays in the ledger).
pub async fn delete_key(vault: &Vault, owner: Owner, id: i32) -> Result<(), ApiError> {
    store::find_key(vault.db(), owner, id)
        .await?
        .ok_or_else(not_found)?;
    store::delete_key(vault.db(), id).await?;
    vault.remove(id).await;
    Ok(())
}

pub async fn find_key(vault: &Vault, owner: Owner, id: i32) -> Result<KeyRecord, ApiError> {
    Ok(store::find_key(vault.db(), owner, id)
        .await?
        .ok_or_else(not_found)?
        .record)
}

pub async fn list_keys(vault: &Vault, owner: Owner) -> Result<Vec<KeyRecord>, ApiError> {
    Ok(store::list_keys(vault.db(), owner)
        .await?
        .into_iter()
        .map(|k| k.record)
        .collect())
}

pub fn not_found() -> ApiError {
    ApiError::not_found("integration")
}
