//! The cookie token source: finding one named cookie in the `Cookie` headers, and the CSRF rule
//! that guards it ([`CsrfRule`]).
//!
//! A browser attaches cookies to requests that other sites make it send (a form posted from
//! an attacker's page carries the victim's cookie). That is cross-site request forgery, and a
//! token read from a cookie is exposed to it where a token in the `Authorization` header is
//! not. So a cookie token on a request of an unsafe method (anything but `GET`, `HEAD`,
//! `OPTIONS` and `TRACE`) is taken only when the request passes a [`CsrfRule`].

use std::fmt;

use http::header::{HeaderMap, HeaderName, COOKIE, ORIGIN};
use http::Method;
use url::Url;

use crate::config::ConfigError;
use crate::error::{AuthError, InvalidRequest};

/// How a cookie token source tells a request the browser's own page made from one another site
/// forged (CSRF). Required by [`TokenSource::cookie`](super::TokenSource::cookie) and
/// [`TokenSource::bearer_or_cookie`](super::TokenSource::bearer_or_cookie).
///
/// The rule applies to requests of unsafe methods (anything but `GET`, `HEAD`, `OPTIONS` and
/// `TRACE`) whose token comes from the cookie; safe methods must not change state, so they are
/// not checked (keep them so). A request that fails the rule is refused with 400
/// `invalid_request` ([`InvalidRequest::CrossSiteRequest`], reason `cross_site_request`)
/// before its token is looked at. A token in the `Authorization` header needs no rule: another
/// site cannot make a browser send one.
///
/// ```
/// use http::HeaderName;
/// use tower_cognito::CsrfRule;
///
/// // The single-page app sends `x-csrf: 1` with every fetch; a cross-site form cannot.
/// let by_header = CsrfRule::require_header(HeaderName::from_static("x-csrf"))?;
/// // Or: only pages of these origins may send unsafe requests.
/// let by_origin = CsrfRule::allowed_origins(["https://app.example.com"])?;
/// # let _ = (by_header, by_origin);
/// # Ok::<(), tower_cognito::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct CsrfRule {
    kind: Rule,
}

#[derive(Clone)]
enum Rule {
    Header(HeaderName),
    Origins(Box<[String]>),
    Unchecked,
}

impl CsrfRule {
    /// Unsafe requests must carry this header, with a non-empty value (any value).
    ///
    /// A page of another site can only make the browser send a custom header through a CORS
    /// preflight that your API allows: so do not allow this header (`Access-Control-Allow-Headers`)
    /// to origins you do not trust. A header that every cross-site request may carry without a
    /// preflight (`content-type`, `accept`, ...) or that the browser sets itself (`cookie`,
    /// `origin`, `referer`, `host`, `sec-*`, `proxy-*`, ...) would stop nothing and is refused
    /// (`ConfigError::InvalidSetting`), as is `authorization`.
    pub fn require_header(name: HeaderName) -> Result<Self, ConfigError> {
        if useless_csrf_header(name.as_str()) {
            return Err(ConfigError::InvalidSetting {
                setting: "CSRF header",
                reason: "a header that cross-site requests may carry or that the browser sets itself stops no forgery",
            });
        }
        Ok(Self {
            kind: Rule::Header(name),
        })
    }

    /// Unsafe requests must carry an `Origin` header naming one of these origins exactly (such
    /// as `https://app.example.com`, or `http://localhost:5173`): browsers send `Origin` with
    /// every request whose method is neither `GET` nor `HEAD`. A missing `Origin`, `null`, or
    /// two of them, are refused.
    ///
    /// Each entry must be an origin (scheme, host, optional port; no path, query or fragment):
    /// anything else, or an empty list, is `ConfigError::InvalidUrl`.
    pub fn allowed_origins<I, S>(origins: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let invalid = |reason: &str| ConfigError::InvalidUrl {
            setting: "allowed origin",
            reason: reason.to_owned(),
        };
        let mut allowed = Vec::new();
        for origin in origins {
            let origin = origin.as_ref();
            let url = Url::parse(origin)
                .map_err(|_| invalid("not an origin such as https://app.example.com"))?;
            let bare = url.path() == "/"
                && url.query().is_none()
                && url.fragment().is_none()
                && url.username().is_empty()
                && url.password().is_none()
                && !origin.ends_with('/');
            if !url.origin().is_tuple() || !bare {
                return Err(invalid(
                    "not an origin such as https://app.example.com (no path, query or fragment)",
                ));
            }
            allowed.push(url.origin().ascii_serialization());
        }
        if allowed.is_empty() {
            return Err(invalid("no origin given"));
        }
        Ok(Self {
            kind: Rule::Origins(allowed.into()),
        })
    }

