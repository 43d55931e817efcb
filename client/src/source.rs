//! [`TokenSource`]: one sign-in's tokens, refreshed once however many callers need them.
//!
//! - [`access_token`](TokenSource::access_token) answers an access token valid for at least
//!   the margin (default 60 s), from memory when it has one, so requests never carry a
//!   token that expires in flight. A token closer to its `exp` is refreshed first
//!   (proactively, before it expires).
//! - Concurrent callers share ONE refresh: never two refreshes with the same refresh token
//!   from one source. With a [`TokenStore`], never two across processes either (see
//!   [`store`](crate::TokenStore) for the flow).
//! - Rotation: refreshes use `GetTokensFromRefreshToken` (or the `/oauth2/token` grant, or,
//!   for app clients without rotation, `InitiateAuth` `REFRESH_TOKEN_AUTH`), keep the new
//!   refresh token when one comes back and the old one when none does.
//! - Errors say what to do ([`SourceErrorKind`]): retry later (Cognito unavailable; the tokens
//!   are kept) or sign in again.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{SourceError, SourceErrorKind};
use crate::flight::Flight;
use crate::secret::Secret;
use crate::store::TokenStore;
use crate::stored::{now_secs, StoredTokens};
use crate::token_client::{TokenClient, TokenError};

/// The default margin: an access token is handed out only while it is valid for 60 s more.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(60);

/// One sign-in's tokens, refreshed single-flight. Cheap to clone: clones share the tokens
/// and the refresh. Needs a Tokio runtime.
///
/// ```no_run
/// # async fn run(client: tower_cognito_client::TokenClient) -> Result<(), Box<dyn std::error::Error>> {
/// use tower_cognito_client::{FileTokenStore, TokenSource};
///
/// // Tokens saved by an earlier sign-in, shared with other processes of the same CLI.
/// let source = TokenSource::builder(client)
///     .store(FileTokenStore::new("/home/me/.config/mycli/tokens.json"))
///     .build();
/// let token = source.access_token().await?; // valid for 60 s at least
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

struct Inner {
    client: TokenClient,
    store: Option<Arc<dyn TokenStore>>,
    margin: Duration,
    device_key: Option<String>,
    method: RefreshMethod,
    flight: Arc<Flight<StoredTokens>>,
}

/// Which Cognito call refreshes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RefreshMethod {
    /// `GetTokensFromRefreshToken` (the default).
    GetTokens,
    /// The `/oauth2/token` `refresh_token` grant.
    OAuthGrant,
    /// `InitiateAuth` with `REFRESH_TOKEN_AUTH`, and the username for `SECRET_HASH`.
    InitiateAuth { username: Option<String> },
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("client", &self.inner.client)
            .field("store", &self.inner.store)
            .field("margin", &self.inner.margin)
            .field("tokens", &self.inner.flight.current())
            .finish_non_exhaustive()
    }
}

/// Builds a [`TokenSource`].
#[must_use]
pub struct TokenSourceBuilder {
    client: TokenClient,
    tokens: Option<StoredTokens>,
    store: Option<Arc<dyn TokenStore>>,
    margin: Duration,
    device_key: Option<String>,
    method: RefreshMethod,
}

impl fmt::Debug for TokenSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSourceBuilder")
            .field("client", &self.client)
            .field("tokens", &self.tokens)
            .field("store", &self.store)
            .field("margin", &self.margin)
            .finish_non_exhaustive()
    }
}

impl TokenSourceBuilder {
    /// The tokens to start from (from a sign-in). Without them, the first call reads the store.
    /// They are not written to the store: use [`TokenSource::set_tokens`] for that.
    pub fn tokens(mut self, tokens: impl Into<StoredTokens>) -> Self {
        self.tokens = Some(tokens.into());
        self
    }

