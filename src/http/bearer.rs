//! Reading the Bearer token from the `Authorization` header (RFC 6750 section 2.1).
//!
//! Tokens are read from the `Authorization` header only, never from a query string or a form
//! body, where they end up in logs.

use http::header::{HeaderMap, AUTHORIZATION};

use crate::error::{AuthError, InvalidRequest};

/// The token found, with where it sits in the header value (`value[offset..]`): the bytes for
/// now, the offset for after the request has moved (into the verifying future).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found<'a> {
    pub(crate) offset: usize,
    pub(crate) token: &'a [u8],
}

/// Finds the Bearer token, without checking its characters yet: see [`check_token`].
///
/// - no `Authorization` header, or one of another scheme (`Basic ...`): `Ok(None)`, which the
///   layer answers with a bare `Bearer` challenge (or lets through in optional mode);
/// - more than one `Authorization` header: 400 `invalid_request`;
/// - `Bearer` with no token: 400 `invalid_request`.
///
/// The scheme is case-insensitive; one or more spaces may follow it.
/// It answers the token's bytes as well, so that the header is looked up once.
pub(crate) fn find_token(headers: &HeaderMap) -> Result<Option<Found<'_>>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::InvalidRequest(
            InvalidRequest::MultipleCredentials,
        ));
    }
    let value = value.as_bytes();
    Ok(locate(value)?.map(|offset| Found {
        offset,
        token: &value[offset..],
    }))
}

/// The token `find_token` found at `offset`, read again from the request that the verifying
/// future owns.
pub(crate) fn token_at(headers: &HeaderMap, offset: usize) -> Option<&[u8]> {
    headers.get(AUTHORIZATION)?.as_bytes().get(offset..)
}

/// Where the token starts in a header value of the Bearer scheme.
fn locate(value: &[u8]) -> Result<Option<usize>, AuthError> {
    const SCHEME: &[u8] = b"bearer";
    let scheme_len = value.iter().position(|&b| b == b' ').unwrap_or(value.len());
    if !value[..scheme_len].eq_ignore_ascii_case(SCHEME) {
        return Ok(None);
    }
    let offset = scheme_len
        + value[scheme_len..]
            .iter()
            .take_while(|&&b| b == b' ')
            .count();
    if offset == value.len() {
        return Err(malformed());
    }
    Ok(Some(offset))
}

/// The token found by [`find_token`] must be one `b64token` (so two tokens, or characters
/// outside it, are a 400 `invalid_request`).
///
/// The verifier's lookup runs this only for a token it has to verify: a token verified before
/// is made of base64url characters and dots, so it passed.
pub(crate) fn check_token(token: &[u8]) -> Result<(), AuthError> {
    if is_b64token(token) {
        Ok(())
    } else {
        Err(malformed())
    }
}

fn malformed() -> AuthError {
    AuthError::InvalidRequest(InvalidRequest::MalformedCredentials)
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_b64token(token: &[u8]) -> bool {
    let body_len = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    // Every request pays for this scan of a ~1 KB token. Range tests and ORs with no early exit,
    // in fixed-size chunks, compile to SIMD compares: about 4x faster than a table lookup per
    // byte, which cannot be vectorised.
    let mut chunks = token[..body_len].chunks_exact(32);
    let mut all = body_len > 0;
    for chunk in &mut chunks {
        all &= chunk.iter().fold(true, |ok, &b| ok & in_b64token(b));
    }
    all && chunks.remainder().iter().all(|&b| in_b64token(b))
}

/// Whether `b` may appear in the body of a `b64token`.
#[inline(always)]
fn in_b64token(b: u8) -> bool {
    // `b | 0x20` maps `A-Z` onto `a-z` and no other byte into it; `-` `.` `/` are adjacent.
    ((b | 0x20).wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b.wrapping_sub(b'-') < 3)
        | (b == b'+')
        | (b == b'_')
        | (b == b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the layer does with one header value: find the token, then check it. The bytes
    /// found and the offset (read again once the request has moved) must agree.
    fn token(value: &str) -> Result<Option<String>, AuthError> {
        let mut headers = HeaderMap::new();
        if !value.is_empty() {
            headers.insert(AUTHORIZATION, value.parse().unwrap());
        }
        let Some(found) = find_token(&headers)? else {
            return Ok(None);
        };
        assert_eq!(found.token, &value.as_bytes()[found.offset..]);
        check_token(found.token)?;
        Ok(Some(String::from_utf8(found.token.to_vec()).unwrap()))
    }

    /// The character class, byte by byte, against RFC 6750's grammar spelled out.
    #[test]
    fn b64token_bytes_are_exactly_the_grammar() {
        for b in 0..=255u8 {
            let grammar =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(in_b64token(b), grammar, "byte {b:#04x}");
        }
    }

    /// A bad byte anywhere, in a full chunk or in the remainder, is found.
    #[test]
    fn a_bad_byte_anywhere_is_found() {
        let good = vec![b'a'; 100];
        assert!(is_b64token(&good));
        for at in 0..good.len() {
            for bad in [b' ', b'=', b'%', 0x80, 0xff, b'\n', 0] {
                let mut t = good.clone();
                t[at] = bad;
                // A trailing `=` is padding, and allowed.
                let allowed = bad == b'=' && at == good.len() - 1;
                assert_eq!(is_b64token(&t), allowed, "{bad:#04x} at {at}");
            }
        }
        assert!(!is_b64token(b"===="));
        assert!(is_b64token(b"a=="));
    }

    #[test]
    fn reads_bearer_tokens() {
        let found = |t: &str| Ok(Some(t.to_owned()));
        assert_eq!(token("Bearer a.b.c"), found("a.b.c"));
        assert_eq!(token("bearer a.b.c"), found("a.b.c"));
        assert_eq!(token("BEARER   a.b-_~+/c=="), found("a.b-_~+/c=="));
    }

    #[test]
    fn other_schemes_are_not_credentials() {
        assert_eq!(token("Basic dXNlcjpwYXNz"), Ok(None));
        assert_eq!(token("Bearerx a.b.c"), Ok(None));
        assert_eq!(token(""), Ok(None));
    }

    #[test]
    fn malformed_bearer_credentials_are_invalid_requests() {
        let malformed = Err(AuthError::InvalidRequest(
            InvalidRequest::MalformedCredentials,
        ));
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer a.b.c d.e.f",
            "Bearer a,b",
            "Bearer ==",
            "Bearer a=b",
        ] {
            assert_eq!(token(bad), malformed, "{bad}");
        }
    }

    #[test]
    fn two_headers_are_an_invalid_request() {
        let mut headers = HeaderMap::new();
        headers.append(AUTHORIZATION, "Bearer a.b.c".parse().unwrap());
        headers.append(AUTHORIZATION, "Bearer d.e.f".parse().unwrap());
        assert_eq!(
            find_token(&headers),
            Err(AuthError::InvalidRequest(
                InvalidRequest::MultipleCredentials
            ))
        );
    }
}
