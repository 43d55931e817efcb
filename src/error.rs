//! [`AuthError`]: why a request was refused, and its RFC 6750 answer.

use std::fmt;
use std::sync::Arc;

use http::StatusCode;

/// Why a request was refused. Each variant maps onto one RFC 6750 answer:
///
/// | variant | status | `WWW-Authenticate` error |
/// | --- | --- | --- |
/// | [`MissingToken`](Self::MissingToken) | 401 | none (just the `Bearer realm` challenge) |
/// | [`InvalidRequest`](Self::InvalidRequest) | 400 | `invalid_request` |
/// | [`InvalidToken`](Self::InvalidToken) | 401 | `invalid_token` |
/// | [`InsufficientScope`](Self::InsufficientScope) | 403 | `insufficient_scope` |
/// | [`KeysUnavailable`](Self::KeysUnavailable), [`StoreUnavailable`](Self::StoreUnavailable) | 503 | no challenge: our outage is not the client's fault |
///
/// To a gRPC request the layer answers with a gRPC status instead ([`grpc_code`](Self::grpc_code):
/// 16 for 401 and 400, 7 for 403, 14 for 503).
///
/// The `error_description` strings are fixed: nothing from the token is ever echoed into a header.
/// Details go to `tracing` events instead.
///
/// The 503 variants carry no source, by design and for good: the cause of an outage (a JWKS
/// fetch error, a store error) is logged with its details where it happens, and stays out of
/// this request-time answer, which is `Clone + Eq` so that it can sit in the response
/// extensions and be compared in tests. A new kind of outage would be a new variant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// No token: no `Authorization: Bearer` credentials (or none from the layer's
    /// [`TokenSource`](crate::TokenSource)).
    MissingToken,
    /// The credentials are malformed, sent twice, or (a cookie token) fail the CSRF rule.
    InvalidRequest(InvalidRequest),
    /// The token is not a valid token for this API.
    InvalidToken(InvalidToken),
    /// The token is valid but lacks a required scope or group, or failed a custom check.
    InsufficientScope {
        /// What was missing.
        reason: Forbidden,
        /// The scopes this API requires, for the `scope` attribute of the challenge.
        scope: Option<Arc<str>>,
    },
    /// No signing keys could be had from the JWKS endpoint.
    KeysUnavailable,
    /// The session store did not answer in time or failed.
    StoreUnavailable,
}

/// Why the request's credentials are malformed (400 `invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// More than one `Authorization` header.
    MultipleCredentials,
    /// The Bearer credentials are not one well-formed token.
    MalformedCredentials,
    /// A token cookie on a request of an unsafe method that fails the source's
    /// [`CsrfRule`](crate::CsrfRule): no required CSRF header, or no allowed `Origin`.
    CrossSiteRequest,
}

/// Why a token was refused (401 `invalid_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidToken {
    /// Longer than the configured cap.
    TooLarge,
    /// Not three base64url parts of JSON of the expected shape.
    Malformed,
    /// `alg` is not `RS256`.
    UnsupportedAlgorithm,
    /// The header has no `kid`.
    MissingKeyId,
    /// The header lists critical extensions (`crit`), none of which this verifier implements.
    UnsupportedCritical,
    /// No key with this `kid` is known, even after a refresh.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `iss` is not one of the accepted issuers.
    WrongIssuer,
    /// `token_use` is not the configured kind.
    WrongTokenUse,
    /// `client_id` (access tokens) or `aud` (id tokens) is not an allowed app client.
    WrongClient,
    /// A required claim (`exp`, `iat`, or what the session key needs) is missing.
    MissingClaim,
    /// `exp` has passed.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// `iat` is in the future.
    IssuedInFuture,
    /// `exp - iat` is longer than the configured maximum lifetime.
    LifetimeTooLong,
    /// The token's refresh chain has been superseded by two newer refreshes of its session.
    Superseded,
    /// The token's session was revoked.
    Revoked,
}

/// Why a valid token is not enough (403 `insufficient_scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Forbidden {
    /// A required scope is missing from `scope`.
    MissingScope,
    /// None of the required groups is in `cognito:groups`.
    MissingGroup,
    /// The user-supplied check refused the claims.
    CheckFailed,
}

impl InvalidToken {
    /// The fixed `error_description` of this reason.
    pub fn description(self) -> &'static str {
        match self {
            Self::TooLarge => "The token is too large",
            Self::Malformed => "The token is malformed",
            Self::UnsupportedAlgorithm => "The token algorithm is not supported",
            Self::MissingKeyId => "The token has no key id",
            Self::UnsupportedCritical => "The token requires an unsupported extension",
            Self::UnknownKey => "The token signing key is unknown",
            Self::BadSignature => "The token signature is invalid",
            Self::WrongIssuer => "The token issuer is not accepted",
            Self::WrongTokenUse => "The token use is not accepted",
            Self::WrongClient => "The token client is not accepted",
            Self::MissingClaim => "The token lacks a required claim",
            Self::Expired => "The token has expired",
            Self::NotYetValid => "The token is not valid yet",
            Self::IssuedInFuture => "The token is issued in the future",
            Self::LifetimeTooLong => "The token lifetime is longer than accepted",
            Self::Superseded => {
                "The token belongs to a superseded session; refresh the tokens and retry"
            }
            Self::Revoked => "The session has been revoked",
        }
    }

    /// A short stable name for logs and metrics, such as `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::MissingKeyId => "missing_kid",
            Self::UnsupportedCritical => "unsupported_crit",
            Self::UnknownKey => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongTokenUse => "wrong_token_use",
            Self::WrongClient => "wrong_client",
            Self::MissingClaim => "missing_claim",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::Superseded => "superseded",
            Self::Revoked => "revoked",
        }
    }
}

