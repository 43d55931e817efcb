//! [`BearerAuthLayer`]: a tower client layer that attaches `Authorization: Bearer` and, on a
//! 401 the server marked `superseded`, `revoked` or `expired`, refreshes and replays the
//! request ONCE.
//!
//! It wraps any `Service<http::Request<B>>` client, such as hyper-util's legacy `Client`:
//!
//! 1. get an access token from the [`BearerSource`] (valid for the margin) and attach it;
//! 2. send; an answer other than a marked 401 (a 403, a 400, an unmarked 401, a success) is
//!    returned as it is;
//! 3. on a marked 401, get a token other than the refused one (one refresh shared by every
//!    request refused at once), and send a copy of the request with it; a body that cannot be
//!    replayed ([`ReplayBody`]) stops here and the first answer is returned;
//! 4. if that answer is a marked 401 again, give up: [`AuthorizeError::Refused`].
//!
//! Errors are boxed (`tower::BoxError`), as tower's own middleware does: either the inner
//! service's error or an [`AuthorizeError`] (downcast to tell them apart).

use std::error::Error as StdError;
use std::future::{poll_fn, Future};
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::bearer::{set_bearer, AuthorizeError, BearerSource};
use crate::body::ReplayBody;
use crate::reason::AuthReason;

/// The error of [`BearerAuth`]: the inner service's or an [`AuthorizeError`].
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// The future of [`BearerAuth`].
pub type BearerFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

/// Wraps a client service in [`BearerAuth`].
#[derive(Debug, Clone)]
pub struct BearerAuthLayer<T> {
    source: T,
}

impl<T> BearerAuthLayer<T> {
    /// Tokens from `source` ([`TokenSource`](crate::TokenSource) or
    /// [`ClientCredentialsSource`](crate::ClientCredentialsSource)).
    pub fn new(source: T) -> Self {
        Self { source }
    }
}

impl<S, T: Clone> Layer<S> for BearerAuthLayer<T> {
    type Service = BearerAuth<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth {
            inner,
            source: self.source.clone(),
        }
    }
}

/// The client middleware made by [`BearerAuthLayer`].
#[derive(Debug, Clone)]
pub struct BearerAuth<S, T> {
    inner: S,
    source: T,
}

impl<S, T> BearerAuth<S, T> {
    /// Wraps `inner`.
    pub fn new(inner: S, source: T) -> Self {
        Self { inner, source }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// A copy of `request` to send again, if its body clones.
fn try_clone_request<B: ReplayBody>(request: &Request<B>) -> Option<Request<B>> {
    let mut copy = Request::new(request.body().try_clone()?);
    copy.method_mut().clone_from(request.method());
    copy.uri_mut().clone_from(request.uri());
    *copy.version_mut() = request.version();
    copy.headers_mut().clone_from(request.headers());
    copy.extensions_mut().clone_from(request.extensions());
    Some(copy)
}

impl<S, T, B, R> Service<Request<B>> for BearerAuth<S, T>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    T: BearerSource,
    B: ReplayBody + Send + 'static,
    R: Send + 'static,
{
    type Response = Response<R>;
    type Error = BoxError;
    type Future = BearerFuture<Response<R>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The ready service goes into the future; a fresh clone waits for the next poll_ready.
        let clone = self.inner.clone();
        let mut inner = mem::replace(&mut self.inner, clone);
        let source = self.source.clone();
        Box::pin(async move {
            let token = source.access_token().await.map_err(AuthorizeError::Token)?;
            let replay = try_clone_request(&request);
            set_bearer(request.headers_mut(), &token)?;
            let response = inner.call(request).await.map_err(Into::into)?;
            let Some(reason) = AuthReason::of_response(&response) else {
                return Ok(response);
            };
            tracing::debug!(%reason, "tower_cognito_client: refused; refreshing");
            let fresh = match source.refresh_rejected(&token).await {
                Ok(fresh) => fresh,
                Err(error) if replay.is_none() => {
                    tracing::debug!(%error, "tower_cognito_client: refresh failed");
                    return Ok(response);
                }
                Err(error) => return Err(AuthorizeError::Token(error).into()),
            };
            let Some(mut replay) = replay else {
                return Ok(response);
            };
            drop(response);
            set_bearer(replay.headers_mut(), &fresh)?;
            poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let response = inner.call(replay).await.map_err(Into::into)?;
            match AuthReason::of_response(&response) {
                Some(reason) => Err(AuthorizeError::Refused(reason).into()),
                None => Ok(response),
            }
        })
    }
}
