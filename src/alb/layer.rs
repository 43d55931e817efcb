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
/// extensions (axum: `Extension<AlbClaims>`). A refused one is answered here with an empty
/// body: 401 when the header is missing, repeated, not text or not a valid token; 503 when the
/// key endpoint is down. The [`AlbError`] is in the response's extensions for outer layers.
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
pub struct AlbAuthLayer {
    verifier: AlbVerifier,
}

impl AlbAuthLayer {
    /// A layer verifying with `verifier`.
    pub fn new(verifier: AlbVerifier) -> Self {
        Self { verifier }
    }
}

impl<S> Layer<S> for AlbAuthLayer {
    type Service = AlbAuth<S>;

    fn layer(&self, inner: S) -> AlbAuth<S> {
        AlbAuth {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service of [`AlbAuthLayer`].
#[derive(Clone)]
pub struct AlbAuth<S> {
    inner: S,
    verifier: AlbVerifier,
}

impl<S> fmt::Debug for AlbAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlbAuth")
            .field("verifier", &self.verifier)
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
                Err(e) => Err(e),
            };
            match verified {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Err(e) => {
                    tracing::debug!(reason = e.as_str(), "ALB token refused");
                    let mut response = Response::new(ResBody::default());
                    *response.status_mut() = e.status();
                    response.extensions_mut().insert(e);
                    Ok(response)
                }
            }
        })
    }
}
