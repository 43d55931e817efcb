//! Where the layer reads the token from: [`TokenSource`] (the `Authorization: Bearer` header by
//! default, a named cookie, or your own [`TokenResolver`]). Never the query string.

use std::fmt;
use std::mem;
use std::sync::Arc;

use http::request::Parts;
use http::{HeaderMap, Request};

use super::bearer::{find_token, token_at};
use super::cookie::{check_cookie_name, cookie_at, find_cookie, CookieAt, CsrfRule};
use crate::config::ConfigError;
use crate::error::{AuthError, InvalidRequest};

/// Where [`CognitoAuthLayer`](crate::CognitoAuthLayer) reads the token from; set with
/// [`CognitoAuthLayer::token_source`](crate::CognitoAuthLayer::token_source).
///
/// | source | reads | both a header and a cookie |
/// | --- | --- | --- |
/// | [`bearer`](Self::bearer) (the default) | `Authorization: Bearer <token>` | the cookie is not looked at |
/// | [`cookie`](Self::cookie) | the named cookie; the `Authorization` header is not looked at | the header is ignored |
/// | [`bearer_or_cookie`](Self::bearer_or_cookie) | either | 400 `invalid_request` ([`InvalidRequest::MultipleCredentials`]) |
/// | [`custom`](Self::custom) | what your [`TokenResolver`] answers | yours to decide |
///
/// A request with both a Bearer header and the cookie is refused by `bearer_or_cookie`, as
/// RFC 6750 (section 2) asks: a client must not send its token two ways, and which of two
/// tokens it meant is unknowable. Another scheme (`Authorization: Basic ...`) is not a Bearer
/// token, so there the cookie is used.
///
/// A token is never read from the query string (RFC 6750 section 2.3 allows it; URLs end up in
/// logs, proxies and the browser history).
///
/// ```
/// use http::HeaderName;
/// use tower_cognito::{CsrfRule, TokenSource};
///
/// // The SPA's backend sets `access_token` as an HttpOnly cookie; the SPA adds `x-csrf: 1` to
/// // every fetch; other clients send `Authorization: Bearer`.
/// let source = TokenSource::bearer_or_cookie(
///     "access_token",
///     CsrfRule::require_header(HeaderName::from_static("x-csrf"))?,
/// )?;
/// # let _ = source;
/// # Ok::<(), tower_cognito::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct TokenSource {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Bearer,
    Cookie {
        cookie: Arc<Cookie>,
        or_bearer: bool,
    },
    Custom(Arc<dyn TokenResolver>),
}

struct Cookie {
    name: Box<str>,
    csrf: CsrfRule,
}

impl TokenSource {
    /// `Authorization: Bearer <token>` (RFC 6750 section 2.1), the default: the scheme in any
    /// case, one token; two `Authorization` headers or a malformed token are 400
    /// `invalid_request`, another scheme counts as no token.
    pub fn bearer() -> Self {
        Self { kind: Kind::Bearer }
    }

    /// The cookie `name` only, for a single-page app whose backend sets the access token as an
    /// `HttpOnly` cookie (which page scripts cannot read, so an XSS cannot steal it).
    ///
    /// **CSRF**: a browser sends the cookie with requests that other sites make it send, so a
    /// cookie token on an unsafe request (anything but `GET`, `HEAD`, `OPTIONS`, `TRACE`) is
    /// taken only when the request passes `csrf`: a required custom header
    /// ([`CsrfRule::require_header`]) or an allowed `Origin` ([`CsrfRule::allowed_origins`]).
    /// A request that fails it is 400 `invalid_request` ([`InvalidRequest::CrossSiteRequest`]).
    /// [`CsrfRule::allow_cross_site_forgery`] turns the protection off, by that name. Set the
    /// cookie `SameSite=Strict` or `Lax` as well, `Secure`, and with the `__Host-` prefix.
    ///
    /// The cookie's value is the token as it is (no percent-decoding; double quotes around it
    /// are dropped); an empty value is no token; the cookie twice (two paths or domains) is 400
    /// `invalid_request`. The `Authorization` header is not looked at: see
    /// [`bearer_or_cookie`](Self::bearer_or_cookie) for both.
    ///
    /// `name` must be an RFC 6265 cookie name, else `ConfigError::InvalidSetting`.
    pub fn cookie(name: &str, csrf: CsrfRule) -> Result<Self, ConfigError> {
        Self::with_cookie(name, csrf, false)
    }

