//! The PAT format: `spideriq_pat_` + 32 lowercase hex (128 random bits).

use crate::auth::Digest;
use crate::random::hex_secret;
use crate::secret::Secret;

const PREFIX: &str = "spideriq_pat_";

/// A freshly minted token: the secret to show once, its digest to store, its preview to display.
pub struct MintedToken {
    pub secret: Secret,
    pub digest: Digest,
    pub preview: String,
}

pub fn mint() -> anyhow::Result<MintedToken> {
    let hex = hex_secret(16)?;
    let preview = format!("{PREFIX}{}…{}", &hex[..4], &hex[hex.len() - 4..]);
    let secret = Secret::new(format!("{PREFIX}{hex}"));
    Ok(MintedToken {
        digest: Digest::of(secret.expose()),
        secret,
        preview,
    })
}

#[cfg(test)]
mod tests {
    use crate::auth::{Credential, Digest, parse_bearer};

    #[test]
    fn minted_tokens_parse_as_pats_and_preview_only_the_ends() {
        let token = super::mint().expect("randomness");
        let header = format!("Bearer {}", token.secret.expose());
        assert!(matches!(
            parse_bearer(Some(header.as_bytes())),
            Ok(Credential::Pat(_))
        ));
        assert_eq!(token.digest, Digest::of(token.secret.expose()));
        let hex = &token.secret.expose()["spideriq_pat_".len()..];
        assert_eq!(
            token.preview,
            format!("spideriq_pat_{}…{}", &hex[..4], &hex[28..])
        );
    }
}
