//! Random secrets from the operating system's CSPRNG.

/// `bytes` random bytes as lowercase hex (`2 * bytes` characters).
///
/// Fails closed: if the OS cannot supply randomness we refuse to mint a secret.
pub fn hex_secret(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|err| anyhow::anyhow!("OS randomness unavailable: {err}"))?;
    Ok(hex::encode(buf))
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_have_the_asked_length_and_differ() {
        let a = super::hex_secret(16).expect("randomness");
        let b = super::hex_secret(16).expect("randomness");
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