    /// Where the tokens live between runs, shared with other processes.
    pub fn store(mut self, store: impl TokenStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// A store shared with other sources of this process.
    pub fn shared_store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// How long an access token must stay valid to be handed out (default
    /// [`DEFAULT_MARGIN`]; capped at half the token's lifetime).
    pub fn margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// The device key sent with each refresh (remembered devices).
    pub fn device_key(mut self, key: impl Into<String>) -> Self {
        self.device_key = Some(key.into());
        self
    }

    /// Refresh with the `/oauth2/token` `refresh_token` grant instead of
    /// `GetTokensFromRefreshToken` (the default, the call AWS documents for rotation).
    /// `false` goes back to the default. The last refresh-method setting wins.
    pub fn oauth_refresh_grant(mut self, on: bool) -> Self {
        self.method = if on {
            RefreshMethod::OAuthGrant
        } else {
            RefreshMethod::GetTokens
        };
        self
    }

    /// Refresh with `InitiateAuth` `REFRESH_TOKEN_AUTH`
    /// ([`TokenClient::refresh_initiate_auth`]) instead of `GetTokensFromRefreshToken`: for app
    /// clients WITHOUT rotation only (rotating clients refuse this flow). `username` is needed
    /// when the app client has a secret (the access token's `username` claim; see
    /// [`TokenClient::refresh_initiate_auth`]). The last refresh-method setting wins.
    pub fn initiate_auth_refresh(mut self, username: Option<&str>) -> Self {
        self.method = RefreshMethod::InitiateAuth {
            username: username.map(str::to_owned),
        };
        self
    }

    /// The source.
    pub fn build(self) -> TokenSource {
        TokenSource {
            inner: Arc::new(Inner {
                client: self.client,
                store: self.store,
                margin: self.margin,
                device_key: self.device_key,
                method: self.method,
                flight: Arc::new(Flight::new(self.tokens)),
            }),
        }
    }
}

impl TokenSource {
    /// A builder for a source that refreshes through `client`.
    pub fn builder(client: TokenClient) -> TokenSourceBuilder {
        TokenSourceBuilder {
            client,
            tokens: None,
            store: None,
            margin: DEFAULT_MARGIN,
            device_key: None,
            method: RefreshMethod::GetTokens,
        }
    }

    /// A source over `tokens`, in memory only.
    pub fn new(client: TokenClient, tokens: impl Into<StoredTokens>) -> Self {
        Self::builder(client).tokens(tokens).build()
    }

    /// An access token valid for at least the margin: the one held, or a refreshed one.
    pub async fn access_token(&self) -> Result<Secret, SourceError> {
        Ok(self.tokens().await?.access_token().clone())
    }

    /// All the tokens (for the id token), the access token valid for at least the margin.
    pub async fn tokens(&self) -> Result<StoredTokens, SourceError> {
        let margin = self.inner.margin;
        self.get(move |t| t.valid_for(margin, now_secs())).await
    }

    /// Refreshes now, whatever the access token's expiry (for example after the API refused
    /// it). Callers that force a refresh at the same time share one; a token that another
    /// process saved in the store meanwhile is taken instead of refreshing again.
    pub async fn force_refresh(&self) -> Result<Secret, SourceError> {
        Ok(self.get(|_| false).await?.access_token().clone())
    }

    /// A token other than `rejected` (the access token an API refused): the one held when it
    /// already differs (someone refreshed meanwhile), else a refreshed one. What a retry after
    /// a 401 needs: many requests refused at once make one refresh.
    pub async fn refresh_rejected(&self, rejected: &Secret) -> Result<Secret, SourceError> {
        let margin = self.inner.margin;
        let rejected = rejected.clone();
        let tokens = self
            .get(move |t| t.access_token() != &rejected && t.valid_for(margin, now_secs()))
            .await?;
        Ok(tokens.access_token().clone())
    }

    /// Takes the tokens of a new sign-in: held from now on and saved in the store (under its
    /// lock), replacing whatever was there, a corrupt file included.
    pub async fn set_tokens(&self, tokens: impl Into<StoredTokens>) -> Result<(), SourceError> {
        let tokens = tokens.into();
        let store = self.inner.store.clone();
        self.inner
            .flight
            .replace(|| async move {
                if let Some(store) = store {
                    let _lock = store.lock().await?;
                    store.save(&tokens).await?;
                }
                Ok(tokens)
            })
            .await
            .map(|_| ())
    }

