//! SHA-256 digests of secrets, compared in constant time.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// The SHA-256 of a secret. What we store and compare instead of the secret itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Parses the lowercase hex form kept in the database.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// Constant-time equality, so response timing says nothing about how much of a secret matched.
    pub fn matches(&self, other: &Digest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Digest(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::Digest;

    #[test]
    fn hex_round_trips_and_matching_is_exact() {
        let digest = Digest::of("secret_abc");
        assert_eq!(Digest::from_hex(&digest.to_hex()), Some(digest));
        assert!(digest.matches(&Digest::of("secret_abc")));
        assert!(!digest.matches(&Digest::of("secret_abd")));
        assert_eq!(Digest::from_hex("zz"), None);
    }
}
