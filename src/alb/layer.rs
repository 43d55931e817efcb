//! [`AlbAuthLayer`]: a tower layer that verifies `x-amzn-oidc-data` and hands the claims to the
//! service in the request extensions.

use std::fmt;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::{AlbError, AlbVerifier, ALB_DATA_HEADER};
use crate::error::InvalidToken;

/// Verifies the `x-amzn-oidc-data` header of every request with an [`AlbVerifier`].
///
/// An accepted request reaches the service with its [`AlbClaims`](super::AlbClaims) in the
/// extensions (axum: the `AlbClaims` extractor, with the `axum` feature). A refused one is
/// answered here with an empty body: 401 when the header is missing, repeated, not text or not
/// a valid token; 503 when the key endpoint is down. The [`AlbError`] is in the response's
/// extensions for outer layers.
///
/// ```
/// use tower_cognito::alb::{AlbAuthLayer, AlbConfig, AlbVerifier};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let verifier = AlbVerifier::new(AlbConfig::new([
///     "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188",
/// ]))?;
/// let layer = AlbAuthLayer::new(verifier);
/// # let _ = layer;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct AlbAuthLayer {
    verifier: AlbVerifier,
    optional: bool,
}

impl AlbAuthLayer {
    /// A layer verifying with `verifier` that refuses every request without a valid token.
    pub fn new(verifier: AlbVerifier) -> Self {
        Self {
            verifier,
            optional: false,
        }
    }

    /// Lets requests with no `x-amzn-oidc-data` header through, unauthenticated (no
    /// `AlbClaims` extension): what an ALB rule whose authenticate action says
    /// `on-unauthenticated-request: allow` forwards for a user who has not signed in. A header
    /// that is repeated, not text or not a valid token is still refused. For routes that serve
    /// anonymous users too, with `Option<AlbClaims>` in an axum handler.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
}

impl<S> Layer<S> for AlbAuthLayer {
    type Service = AlbAuth<S>;

    fn layer(&self, inner: S) -> AlbAuth<S> {
        AlbAuth {
            inner,
            verifier: self.verifier.clone(),
            optional: self.optional,
        }
    }
}

/// The service of [`AlbAuthLayer`].
#[derive(Clone)]
pub struct AlbAuth<S> {
    inner: S,
    verifier: AlbVerifier,
    optional: bool,
}

impl<S> fmt::Debug for AlbAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlbAuth")
            .field("verifier", &self.verifier)
            .field("optional", &self.optional)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AlbAuth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The ready service goes into the future; a clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let optional = self.optional;
        Box::pin(async move {
            let token = {
                let mut values = request.headers().get_all(ALB_DATA_HEADER).iter();
                match (values.next(), values.next()) {
                    (None, _) => Err(AlbError::MissingToken),
                    (Some(value), None) => value
                        .to_str()
                        .map(str::to_owned)
                        .map_err(|_| AlbError::InvalidToken(InvalidToken::Malformed)),
                    (Some(_), Some(_)) => Err(AlbError::InvalidToken(InvalidToken::Malformed)),
                }
            };
            let verified = match token {
                Ok(token) => verifier.verify(&token).await,
                Err(AlbError::MissingToken) if optional => {
                    request.extensions_mut().insert(AlbAnonymous);
                    return inner.call(request).await;
                }
                Err(e) => Err(e),
            };
            match verified {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Err(e) => Ok(refusal(e)),
            }
        })
    }
}

/// Marks a request an [`optional`](AlbAuthLayer::optional) layer let through without a
/// header, so that the extractors can tell "anonymous" from "no layer at all".
#[derive(Clone, Copy, Debug)]
pub(super) struct AlbAnonymous;

/// The layer's answer to a refused request: `error`'s status, an empty body, the error in the
/// extensions. The `AlbClaims` extractor answers an anonymous request with it too.
pub(super) fn refusal<B: Default>(error: AlbError) -> Response<B> {
    tracing::debug!(reason = error.as_str(), "ALB token refused");
    let mut response = Response::new(B::default());
    *response.status_mut() = error.status();
    response.extensions_mut().insert(error);
    response
}
