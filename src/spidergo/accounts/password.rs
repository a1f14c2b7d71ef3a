//! Argon2id password hashes (OWASP's parameters by default), computed on the blocking pool so a
//! sign-in never stalls an async worker.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::{Arc, OnceLock};

/// Hashes and checks passwords with one set of parameters.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    /// A hash of nothing anyone knows, checked when the email is unknown so that answer takes as
    /// long as a wrong password does. Made at the first such sign-in, not at start-up.
    decoy: Arc<OnceLock<String>>,
}

impl Passwords {
    pub fn new(memory_kib: u32, iterations: u32) -> anyhow::Result<Passwords> {
        let params = Params::new(memory_kib, iterations, 1, None)
            .map_err(|err| anyhow::anyhow!("invalid config at `spidergo.argon2_*`: {err}"))?;
        Ok(Passwords {
            params,
            decoy: Arc::default(),
        })
    }

    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || hash_with(&params, &password)).await?
    }

    /// Whether `password` is the one `stored` was made from; with no stored hash (an unknown
    /// email) the decoy is checked and the answer is `false`.
    pub async fn verify(&self, password: String, stored: Option<String>) -> anyhow::Result<bool> {
        let known = stored.is_some();
        let (params, decoy) = (self.params.clone(), self.decoy.clone());
        let matched = tokio::task::spawn_blocking(move || {
            let stored = match stored {
                Some(stored) => stored,
                None => match decoy.get() {
                    Some(decoy) => decoy.clone(),
                    None => {
                        let made = hash_with(&params, &crate::random::hex_secret(16)?)?;
                        decoy.get_or_init(|| made).clone()
                    }
                },
            };
            let parsed = PasswordHash::new(&stored)
                .map_err(|err| anyhow::anyhow!("a stored password hash is malformed: {err}"))?;
            anyhow::Ok(
                argon(&params)
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok(),
            )
        })
        .await??;
        Ok(known && matched)
    }
}

fn argon(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_with(params: &Params, password: &str) -> anyhow::Result<String> {
    argon(params)
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|err| anyhow::anyhow!("hashing a password: {err}"))
}

#[cfg(test)]
mod tests {
    use super::Passwords;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let passwords = Passwords::new(64, 1).unwrap();
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        assert!(
            passwords
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify("correct hors".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(!passwords.verify("anything".into(), None).await.unwrap());
    }
}
