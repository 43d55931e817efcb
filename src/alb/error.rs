//! [`AlbError`]: why an `x-amzn-oidc-data` token was refused, and its 401 / 503 split.

use std::fmt;

use http::StatusCode;

use crate::error::{AuthError, InvalidToken};

/// Why an `x-amzn-oidc-data` token was refused: the same 401 / 503 split as [`AuthError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlbError {
    /// No `x-amzn-oidc-data` header (401; [`AlbAuthLayer`](super::AlbAuthLayer) only: the
    /// request did not come through an authenticating load balancer).
    MissingToken,
    /// The token is not a valid token of the configured load balancers (401). The reasons are
    /// the main verifier's: `Malformed`, `UnsupportedAlgorithm`, `MissingKeyId` (also for a kid
    /// of characters an ALB never uses), `UnknownKey`, `BadSignature`, `MissingClaim`,
    /// `Expired`, `WrongIssuer`, `WrongClient`, `TooLarge`, `UnsupportedCritical`.
    InvalidToken(InvalidToken),
    /// `signer` is not one of the configured load balancer ARNs (401).
    WrongSigner,
    /// The key endpoint did not answer, or answered something that is not a key (503): our
    /// outage, never the client's 401.
    KeysUnavailable,
}

impl AlbError {
    /// 401 for the token's fault, 503 for the key endpoint's.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken(_) | Self::WrongSigner => {
                StatusCode::UNAUTHORIZED
            }
            Self::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A fixed description: nothing from the token.
    pub fn description(&self) -> &'static str {
        match self {
            Self::MissingToken => "No load balancer token was presented",
            Self::InvalidToken(reason) => reason.description(),
            Self::WrongSigner => "The token was not signed by an accepted load balancer",
            Self::KeysUnavailable => "The signing keys are unavailable",
        }
    }

    /// A short stable name for logs and metrics, such as `wrong_signer`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidToken(reason) => reason.as_str(),
            Self::WrongSigner => "wrong_signer",
            Self::KeysUnavailable => "keys_unavailable",
        }
    }
}

impl fmt::Display for AlbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for AlbError {}

/// For answering with the crate's rejections: a wrong signer is a wrong issuer there.
impl From<AlbError> for AuthError {
    fn from(e: AlbError) -> Self {
        match e {
            AlbError::MissingToken => AuthError::MissingToken,
            AlbError::InvalidToken(reason) => AuthError::InvalidToken(reason),
            AlbError::WrongSigner => AuthError::InvalidToken(InvalidToken::WrongIssuer),
            AlbError::KeysUnavailable => AuthError::KeysUnavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_split_401_and_503() {
        assert_eq!(AlbError::WrongSigner.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            AlbError::KeysUnavailable.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            AuthError::from(AlbError::KeysUnavailable),
            AuthError::KeysUnavailable
        );
    }
}
