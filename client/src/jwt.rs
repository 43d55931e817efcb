//! Reading `exp` and `iat` from a JWT's payload WITHOUT verifying it.
//!
//! A client never needs to verify its own tokens (the API does that); it only needs to know
//! when they expire, to refresh before they do. Anything that is not a JWT with a numeric
//! `exp` gives `None`, and the caller falls back on `expires_in`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

/// A cap on what is decoded: Cognito tokens are a few KiB.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The times of a JWT, in seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Times {
    pub(crate) exp: u64,
    pub(crate) iat: Option<u64>,
}

/// `exp` (and `iat` when present) of `token`'s payload, unverified.
pub(crate) fn times(token: &str) -> Option<Times> {
    #[derive(Deserialize)]
    struct Payload {
        exp: Option<f64>,
        iat: Option<f64>,
    }
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = zeroize::Zeroizing::new(URL_SAFE_NO_PAD.decode(payload).ok()?);
    let payload: Payload = serde_json::from_slice(&bytes).ok()?;
    let secs = |v: f64| (v.is_finite() && v >= 0.0).then_some(v as u64);
    Some(Times {
        exp: secs(payload.exp?)?,
        iat: payload.iat.and_then(secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn reads_exp_and_iat() {
        assert_eq!(
            times(&jwt(r#"{"exp":2000,"iat":1000}"#)),
            Some(Times {
                exp: 2000,
                iat: Some(1000)
            })
        );
        assert_eq!(
            times(&jwt(r#"{"exp":2000}"#)),
            Some(Times {
                exp: 2000,
                iat: None
            })
        );
    }

    #[test]
    fn anything_else_is_none() {
        assert_eq!(times("opaque-token"), None);
        assert_eq!(times(&jwt(r#"{"iat":1000}"#)), None);
        assert_eq!(times(&jwt(r#"{"exp":"soon"}"#)), None);
        assert_eq!(times(&jwt(r#"{"exp":-5}"#)), None);
        assert_eq!(times("a.b.c.d"), None);
        assert_eq!(times(&"x".repeat(MAX_TOKEN_BYTES + 1)), None);
    }
}
