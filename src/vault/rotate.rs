//! `spidergate vault re-encrypt`: moves every row under the first configured vault key.

use super::crypto::VaultCipher;
use super::store;
use sea_orm::DatabaseConnection;

/// Decrypts each row with any configured key and rewrites it (and its fingerprint) under the
/// first. Returns how many rows were rewritten; fails on the first row no key can decrypt,
/// having changed nothing for that row.
pub async fn reencrypt_all(db: &DatabaseConnection, cipher: &VaultCipher) -> anyhow::Result<usize> {
    let rows = store::load_all(db).await?;
    let mut count = 0;
    for row in rows {
        let credentials = cipher
            .decrypt(&row.credentials_enc)
            .map_err(|err| anyhow::anyhow!("integration {}: {err}", row.record.id))?;
        let fingerprint = cipher.fingerprint(&row.record.provider, &credentials);
        store::rewrite_secret(db, row.record.id, cipher.encrypt(&credentials), fingerprint).await?;
        count += 1;
    }
    Ok(count)
}