    /// Signs out: forgets the tokens, removes them from the store (a corrupt file too), and
    /// revokes the refresh token at Cognito (`RevokeToken`), which also refuses the access
    /// tokens it issued at Cognito's own APIs. The local tokens are gone whatever the answer;
    /// an error means Cognito may still honour the refresh token until it expires.
    pub async fn sign_out(&self) -> Result<(), SourceError> {
        let inner = Arc::clone(&self.inner);
        self.inner
            .flight
            .clear(|held| async move {
                let mut refresh_token = held.and_then(|t| t.refresh_token().cloned());
                if let Some(store) = &inner.store {
                    let _lock = store.lock().await?;
                    if let Ok(Some(stored)) = store.load().await {
                        refresh_token = stored.refresh_token().cloned().or(refresh_token);
                    }
                    store.clear().await?;
                }
                if let Some(refresh_token) = refresh_token {
                    inner.client.revoke(&refresh_token).await?;
                }
                Ok(())
            })
            .await
    }

    async fn get(
        &self,
        usable: impl Fn(&StoredTokens) -> bool,
    ) -> Result<StoredTokens, SourceError> {
        let inner = Arc::clone(&self.inner);
        self.inner
            .flight
            .get(usable, move |current| refresh(inner, current))
            .await
    }
}

impl Inner {
    fn usable(&self, tokens: &StoredTokens) -> bool {
        tokens.valid_for(self.margin, now_secs())
    }

    /// One refresh at Cognito with `base`'s refresh token.
    async fn call(&self, base: &StoredTokens) -> Result<StoredTokens, TokenError> {
        let refresh_token = base.refresh_token().ok_or(TokenError::Invalid)?;
        let device_key = self.device_key.as_deref();
        let answer = match &self.method {
            RefreshMethod::GetTokens => self.client.refresh(refresh_token, device_key).await,
            RefreshMethod::OAuthGrant => self.client.refresh_oauth(refresh_token).await,
            RefreshMethod::InitiateAuth { username } => {
                self.client
                    .refresh_initiate_auth(refresh_token, username.as_deref(), device_key)
                    .await
            }
        };
        match &answer {
            Ok(tokens) => tracing::debug!(
                rotated = tokens.refresh_token.is_some(),
                "tower_cognito_client: tokens refreshed"
            ),
            Err(error) => tracing::debug!(%error, "tower_cognito_client: refresh failed"),
        }
        Ok(base.refreshed(answer?))
    }
}

fn sign_in_required(error: TokenError) -> SourceError {
    match error {
        TokenError::Reused | TokenError::Invalid => SourceError::sign_in_required(Some(error)),
        other => other.into(),
    }
}

/// The refresh a [`Flight`] runs: with the store's lock held when there is a store.
async fn refresh(
    inner: Arc<Inner>,
    current: Option<StoredTokens>,
) -> Result<StoredTokens, SourceError> {
    let Some(store) = inner.store.clone() else {
        let current = current.ok_or_else(|| SourceError::new(SourceErrorKind::SignInRequired))?;
        return inner.call(&current).await.map_err(sign_in_required);
    };
    let _lock = store.lock().await?;
    // Read again under the lock: another process may have refreshed while we waited.
    let stored = store.load().await?;
    let base = match (stored, current) {
        (Some(stored), current) => {
            let theirs = current
                .as_ref()
                .is_none_or(|c| c.access_token() != stored.access_token());
            if theirs && inner.usable(&stored) {
                return Ok(stored);
            }
            stored
        }
        (None, Some(current)) => current,
        (None, None) => return Err(SourceError::new(SourceErrorKind::SignInRequired)),
    };
    let fresh = match inner.call(&base).await {
        Ok(fresh) => fresh,
        Err(TokenError::Reused) => {
            // Spent elsewhere (outside this lock): a newer refresh token may be in the store.
            let again = store.load().await?;
            match again {
                Some(newer) if newer.refresh_token() != base.refresh_token() => {
                    if inner.usable(&newer) {
                        return Ok(newer);
                    }
                    inner.call(&newer).await.map_err(sign_in_required)?
                }
                _ => return Err(SourceError::sign_in_required(Some(TokenError::Reused))),
            }
        }
        Err(error) => return Err(sign_in_required(error)),
    };
    if let Err(error) = store.save(&fresh).await {
        // The new tokens are held in memory; other processes will have to sign in again.
        tracing::warn!(%error, "tower_cognito_client: refreshed tokens not saved");
    }
    Ok(fresh)
}
