//! The server's marker: the `cognito-auth-reason` header of a refused request, and its parser.
//!
//! tower-cognito's default rejection answers every refused request with
//! `cognito-auth-reason: <reason>`, a short stable name (its `AuthError::reason()`), so a
//! program can tell "refresh and retry" from "sign in again" without string-matching English.
//! This crate retries once on a 401 whose reason is `superseded`, `revoked` or `expired`.

use std::fmt;

use http::{HeaderMap, Response, StatusCode};

/// The name of the marker header.
pub const AUTH_REASON_HEADER: &str = "cognito-auth-reason";

/// Why the API refused a request, as its `cognito-auth-reason` header says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthReason {
    /// `superseded`: the token belongs to a chain that newer refreshes of the same sign-in
    /// replaced. Refresh and retry.
    Superseded,
    /// `revoked`: the session was revoked. A retry with a refreshed token shows whether the
    /// sign-in is over.
    Revoked,
    /// `expired`: the token's `exp` passed (by the server's clock). Refresh and retry.
    Expired,
    /// `missing_token`: no `Authorization: Bearer` header reached the API.
    MissingToken,
    /// Any other reason (such as `bad_signature`, `missing_scope`, `store_unavailable`).
    Other(String),
}

impl AuthReason {
    /// Reads a header value.
    pub fn parse(value: &str) -> Self {
        match value.trim() {
            "superseded" => Self::Superseded,
            "revoked" => Self::Revoked,
            "expired" => Self::Expired,
            "missing_token" => Self::MissingToken,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The marker of `headers`, if present and text.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let value = headers.get(AUTH_REASON_HEADER)?.to_str().ok()?;
        Some(Self::parse(value))
    }

    /// The marker's text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Superseded => "superseded",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::MissingToken => "missing_token",
            Self::Other(other) => other,
        }
    }

    /// Whether a refreshed token may succeed where this one failed.
    pub fn is_refreshable(&self) -> bool {
        matches!(self, Self::Superseded | Self::Revoked | Self::Expired)
    }

    /// The reason an answer calls for a refresh and one replay: a 401 (never a 403 or 400)
    /// marked `superseded`, `revoked` or `expired`.
    pub fn retry_reason(status: StatusCode, headers: &HeaderMap) -> Option<Self> {
        if status != StatusCode::UNAUTHORIZED {
            return None;
        }
        Self::from_headers(headers).filter(Self::is_refreshable)
    }

    /// [`retry_reason`](Self::retry_reason) of a response.
    pub fn of_response<B>(response: &Response<B>) -> Option<Self> {
        Self::retry_reason(response.status(), response.headers())
    }
}

impl fmt::Display for AuthReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_marked_401s_are_retried() {
        let mut headers = HeaderMap::new();
        for (value, retried) in [
            ("superseded", true),
            ("revoked", true),
            ("expired", true),
            ("missing_token", false),
            ("bad_signature", false),
        ] {
            headers.insert(AUTH_REASON_HEADER, value.parse().unwrap());
            assert_eq!(
                AuthReason::retry_reason(StatusCode::UNAUTHORIZED, &headers).is_some(),
                retried,
                "{value}"
            );
            assert_eq!(AuthReason::parse(value).as_str(), value);
            for status in [
                StatusCode::FORBIDDEN,
                StatusCode::BAD_REQUEST,
                StatusCode::OK,
            ] {
                assert_eq!(AuthReason::retry_reason(status, &headers), None);
            }
        }
        assert_eq!(
            AuthReason::retry_reason(StatusCode::UNAUTHORIZED, &HeaderMap::new()),
            None
        );
    }
}
