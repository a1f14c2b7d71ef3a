//! Fernet encryption of credentials and keyed HMAC fingerprints, under the configured vault keys.
//!
//! The first vault key encrypts; every key decrypts, so a new key can be put first and the old one
//! kept until `spidergate vault re-encrypt` has moved every row. Fingerprints use a key derived from
//! each vault key, so duplicates are detected whichever key wrote the row.

use super::credentials::Credentials;
use crate::secret::Secret;
use anyhow::{Context, bail};
use fernet::{Fernet, MultiFernet};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

pub struct VaultCipher {
    fernet: MultiFernet,
    /// One HMAC key per vault key, in config order; the first is the one new rows use.
    fingerprint_keys: Vec<[u8; 32]>,
}

impl std::fmt::Debug for VaultCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VaultCipher({} keys)", self.fingerprint_keys.len())
    }
}

impl VaultCipher {
    /// `None` when no vault key is configured (the vault then refuses to store credentials).
    pub fn from_keys(keys: &[Secret]) -> anyhow::Result<Option<VaultCipher>> {
        if keys.is_empty() {
            return Ok(None);
        }
        let mut fernets = Vec::with_capacity(keys.len());
        let mut fingerprint_keys = Vec::with_capacity(keys.len());
        for (at, key) in keys.iter().enumerate() {
            let Some(fernet) = Fernet::new(key.expose()) else {
                bail!(
                    "invalid config at `vault.keys[{at}]`: not a Fernet key (32 bytes, url-safe base64)"
                );
            };
            fernets.push(fernet);
            let mut derived = Sha256::new();
            derived.update(b"spidergate/fingerprint/v1");
            derived.update(key.expose().as_bytes());
            fingerprint_keys.push(derived.finalize().into());
        }
        Ok(Some(VaultCipher {
            fernet: MultiFernet::new(fernets),
            fingerprint_keys,
        }))
    }

    pub fn encrypt(&self, credentials: &Credentials) -> String {
        self.fernet
            .encrypt(credentials.to_json().expose().as_bytes())
    }

    pub fn decrypt(&self, token: &str) -> anyhow::Result<Credentials> {
        let plain = self
            .fernet
            .decrypt(token)
            .map_err(|_| anyhow::anyhow!("no configured vault key decrypts this credential"))?;
        let text = String::from_utf8(plain).context("decrypted credential is not UTF-8")?;
        Credentials::from_json(&Secret::new(text))
    }

    /// The fingerprint new rows store (under the first key).
    pub fn fingerprint(&self, provider: &str, credentials: &Credentials) -> String {
        fingerprint_with(&self.fingerprint_keys[0], provider, credentials)
    }

    /// The fingerprint under every configured key, for duplicate detection across a rotation.
    pub fn all_fingerprints(&self, provider: &str, credentials: &Credentials) -> Vec<String> {
        self.fingerprint_keys
            .iter()
            .map(|k| fingerprint_with(k, provider, credentials))
            .collect()
    }
}

fn fingerprint_with(key: &[u8; 32], provider: &str, credentials: &Credentials) -> String {
    #[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(provider.as_bytes());
    mac.update(b"\0");
    mac.update(credentials.identity_json().expose().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(key: &str) -> Credentials {
        Credentials::from_json(&Secret::new(format!(r#"{{"api_key":"{key}"}}"#))).expect("valid")
    }

    #[test]
    fn rows_written_under_key_1_decrypt_after_key_2_is_put_first() {
        let key1 = Secret::new(Fernet::generate_key());
        let key2 = Secret::new(Fernet::generate_key());
        let old = VaultCipher::from_keys(std::slice::from_ref(&key1))
            .expect("valid")
            .expect("configured");
        let token = old.encrypt(&creds("sk-one"));
        let fingerprint = old.fingerprint("openai", &creds("sk-one"));

        let rotated = VaultCipher::from_keys(&[key2.clone(), key1])
            .expect("valid")
            .expect("configured");
        assert_eq!(
            rotated
                .decrypt(&token)
                .expect("old row decrypts")
                .get("api_key"),
            Some("sk-one")
        );
        assert!(
            rotated
                .all_fingerprints("openai", &creds("sk-one"))
                .contains(&fingerprint)
        );
        assert_ne!(
            rotated.fingerprint("openai", &creds("sk-one")),
            fingerprint,
            "new rows use key 2"
        );

        let only_new = VaultCipher::from_keys(&[key2])
            .expect("valid")
            .expect("configured");
        assert!(
            only_new.decrypt(&token).is_err(),
            "key 1 removed: its rows no longer decrypt"
        );
        assert!(only_new.decrypt(&rotated.encrypt(&creds("sk-two"))).is_ok());
    }

    #[test]
    fn fingerprints_separate_providers_and_credentials() {
        let cipher = VaultCipher::from_keys(&[Secret::new(Fernet::generate_key())])
            .expect("valid")
            .expect("configured");
        let a = cipher.fingerprint("openai", &creds("sk-a"));
        assert_eq!(a, cipher.fingerprint("openai", &creds("sk-a")));
        assert_ne!(a, cipher.fingerprint("groq", &creds("sk-a")));
        assert_ne!(a, cipher.fingerprint("openai", &creds("sk-b")));
        assert!(!a.contains("sk-a"));
    }

    #[test]
    fn a_bad_key_is_refused_naming_its_position() {
        let err = VaultCipher::from_keys(&[Secret::new("short")]).expect_err("invalid key");
        assert!(err.to_string().contains("vault.keys[0]"), "{err}");
    }
}
