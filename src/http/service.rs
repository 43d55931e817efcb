//! [`CognitoAuth`]: the middleware service.

use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::bearer::{check_token, find_token};
use super::future::ResponseFuture;
use super::grpc::{reject_grpc, GrpcAnswers};
use super::layer::{CognitoAuthLayer, Options};
use super::rejection::{reject, DefaultRejection, OnRejection};
use super::source::{is_bearer, locate, resolve_custom, Place};
use crate::claims::AccessClaims;
use crate::error::AuthError;
use crate::verify::{Lookup, Verifier};

/// Marks a request let through without a token in optional mode, so the extractors can tell
/// "anonymous" from "the layer is missing": the `Option` extractor answers `None`, the required
/// one the 401 challenge the layer would have answered, in this realm.
#[derive(Debug, Clone)]
pub(crate) struct Anonymous {
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) realm: Arc<str>,
    /// How the layer answers refusals: the extractor decides from the request's headers, only
    /// when it refuses.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) grpc: GrpcAnswers,
}

/// The middleware made by [`CognitoAuthLayer`](crate::CognitoAuthLayer).
#[derive(Debug)]
pub struct CognitoAuth<S, C = AccessClaims, R = DefaultRejection> {
    inner: S,
    verifier: Verifier<C>,
    options: Options,
    on_rejection: R,
}

// By hand: a derive would require `C: Clone`, and the claims type need not be.
impl<S: Clone, C, R: Clone> Clone for CognitoAuth<S, C, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            verifier: self.verifier.clone(),
            options: self.options.clone(),
            on_rejection: self.on_rejection.clone(),
        }
    }
}

impl<S, C, R> CognitoAuth<S, C, R> {
    pub(crate) fn new(inner: S, verifier: Verifier<C>, options: Options, on_rejection: R) -> Self {
        Self {
            inner,
            verifier,
            options,
            on_rejection,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, without the layer.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The verifier this service uses.
    pub fn verifier(&self) -> &Verifier<C> {
        &self.verifier
    }
}

// On `()`, so that `CognitoAuth::layer(verifier)` infers: the service it wraps is chosen when the
// layer is applied.
impl<C> CognitoAuth<(), C> {
    /// The layer that makes this service: the same as [`CognitoAuthLayer::new`].
    ///
    /// ```
    /// # use tower_cognito::{ClientIds, CognitoAuth, CognitoConfig, TokenUse, UserPool, Verifier};
    /// # let config = CognitoConfig::new(UserPool::parse("eu-west-1_AbC").unwrap(), TokenUse::Access, ClientIds::one("c"));
    /// let layer = CognitoAuth::layer(Verifier::new(config).unwrap());
    /// let service = tower::ServiceBuilder::new()
    ///     .layer(layer)
    ///     .service(tower::service_fn(|_: http::Request<String>| async {
    ///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    ///     }));
    /// # let _ = service;
    /// ```
    pub fn layer(verifier: Verifier<C>) -> CognitoAuthLayer<C> {
        CognitoAuthLayer::new(verifier)
    }
}

/// The answer to a refused request: the gRPC way when the layer's [`GrpcAnswers`] say so for
/// this request, else `on_rejection`'s with the challenge.
fn refuse<B: Default, R: OnRejection<B>>(
    error: AuthError,
    realm: &str,
    grpc: bool,
    on_rejection: &R,
) -> Response<B> {
    if grpc {
        reject_grpc(error, realm)
    } else {
        reject(error, realm, on_rejection)
    }
}

impl<S, C, R, ReqBody, ResBody> Service<Request<ReqBody>> for CognitoAuth<S, C, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default,
    C: DeserializeOwned + Send + Sync + 'static,
    R: OnRejection<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let source = &self.options.source;
        // The Bearer header, the default, is read on the fast path; a custom resolver runs
        // first (it needs the request's head), and its token is kept beside the request.
        let mut resolved = None;
        let found = if is_bearer(source) {
            find_token(request.headers())
                .map(|found| found.map(|f| (Place::Header(f.offset), f.token)))
        } else {
            resolved = resolve_custom(source, &mut request);
            locate(source, request.method(), request.headers(), &resolved)
        };
        let realm = self.verifier.realm();
        let grpc = self.options.grpc;
        let found = match found {
            Ok(Some(found)) => found,
            Ok(None) if self.options.optional => {
                crate::metrics::anonymous();
                request.extensions_mut().insert(Anonymous {
                    realm: realm.clone(),
                    grpc,
                });
                return ResponseFuture::inner(self.inner.call(request));
            }
            Ok(None) => {
                let grpc = grpc.applies(request.headers());
                let error = AuthError::MissingToken;
                return ResponseFuture::rejected(refuse(error, realm, grpc, &self.on_rejection));
            }
            Err(error) => {
                let grpc = grpc.applies(request.headers());
                return ResponseFuture::rejected(refuse(error, realm, grpc, &self.on_rejection));
            }
        };
        let (place, token) = found;
        // Asked once, by bytes: a token verified before needs no UTF-8 check. The token must be
        // one `b64token` (else 400): the verifier checks it when it has to verify the token.
        let pending = match self.verifier.lookup(token, check_token) {
            // The whole answer: no `await`, no boxed future.
            Lookup::Ready(verified) => {
                self.verifier.metrics().accepted();
                request.extensions_mut().insert(verified);
                return ResponseFuture::inner(self.inner.call(request));
            }
            Lookup::Refused(error) => {
                let grpc = grpc.applies(request.headers());
                return ResponseFuture::rejected(refuse(error, realm, grpc, &self.on_rejection));
            }
            Lookup::Pending(pending) => pending,
        };
        let verifier = self.verifier.clone();
        let on_rejection = self.on_rejection.clone();
        // The ready service goes into the future; a fresh clone waits for the next poll_ready.
        let clone = self.inner.clone();
        let mut inner = mem::replace(&mut self.inner, clone);
        let fut = async move {
            let resolved = match &resolved {
                Some(Ok(Some(token))) => token.as_slice(),
                _ => &[],
            };
            // Borrowed from the request the future owns: no copy of the token.
            let headers = request.headers();
            let token = move || place.text(headers, resolved).unwrap_or_default();
            match verifier.finish(pending, token).await {
                Ok(verified) => {
                    verifier.metrics().accepted();
                    request.extensions_mut().insert(verified);
                    Ok(inner.call(request))
                }
                Err(error) => {
                    let grpc = grpc.applies(request.headers());
                    Err(refuse(error, verifier.realm(), grpc, &on_rejection))
                }
            }
        };
        ResponseFuture::verifying(fut.boxed())
    }
}
