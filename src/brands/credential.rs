//! The client credential triple: generated from the OS CSPRNG, returned once.

use crate::auth::Digest;
use crate::random::hex_secret;
use crate::secret::Secret;

/// A freshly generated `cli_…:key_…:secret_…`. Only its digests are ever stored.
pub struct ClientCredential {
    pub client_id: String,
    api_key: Secret,
    api_secret: Secret,
}

impl ClientCredential {
    /// A new credential for a new brand (new `client_id`).
    pub fn generate() -> anyhow::Result<Self> {
        Self::generate_for(format!("cli_{}", hex_secret(8)?))
    }

    /// A new key and secret for an existing `client_id` (rotation).
    pub fn generate_for(client_id: String) -> anyhow::Result<Self> {
        Ok(Self {
            client_id,
            api_key: Secret::new(format!("key_{}", hex_secret(16)?)),
            api_secret: Secret::new(format!("secret_{}", hex_secret(24)?)),
        })
    }

    pub fn key_digest(&self) -> Digest {
        Digest::of(self.api_key.expose())
    }

    pub fn secret_digest(&self) -> Digest {
        Digest::of(self.api_secret.expose())
    }

    /// The bearer value to hand to the operator, once.
    pub fn bearer(&self) -> Secret {
        Secret::new(format!(
            "{}:{}:{}",
            self.client_id,
            self.api_key.expose(),
            self.api_secret.expose()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::ClientCredential;
    use crate::auth::{Credential, parse_bearer};

    #[test]
    fn generated_credentials_parse_as_triples() {
        let cred = ClientCredential::generate().expect("randomness");
        let header = format!("Bearer {}", cred.bearer().expose());
        let parsed = parse_bearer(Some(header.as_bytes())).expect("well-formed");
        assert!(
            matches!(parsed, Credential::Triple { client_id, .. } if client_id == cred.client_id)
        );
    }
}