    /// **No CSRF protection**: a cookie token is taken on every method, so any site a signed-in
    /// user visits can make their browser send authenticated `POST`s, `PUT`s and `DELETE`s to
    /// this API.
    ///
    /// Only for a deployment that stops forged requests elsewhere (a proxy in front that checks
    /// `Origin` or `Sec-Fetch-Site`, or a cookie that no cross-site request carries and a
    /// browser population you know honours that). Each layer built with it logs a warning.
    pub fn allow_cross_site_forgery() -> Self {
        Self {
            kind: Rule::Unchecked,
        }
    }

    /// Whether this is [`allow_cross_site_forgery`](Self::allow_cross_site_forgery).
    pub(crate) fn is_unchecked(&self) -> bool {
        matches!(self.kind, Rule::Unchecked)
    }

    /// Whether a request of `method` with these headers may use a cookie token.
    pub(crate) fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), AuthError> {
        if is_safe(method) {
            return Ok(());
        }
        let passed = match &self.kind {
            Rule::Unchecked => true,
            Rule::Header(name) => headers.get(name).is_some_and(|v| !v.is_empty()),
            Rule::Origins(allowed) => {
                let mut values = headers.get_all(ORIGIN).iter();
                match (values.next(), values.next()) {
                    (Some(origin), None) => allowed
                        .iter()
                        .any(|a| a.as_bytes().eq_ignore_ascii_case(origin.as_bytes())),
                    _ => false,
                }
            }
        };
        if passed {
            Ok(())
        } else {
            Err(AuthError::InvalidRequest(InvalidRequest::CrossSiteRequest))
        }
    }
}

impl fmt::Debug for CsrfRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Rule::Header(name) => f.debug_tuple("RequireHeader").field(name).finish(),
            Rule::Origins(origins) => f.debug_tuple("AllowedOrigins").field(origins).finish(),
            Rule::Unchecked => f.write_str("AllowCrossSiteForgery"),
        }
    }
}

/// `GET`, `HEAD`, `OPTIONS` and `TRACE`: the methods RFC 9110 calls safe (no state change).
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Headers that cannot tell a forged request: CORS-safelisted request headers (any page may
/// send them cross-site), forbidden request headers (the browser sets them on every request),
/// and `authorization` (a credential of its own).
fn useless_csrf_header(name: &str) -> bool {
    const NAMES: &[&str] = &[
        // CORS-safelisted request headers.
        "accept",
        "accept-language",
        "content-language",
        "content-type",
        "range",
        // Forbidden request headers (Fetch standard).
        "accept-charset",
        "accept-encoding",
        "access-control-request-headers",
        "access-control-request-method",
        "connection",
        "content-length",
        "cookie",
        "cookie2",
        "date",
        "dnt",
        "expect",
        "host",
        "keep-alive",
        "origin",
        "referer",
        "set-cookie",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "via",
        // A credential, not a CSRF marker.
        "authorization",
    ];
    // `HeaderName::as_str` is lowercase.
    NAMES.contains(&name) || name.starts_with("sec-") || name.starts_with("proxy-")
}

/// Where a cookie's value sits: the `field`-th `Cookie` header, bytes `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CookieAt {
    pub(crate) field: usize,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Validates a cookie name: an RFC 6265 `cookie-name`, that is an RFC 9110 `token`.
pub(crate) fn check_cookie_name(name: &str) -> Result<(), ConfigError> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(tchar) {
        return Err(ConfigError::InvalidSetting {
            setting: "token cookie name",
            reason: "must be a non-empty RFC 6265 cookie-name (letters, digits, !#$%&'*+-.^_`|~)",
        });
    }
    Ok(())
}