    /// The `Authorization: Bearer` header or the cookie `name` (as [`cookie`](Self::cookie),
    /// with its CSRF rule for the cookie). A request that carries both is 400
    /// `invalid_request` ([`InvalidRequest::MultipleCredentials`]).
    pub fn bearer_or_cookie(name: &str, csrf: CsrfRule) -> Result<Self, ConfigError> {
        Self::with_cookie(name, csrf, true)
    }

    fn with_cookie(name: &str, csrf: CsrfRule, or_bearer: bool) -> Result<Self, ConfigError> {
        check_cookie_name(name)?;
        let cookie = Arc::new(Cookie {
            name: name.into(),
            csrf,
        });
        Ok(Self {
            kind: Kind::Cookie { cookie, or_bearer },
        })
    }

    /// Your own [`TokenResolver`]: any function from the request's [`Parts`] to the token.
    ///
    /// The token it answers is checked and verified as a Bearer token is (one RFC 6750
    /// `b64token`, else 400 `invalid_request`). A resolver that reads a cookie must guard
    /// against CSRF itself: prefer [`cookie`](Self::cookie), which does.
    ///
    /// ```
    /// use http::request::Parts;
    /// use tower_cognito::{InvalidRequest, TokenSource};
    ///
    /// // A proxy in front passes the access token in a header of its own.
    /// fn from_proxy(parts: &Parts) -> Result<Option<Vec<u8>>, InvalidRequest> {
    ///     Ok(parts.headers.get("x-forwarded-access-token").map(|v| v.as_bytes().to_vec()))
    /// }
    /// let source = TokenSource::custom(from_proxy);
    /// # let _ = source;
    /// ```
    pub fn custom(resolver: impl TokenResolver) -> Self {
        Self {
            kind: Kind::Custom(Arc::new(resolver)),
        }
    }

    /// Whether this source takes a cookie token without a CSRF rule.
    pub(crate) fn is_unprotected_cookie(&self) -> bool {
        matches!(&self.kind, Kind::Cookie { cookie, .. } if cookie.csrf.is_unchecked())
    }
}

impl Default for TokenSource {
    fn default() -> Self {
        Self::bearer()
    }
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Bearer => f.write_str("Bearer"),
            Kind::Cookie { cookie, or_bearer } => f
                .debug_struct(if *or_bearer {
                    "BearerOrCookie"
                } else {
                    "Cookie"
                })
                .field("name", &cookie.name)
                .field("csrf", &cookie.csrf)
                .finish(),
            Kind::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// Finds the token of a request for [`TokenSource::custom`].
///
/// Implemented for every `Fn(&Parts) -> Result<Option<Vec<u8>>, InvalidRequest>` that is
/// `Send + Sync + 'static`. Answer:
/// - `Ok(Some(token))`: this is the token (then checked as an RFC 6750 `b64token`, and verified);
/// - `Ok(None)`: the request carries no token (401 with the bare challenge, or anonymous in
///   [`optional`](crate::CognitoAuthLayer::optional) mode);
/// - `Err(reason)`: the request is malformed (400 `invalid_request`), for example
///   [`InvalidRequest::MultipleCredentials`].
///
/// It runs once per request, before verification, and must not block.
pub trait TokenResolver: Send + Sync + 'static {
    /// The token of the request whose head is `parts`.
    fn resolve(&self, parts: &Parts) -> Result<Option<Vec<u8>>, InvalidRequest>;
}

