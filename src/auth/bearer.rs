//! Parsing `Authorization: Bearer …` into one of the two credential formats, without any lookup.

use crate::error::{ApiError, ErrorCode};

pub const PAT_PREFIX: &str = "spideriq_pat_";
pub const PAT_HEX_LEN: usize = 32;

/// A well-formed credential, borrowed from the header.
#[derive(PartialEq, Eq)]
pub enum Credential<'a> {
    /// `spideriq_pat_` + 32 lowercase hex.
    Pat(&'a str),
    /// `cli_<16 hex>:key_<32 hex>:secret_<48 hex>`.
    Triple {
        client_id: &'a str,
        api_key: &'a str,
        api_secret: &'a str,
    },
    /// Anything else that is non-empty: only the operator token can match it.
    Opaque(&'a str),
}

impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Pat(_) => f.write_str("Pat(..)"),
            Credential::Triple { client_id, .. } => write!(f, "Triple({client_id}, ..)"),
            Credential::Opaque(_) => f.write_str("Opaque(..)"),
        }
    }
}

/// Splits the header into a credential. `None`/empty → `missing_api_key`; a scheme other than
/// Bearer or a value that is not UTF-8 → `invalid_token_format`.
pub fn parse_bearer(header: Option<&[u8]>) -> Result<Credential<'_>, ApiError> {
    let raw = header.unwrap_or_default();
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err(bad_format());
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::new(
            ErrorCode::MissingApiKey,
            "missing API key: send `Authorization: Bearer <token>`",
        ));
    }
    let token = match text.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        None if text.eq_ignore_ascii_case("bearer") => "",
        _ => return Err(bad_format()),
    };
    if token.is_empty() {
        return Err(ApiError::new(
            ErrorCode::MissingApiKey,
            "missing API key after `Bearer`",
        ));
    }
    Ok(classify(token))
}

fn classify(token: &str) -> Credential<'_> {
    if let Some(hex) = token.strip_prefix(PAT_PREFIX) {
        if is_lower_hex(hex, PAT_HEX_LEN) {
            return Credential::Pat(token);
        }
        return Credential::Opaque(token);
    }
    let mut parts = token.split(':');
    if let (Some(c), Some(k), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
        && has_hex_body(c, "cli_", 16)
        && has_hex_body(k, "key_", 32)
        && has_hex_body(s, "secret_", 48)
    {
        return Credential::Triple {
            client_id: c,
            api_key: k,
            api_secret: s,
        };
    }
    Credential::Opaque(token)
}

fn has_hex_body(part: &str, prefix: &str, len: usize) -> bool {
    part.strip_prefix(prefix)
        .is_some_and(|hex| is_lower_hex(hex, len))
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// 401 `invalid_token_format`.
pub fn bad_format() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidTokenFormat,
        "the bearer token is neither a client credential (cli_…:key_…:secret_…) nor an agent token (spideriq_pat_…)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAT: &str = "spideriq_pat_0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d";

    fn code(header: Option<&[u8]>) -> Result<&'static str, ErrorCode> {
        parse_bearer(header)
            .map(|c| match c {
                Credential::Pat(_) => "pat",
                Credential::Triple { .. } => "triple",
                Credential::Opaque(_) => "opaque",
            })
            .map_err(|e| e.code())
    }

    #[test]
    fn headers_classify_as_the_contract_says() {
        let triple = format!(
            "Bearer cli_{}:key_{}:secret_{}",
            "a".repeat(16),
            "b".repeat(32),
            "c".repeat(48)
        );
        type Case<'a> = (Option<&'a [u8]>, Result<&'a str, ErrorCode>);
        let cases: Vec<Case> = vec![
            (None, Err(ErrorCode::MissingApiKey)),
            (Some(b"   "), Err(ErrorCode::MissingApiKey)),
            (Some(b"Bearer "), Err(ErrorCode::MissingApiKey)),
            (Some(b"Basic abc"), Err(ErrorCode::InvalidTokenFormat)),
            (Some(b"Bearer\xff\xfe"), Err(ErrorCode::InvalidTokenFormat)),
            (
                Some(b"spideriq_pat_0a1b"),
                Err(ErrorCode::InvalidTokenFormat),
            ),
            (
                Some(format!("Bearer {PAT}").as_bytes().to_vec().leak()),
                Ok("pat"),
            ),
            (
                Some(format!("bearer {PAT}").as_bytes().to_vec().leak()),
                Ok("pat"),
            ),
            (Some(triple.as_bytes().to_vec().leak()), Ok("triple")),
            (Some(b"Bearer spideriq_pat_XYZ"), Ok("opaque")),
            (Some(b"Bearer cli_1:key_2:secret_3"), Ok("opaque")),
        ];
        for (header, expected) in cases {
            assert_eq!(
                code(header),
                expected,
                "{:?}",
                header.map(String::from_utf8_lossy)
            );
        }
    }
}