/// Finds the cookie `name` in every `Cookie` header (HTTP/2 may split one into several).
///
/// - not there, or there with an empty value (a cleared cookie): `Ok(None)`;
/// - there twice with a value (cookies of the same name for two paths or domains): 400
///   `invalid_request`, as for two `Authorization` headers: which one is meant is unknowable;
/// - a value in double quotes (RFC 6265 allows them) is taken without the quotes.
///
/// The value's characters are checked afterwards, as a Bearer token's are ([`check_token`]).
///
/// [`check_token`]: super::bearer::check_token
pub(crate) fn find_cookie<'h>(
    headers: &'h HeaderMap,
    name: &[u8],
) -> Result<Option<(CookieAt, &'h [u8])>, AuthError> {
    let mut found = None;
    for (field, value) in headers.get_all(COOKIE).iter().enumerate() {
        let value = value.as_bytes();
        let mut start = 0;
        while start < value.len() {
            let end = memchr::memchr(b';', &value[start..]).map_or(value.len(), |i| start + i);
            if let Some((from, to)) = pair_value(value, start, end, name) {
                if from < to {
                    if found.is_some() {
                        return Err(AuthError::InvalidRequest(
                            InvalidRequest::MultipleCredentials,
                        ));
                    }
                    let at = CookieAt {
                        field,
                        start: from,
                        end: to,
                    };
                    found = Some((at, &value[from..to]));
                }
            }
            start = end + 1;
        }
    }
    Ok(found)
}

/// The value's range of the `name=value` pair in `value[start..end]`, if that pair is `name`'s.
fn pair_value(value: &[u8], start: usize, end: usize, name: &[u8]) -> Option<(usize, usize)> {
    let pair = &value[start..end];
    let eq = memchr::memchr(b'=', pair)?;
    if pair[..eq].trim_ascii() != name {
        return None;
    }
    let mut from = start + eq + 1;
    let mut to = end;
    while from < to && matches!(value[from], b' ' | b'\t') {
        from += 1;
    }
    while to > from && matches!(value[to - 1], b' ' | b'\t') {
        to -= 1;
    }
    if to - from >= 2 && value[from] == b'"' && value[to - 1] == b'"' {
        from += 1;
        to -= 1;
    }
    Some((from, to))
}