impl<F> TokenResolver for F
where
    F: Fn(&Parts) -> Result<Option<Vec<u8>>, InvalidRequest> + Send + Sync + 'static,
{
    fn resolve(&self, parts: &Parts) -> Result<Option<Vec<u8>>, InvalidRequest> {
        self(parts)
    }
}

/// Where the token of a request was found, to read it again from the request once the
/// verifying future owns it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Place {
    /// `Authorization` header value, from this offset.
    Header(usize),
    /// A `Cookie` header value, this range.
    Cookie(CookieAt),
    /// The custom resolver's token, held beside the request.
    Resolved,
}

impl Place {
    /// The token as text, read again; `None` when it is not UTF-8 (so no `b64token`).
    pub(crate) fn text<'r>(self, headers: &'r HeaderMap, resolved: &'r [u8]) -> Option<&'r str> {
        let bytes = match self {
            Self::Header(offset) => token_at(headers, offset)?,
            Self::Cookie(at) => cookie_at(headers, at)?,
            Self::Resolved => resolved,
        };
        simdutf8::basic::from_utf8(bytes).ok()
    }
}

/// What the custom resolver answered (`None` for the other sources), run before the token is
/// located. It needs the request's `Parts`: the request's head is swapped into a `Parts` and
/// back (no copies, and the body stays where it is).
pub(crate) fn resolve_custom<B>(
    source: &TokenSource,
    request: &mut Request<B>,
) -> Option<Result<Option<Vec<u8>>, AuthError>> {
    let Kind::Custom(resolver) = &source.kind else {
        return None;
    };
    let (mut parts, ()) = Request::new(()).into_parts();
    swap_head(&mut parts, request);
    let resolved = resolver.resolve(&parts).map_err(AuthError::InvalidRequest);
    swap_head(&mut parts, request);
    Some(resolved)
}

fn swap_head<B>(parts: &mut Parts, request: &mut Request<B>) {
    mem::swap(&mut parts.method, request.method_mut());
    mem::swap(&mut parts.uri, request.uri_mut());
    mem::swap(&mut parts.version, request.version_mut());
    mem::swap(&mut parts.headers, request.headers_mut());
    mem::swap(&mut parts.extensions, request.extensions_mut());
}

/// The token of a request from a source other than the Bearer header alone (which the service
/// reads itself, on its fast path), with where it sits; `resolved` is what
/// [`resolve_custom`] answered, for the custom source.
pub(crate) fn locate<'r>(
    source: &TokenSource,
    method: &http::Method,
    headers: &'r HeaderMap,
    resolved: &'r Option<Result<Option<Vec<u8>>, AuthError>>,
) -> Result<Option<(Place, &'r [u8])>, AuthError> {
    match &source.kind {
        Kind::Bearer => Ok(find_token(headers)?.map(|f| (Place::Header(f.offset), f.token))),
        Kind::Cookie { cookie, or_bearer } => {
            let bearer = if *or_bearer {
                find_token(headers)?
            } else {
                None
            };
            let found = find_cookie(headers, cookie.name.as_bytes())?;
            match (bearer, found) {
                (Some(_), Some(_)) => Err(AuthError::InvalidRequest(
                    InvalidRequest::MultipleCredentials,
                )),
                (Some(f), None) => Ok(Some((Place::Header(f.offset), f.token))),
                (None, Some((at, token))) => {
                    cookie.csrf.check(method, headers)?;
                    Ok(Some((Place::Cookie(at), token)))
                }
                (None, None) => Ok(None),
            }
        }
        Kind::Custom(_) => match resolved {
            Some(Ok(Some(token))) => Ok(Some((Place::Resolved, token.as_slice()))),
            Some(Ok(None)) => Ok(None),
            Some(Err(error)) => Err(error.clone()),
            // `resolve_custom` always answers for a custom source.
            None => Ok(None),
        },
    }
}

/// Whether `source` is the default Bearer header (the service's fast path).
pub(crate) fn is_bearer(source: &TokenSource) -> bool {
    matches!(source.kind, Kind::Bearer)
}
