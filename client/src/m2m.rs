//! [`ClientCredentialsSource`]: a machine-to-machine access token (the `client_credentials`
//! grant of a Cognito M2M app client), cached, refreshed before it expires, single-flight.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{SourceError, SourceErrorKind};
use crate::flight::Flight;
use crate::secret::Secret;
use crate::source::DEFAULT_MARGIN;
use crate::stored::{now_secs, StoredTokens};
use crate::token_client::{TokenClient, TokenError};

/// An M2M access token for a set of scopes. Cheap to clone: clones share the cached token
/// and the fetch. Needs a Tokio runtime, and an app client with a secret
/// ([`TokenClientBuilder::client_secret`](crate::TokenClientBuilder::client_secret)).
///
/// Each worker process holds its own token (`client_credentials` tokens are not tied to a
/// sign-in, so there is nothing to share or rotate); within a process, concurrent callers
/// share one fetch.
#[derive(Clone)]
pub struct ClientCredentialsSource {
    inner: Arc<Inner>,
}

struct Inner {
    client: TokenClient,
    scopes: Vec<String>,
    margin: Duration,
    flight: Arc<Flight<StoredTokens>>,
}

impl fmt::Debug for ClientCredentialsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentialsSource")
            .field("client", &self.inner.client)
            .field("scopes", &self.inner.scopes)
            .field("margin", &self.inner.margin)
            .finish_non_exhaustive()
    }
}

impl ClientCredentialsSource {
    /// Tokens for `scopes` (such as `orders/read`; empty: every scope the client may ask for),
    /// with the default margin.
    pub fn new(client: TokenClient, scopes: &[&str]) -> Self {
        Self::with_margin(client, scopes, DEFAULT_MARGIN)
    }

    /// Like [`new`](Self::new); a token is handed out only while valid for `margin` more
    /// (capped at half its lifetime).
    pub fn with_margin(client: TokenClient, scopes: &[&str], margin: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                margin,
                flight: Arc::new(Flight::new(None)),
            }),
        }
    }

    /// An access token valid for at least the margin: the cached one or a new one.
    pub async fn access_token(&self) -> Result<Secret, SourceError> {
        let margin = self.inner.margin;
        self.get(move |t| t.valid_for(margin, now_secs())).await
    }

    /// A new token now (callers forcing at the same time share one fetch).
    pub async fn force_refresh(&self) -> Result<Secret, SourceError> {
        self.get(|_| false).await
    }

    /// A token other than `rejected`: the cached one when it already differs, else a new one.
    pub async fn refresh_rejected(&self, rejected: &Secret) -> Result<Secret, SourceError> {
        let margin = self.inner.margin;
        let rejected = rejected.clone();
        self.get(move |t| t.access_token() != &rejected && t.valid_for(margin, now_secs()))
            .await
    }

    async fn get(&self, usable: impl Fn(&StoredTokens) -> bool) -> Result<Secret, SourceError> {
        let inner = Arc::clone(&self.inner);
        let tokens = self
            .inner
            .flight
            .get(usable, move |_| async move {
                let scopes: Vec<&str> = inner.scopes.iter().map(String::as_str).collect();
                match inner.client.client_credentials(&scopes).await {
                    Ok(tokens) => Ok(StoredTokens::from(tokens)),
                    // No sign-in to renew: a refused grant is a configuration error.
                    Err(error @ TokenError::Invalid) => {
                        Err(SourceError::from(error).with_kind(SourceErrorKind::Rejected))
                    }
                    Err(error) => Err(error.into()),
                }
            })
            .await?;
        Ok(tokens.access_token().clone())
    }
}