/// The cookie value found by [`find_cookie`], read again from the request the verifying future
/// owns.
pub(crate) fn cookie_at(headers: &HeaderMap, at: CookieAt) -> Option<&[u8]> {
    let value = headers.get_all(COOKIE).iter().nth(at.field)?;
    value.as_bytes().get(at.start..at.end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for c in cookies {
            headers.append(COOKIE, HeaderValue::from_str(c).unwrap());
        }
        headers
    }

    fn find(cookies: &[&str]) -> Result<Option<String>, AuthError> {
        let headers = headers(cookies);
        let found = find_cookie(&headers, b"at")?;
        Ok(found.map(|(at, bytes)| {
            assert_eq!(cookie_at(&headers, at), Some(bytes));
            String::from_utf8(bytes.to_vec()).unwrap()
        }))
    }

    #[test]
    fn finds_the_named_cookie() {
        let some = |s: &str| Ok(Some(s.to_owned()));
        assert_eq!(find(&["at=a.b.c"]), some("a.b.c"));
        assert_eq!(find(&["x=1; at=a.b.c; y=2"]), some("a.b.c"));
        assert_eq!(find(&["x=1;at=a.b.c"]), some("a.b.c"));
        assert_eq!(find(&["x=1", "y=2; at=a.b.c"]), some("a.b.c"));
        assert_eq!(find(&["at=\"a.b.c\""]), some("a.b.c"));
        assert_eq!(find(&["at = a.b.c "]), some("a.b.c"));
        // Only an exact name: no prefix, suffix or case match.
        assert_eq!(find(&["xat=a.b.c; atx=d; AT=e"]), Ok(None));
        assert_eq!(find(&["x=at=a.b.c"]), Ok(None));
        assert_eq!(find(&[]), Ok(None));
        assert_eq!(find(&["at"]), Ok(None));
    }

    #[test]
    fn an_empty_value_is_no_cookie() {
        assert_eq!(find(&["at="]), Ok(None));
        assert_eq!(find(&["at=\"\""]), Ok(None));
        assert_eq!(find(&["at=; at=a.b.c"]), Ok(Some("a.b.c".to_owned())));
    }

    #[test]
    fn two_values_are_an_invalid_request() {
        let two = Err(AuthError::InvalidRequest(
            InvalidRequest::MultipleCredentials,
        ));
        assert_eq!(find(&["at=a.b.c; at=d.e.f"]), two);
        assert_eq!(find(&["at=a.b.c", "at=d.e.f"]), two);
    }

    #[test]
    fn cookie_names_are_tokens() {
        assert!(check_cookie_name("__Host-access_token").is_ok());
        for bad in ["", "a b", "a=b", "a;b", "a\"b", "é"] {
            assert!(check_cookie_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn useless_headers_are_refused() {
        for name in [
            "content-type",
            "cookie",
            "origin",
            "sec-fetch-site",
            "authorization",
        ] {
            assert!(
                CsrfRule::require_header(HeaderName::from_static(name)).is_err(),
                "{name}"
            );
        }
        assert!(CsrfRule::require_header(HeaderName::from_static("x-csrf")).is_ok());
    }

    #[test]
    fn origins_must_be_origins() {
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/x",
            "https://app.example.com?q",
            "https://u@app.example.com",
            "data:text/plain,x",
        ] {
            assert!(CsrfRule::allowed_origins([bad]).is_err(), "{bad}");
        }
        assert!(CsrfRule::allowed_origins(Vec::<String>::new()).is_err());
        assert!(CsrfRule::allowed_origins(["http://localhost:5173"]).is_ok());
    }

    #[test]
    fn the_rule_guards_unsafe_methods_only() {
        let rule = CsrfRule::allowed_origins(["https://App.example.com:443"]).unwrap();
        let refused = Err(AuthError::InvalidRequest(InvalidRequest::CrossSiteRequest));
        let mut h = HeaderMap::new();
        for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert_eq!(rule.check(&m, &h), Ok(()), "{m}");
        }
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(rule.check(&m, &h), refused, "{m} without Origin");
        }
        h.insert(ORIGIN, HeaderValue::from_static("https://app.example.com"));
        assert_eq!(rule.check(&Method::POST, &h), Ok(()));
        h.insert(ORIGIN, HeaderValue::from_static("https://evil.example.com"));
        assert_eq!(rule.check(&Method::POST, &h), refused);
        h.insert(ORIGIN, HeaderValue::from_static("null"));
        assert_eq!(rule.check(&Method::POST, &h), refused);
        h.insert(ORIGIN, HeaderValue::from_static("https://app.example.com"));
        h.append(ORIGIN, HeaderValue::from_static("https://app.example.com"));
        assert_eq!(rule.check(&Method::POST, &h), refused, "two Origins");

        let rule = CsrfRule::require_header(HeaderName::from_static("x-csrf")).unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(rule.check(&Method::DELETE, &h), refused);
        h.insert("x-csrf", HeaderValue::from_static(""));
        assert_eq!(rule.check(&Method::DELETE, &h), refused, "empty value");
        h.insert("x-csrf", HeaderValue::from_static("1"));
        assert_eq!(rule.check(&Method::DELETE, &h), Ok(()));

        let rule = CsrfRule::allow_cross_site_forgery();
        assert_eq!(rule.check(&Method::POST, &HeaderMap::new()), Ok(()));
    }
}
