//! What the retry-once clients share: [`BearerSource`] (where the access token comes from),
//! [`AuthorizeError`] (why a request was given up), and attaching the header.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use crate::error::{SourceError, SourceErrorKind};
use crate::m2m::ClientCredentialsSource;
use crate::reason::AuthReason;
use crate::secret::Secret;
use crate::source::TokenSource;

/// Where [`BearerAuthLayer`](crate::BearerAuthLayer) and the `reqwest-middleware` middleware
/// get access tokens: [`TokenSource`] (a user's sign-in), [`ClientCredentialsSource`] (M2M),
/// or your own.
pub trait BearerSource: Clone + Send + Sync + 'static {
    /// A token to send.
    fn access_token(&self) -> impl Future<Output = Result<Secret, SourceError>> + Send;

    /// A token other than `rejected`, which the API refused as superseded, revoked or
    /// expired: refreshed, unless another caller already replaced it.
    fn refresh_rejected(
        &self,
        rejected: &Secret,
    ) -> impl Future<Output = Result<Secret, SourceError>> + Send;
}

impl BearerSource for TokenSource {
    fn access_token(&self) -> impl Future<Output = Result<Secret, SourceError>> + Send {
        TokenSource::access_token(self)
    }

    fn refresh_rejected(
        &self,
        rejected: &Secret,
    ) -> impl Future<Output = Result<Secret, SourceError>> + Send {
        TokenSource::refresh_rejected(self, rejected)
    }
}

impl BearerSource for ClientCredentialsSource {
    fn access_token(&self) -> impl Future<Output = Result<Secret, SourceError>> + Send {
        ClientCredentialsSource::access_token(self)
    }

    fn refresh_rejected(
        &self,
        rejected: &Secret,
    ) -> impl Future<Output = Result<Secret, SourceError>> + Send {
        ClientCredentialsSource::refresh_rejected(self, rejected)
    }
}

/// Why a request was given up before or after its one retry.
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthorizeError {
    /// No access token could be had: see [`SourceError::kind`] (retry later, or sign in).
    Token(SourceError),
    /// The API refused the request again with a refreshed token (for example `revoked`: the
    /// session is over on the server's side). Sign in again.
    Refused(AuthReason),
}

impl AuthorizeError {
    /// Whether the user must sign in again.
    pub fn needs_sign_in(&self) -> bool {
        match self {
            Self::Token(error) => error.needs_sign_in(),
            Self::Refused(_) => true,
        }
    }
}

impl fmt::Display for AuthorizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(_) => f.write_str("no access token could be had"),
            Self::Refused(reason) => write!(
                f,
                "the API refused the request again after a token refresh ({reason})"
            ),
        }
    }
}

impl StdError for AuthorizeError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Token(error) => Some(error),
            Self::Refused(_) => None,
        }
    }
}

impl From<SourceError> for AuthorizeError {
    fn from(error: SourceError) -> Self {
        Self::Token(error)
    }
}

/// Sets `Authorization: Bearer <token>`, marked sensitive (never indexed by HTTP/2 header
/// compression, `Debug` shows `Sensitive`), replacing any there was.
pub(crate) fn set_bearer(headers: &mut HeaderMap, token: &Secret) -> Result<(), AuthorizeError> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose()))
        .map_err(|_| AuthorizeError::Token(SourceError::new(SourceErrorKind::Rejected)))?;
    value.set_sensitive(true);
    headers.insert(AUTHORIZATION, value);
    Ok(())
}
