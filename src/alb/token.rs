//! The `x-amzn-oidc-data` token taken apart: three base64url parts (padding tolerated, as ALB
//! writes it), the header, the raw `r || s` signature and the claims object.

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde::Deserialize;

use super::AlbError;
use crate::error::InvalidToken;

/// URL-safe base64 with its full `=` padding, as ALB writes it.
const BASE64URL_PADDED: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// URL-safe base64 without padding, as JWS (RFC 7515) writes it.
const BASE64URL_UNPADDED: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// The longest `kid` accepted. ALB key ids are UUIDs (36 characters).
const MAX_KID_LEN: usize = 64;

/// The JOSE header of an ALB token. Duplicate members are refused by serde.
#[derive(Deserialize)]
pub(super) struct Header {
    pub(super) alg: String,
    #[serde(default)]
    pub(super) kid: Option<String>,
    #[serde(default)]
    pub(super) signer: Option<String>,
    #[serde(default)]
    pub(super) iss: Option<String>,
    #[serde(default)]
    pub(super) client: Option<String>,
    #[serde(default)]
    pub(super) exp: Option<serde_json::Number>,
    #[serde(default)]
    pub(super) crit: Option<serde::de::IgnoredAny>,
}

/// A token split and decoded, not yet verified.
pub(super) struct Parts<'a> {
    /// `header.payload` exactly as sent: what the signature covers.
    pub(super) signing_input: &'a [u8],
    pub(super) header: Header,
    pub(super) payload: Vec<u8>,
    pub(super) signature: Vec<u8>,
}

fn malformed() -> AlbError {
    AlbError::InvalidToken(InvalidToken::Malformed)
}

/// One part, with its full padding or none at all (never partial padding, trailing bits or
/// characters outside the base64url alphabet).
fn decode(segment: &str) -> Result<Vec<u8>, AlbError> {
    if segment.is_empty() {
        return Err(malformed());
    }
    let engine = if segment.ends_with('=') {
        &BASE64URL_PADDED
    } else {
        &BASE64URL_UNPADDED
    };
    engine.decode(segment).map_err(|_| malformed())
}

/// Splits `token` into its three parts and decodes the header.
pub(super) fn split(token: &str) -> Result<Parts<'_>, AlbError> {
    let mut segments = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(malformed());
    };
    let header: Header = serde_json::from_slice(&decode(h)?).map_err(|_| malformed())?;
    let payload = decode(p)?;
    let signature = decode(s)?;
    Ok(Parts {
        signing_input: &token.as_bytes()[..h.len() + 1 + p.len()],
        header,
        payload,
        signature,
    })
}

/// A `kid` safe to become one path segment: hexadecimal digits and `-` only (UUID-like), at
/// most 64 characters. Nothing that could be a `/`, `.`, `%` or a query survives this.
pub(super) fn valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// A JSON number as whole seconds, if it is one (`1.5e9` and fractions are not).
pub(super) fn seconds(n: &serde_json::Number) -> Option<i64> {
    n.as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_charset_is_strict() {
        assert!(valid_kid("b3a1fc2e-0c7f-4d6c-9a64-1d0a2e3f4b5c"));
        assert!(valid_kid("ABCDEF0123"));
        for bad in [
            "", "../x", "%2F", "a/b", "a.b", "a?b", "a#b", "a b", "g", "é", "a\0",
        ] {
            assert!(!valid_kid(bad), "{bad:?}");
        }
        assert!(!valid_kid(&"a".repeat(65)));
        assert!(valid_kid(&"a".repeat(64)));
    }

    #[test]
    fn padding_is_optional_but_bits_and_alphabet_are_strict() {
        assert_eq!(decode("YQ").unwrap(), b"a");
        assert_eq!(decode("YQ==").unwrap(), b"a");
        assert!(decode("YR").is_err(), "trailing bits");
        assert!(decode("YQ=").is_err(), "half padding");
        assert!(decode("Y+Q").is_err(), "standard alphabet");
        assert!(decode("").is_err());
    }

    #[test]
    fn split_needs_exactly_three_parts() {
        assert!(split("a.b").is_err());
        assert!(split("e30.e30.e30.e30").is_err());
    }
}