impl From<InvalidToken> for AuthError {
    fn from(reason: InvalidToken) -> Self {
        Self::InvalidToken(reason)
    }
}

impl AuthError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Self::KeysUnavailable | Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The RFC 6750 `error` code, if this answer carries one.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Self::MissingToken | Self::KeysUnavailable | Self::StoreUnavailable => None,
            Self::InvalidRequest(_) => Some("invalid_request"),
            Self::InvalidToken(_) => Some("invalid_token"),
            Self::InsufficientScope { .. } => Some("insufficient_scope"),
        }
    }

    /// The fixed, human-readable description.
    pub fn description(&self) -> &'static str {
        match self {
            Self::MissingToken => "No token was presented",
            Self::InvalidRequest(InvalidRequest::MultipleCredentials) => {
                "More than one credential was presented"
            }
            Self::InvalidRequest(InvalidRequest::MalformedCredentials) => {
                "The bearer credentials are malformed"
            }
            Self::InvalidRequest(InvalidRequest::CrossSiteRequest) => {
                "The cookie credentials lack the CSRF header or an allowed Origin"
            }
            Self::InvalidToken(reason) => reason.description(),
            Self::InsufficientScope {
                reason: Forbidden::MissingScope,
                ..
            } => "The token lacks a required scope",
            Self::InsufficientScope {
                reason: Forbidden::MissingGroup,
                ..
            } => "The user is not in a required group",
            Self::InsufficientScope {
                reason: Forbidden::CheckFailed,
                ..
            } => "The token is not allowed to access this resource",
            Self::KeysUnavailable => "The token signing keys are unavailable",
            Self::StoreUnavailable => "The session store is unavailable",
        }
    }

    /// A short stable name for logs and metrics, such as `expired` or `keys_unavailable`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidRequest(InvalidRequest::MultipleCredentials) => "multiple_credentials",
            Self::InvalidRequest(InvalidRequest::MalformedCredentials) => "malformed_credentials",
            Self::InvalidRequest(InvalidRequest::CrossSiteRequest) => "cross_site_request",
            Self::InvalidToken(reason) => reason.as_str(),
            Self::InsufficientScope {
                reason: Forbidden::MissingScope,
                ..
            } => "missing_scope",
            Self::InsufficientScope {
                reason: Forbidden::MissingGroup,
                ..
            } => "missing_group",
            Self::InsufficientScope {
                reason: Forbidden::CheckFailed,
                ..
            } => "check_failed",
            Self::KeysUnavailable => "keys_unavailable",
            Self::StoreUnavailable => "store_unavailable",
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for AuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_onto_rfc_6750() {
        let cases = [
            (AuthError::MissingToken, 401, Some("Bearer realm=\"api\"")),
            (
                AuthError::InvalidToken(InvalidToken::Expired),
                401,
                Some("Bearer realm=\"api\", error=\"invalid_token\", error_description=\"The token has expired\""),
            ),
            (
                AuthError::InvalidRequest(InvalidRequest::MultipleCredentials),
                400,
                Some("Bearer realm=\"api\", error=\"invalid_request\", error_description=\"More than one credential was presented\""),
            ),
            (
                AuthError::InsufficientScope {
                    reason: Forbidden::MissingScope,
                    scope: Some("a b".into()),
                },
                403,
                Some("Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"The token lacks a required scope\", scope=\"a b\""),
            ),
            (AuthError::KeysUnavailable, 503, None),
            (AuthError::StoreUnavailable, 503, None),
        ];
        for (err, status, header) in cases {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
            assert_eq!(
                err.www_authenticate("api")
                    .as_ref()
                    .map(|h| h.to_str().unwrap()),
                header,
                "{err:?}"
            );
        }
    }

    #[test]
    fn descriptions_are_valid_header_text() {
        use InvalidToken::*;
        for r in [
            TooLarge,
            Malformed,
            UnsupportedAlgorithm,
            MissingKeyId,
            UnsupportedCritical,
            UnknownKey,
            BadSignature,
            WrongIssuer,
            WrongTokenUse,
            WrongClient,
            MissingClaim,
            Expired,
            NotYetValid,
            IssuedInFuture,
            LifetimeTooLong,
            Superseded,
            Revoked,
        ] {
            // RFC 6750: error_description is %x20-21 / %x23-5B / %x5D-7E.
            assert!(r
                .description()
                .bytes()
                .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e)));
            assert!(AuthError::from(r).www_authenticate("x").is_some());
        }
    }
}
