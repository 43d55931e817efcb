//! [`BearerMiddleware`] (feature `reqwest-middleware`): the same retry-once as
//! [`BearerAuthLayer`](crate::BearerAuthLayer), for `reqwest_middleware::ClientWithMiddleware`.
//!
//! A request that [`reqwest::Request::try_clone`] cannot copy (a streaming body) is not
//! replayed: its first answer is returned as it came. Errors of this middleware are
//! `reqwest_middleware::Error::Middleware` holding an [`AuthorizeError`] (downcast it).

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Error, Middleware, Next, Result};

use crate::bearer::{set_bearer, AuthorizeError, BearerSource};
use crate::reason::AuthReason;

/// Attaches `Authorization: Bearer` and replays once after a marked 401.
///
/// ```no_run
/// # fn run(source: tower_cognito_client::TokenSource) {
/// use tower_cognito_client::BearerMiddleware;
///
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(BearerMiddleware::new(source))
///     .build();
/// # let _ = client; }
/// ```
#[derive(Debug, Clone)]
pub struct BearerMiddleware<T> {
    source: T,
}

impl<T> BearerMiddleware<T> {
    /// Tokens from `source`.
    pub fn new(source: T) -> Self {
        Self { source }
    }
}

#[async_trait::async_trait]
impl<T: BearerSource> Middleware for BearerMiddleware<T> {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let token = self
            .source
            .access_token()
            .await
            .map_err(|e| Error::middleware(AuthorizeError::Token(e)))?;
        let replay = request.try_clone();
        set_bearer(request.headers_mut(), &token).map_err(Error::middleware)?;
        let response = next.clone().run(request, extensions).await?;
        let Some(reason) = AuthReason::retry_reason(response.status(), response.headers()) else {
            return Ok(response);
        };
        tracing::debug!(%reason, "tower_cognito_client: refused; refreshing");
        let fresh = match self.source.refresh_rejected(&token).await {
            Ok(fresh) => fresh,
            Err(error) if replay.is_none() => {
                tracing::debug!(%error, "tower_cognito_client: refresh failed");
                return Ok(response);
            }
            Err(error) => return Err(Error::middleware(AuthorizeError::Token(error))),
        };
        let Some(mut replay) = replay else {
            return Ok(response);
        };
        drop(response);
        set_bearer(replay.headers_mut(), &fresh).map_err(Error::middleware)?;
        let response = next.run(replay, extensions).await?;
        match AuthReason::retry_reason(response.status(), response.headers()) {
            Some(reason) => Err(Error::middleware(AuthorizeError::Refused(reason))),
            None => Ok(response),
        }
    }
}
