//! The small pieces of HTTP the backend-for-frontend needs: its response body, cookies, the
//! Origin check and the return path.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use cookie::{Cookie, SameSite};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

/// The body of every answer of [`Bff`](super::Bff): one chunk, or none.
#[derive(Debug, Default)]
pub struct BffBody(Option<Bytes>);

impl BffBody {
    pub(crate) fn new(bytes: impl Into<Bytes>) -> Self {
        Self(Some(bytes.into()))
    }
}

impl http_body::Body for BffBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(http_body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

/// The machine-readable `error` codes of the backend-for-frontend's JSON answers.
///
/// These strings are stable: a single-page app branches on them, never on the description.
pub mod codes {
    /// 401 from `POST /auth/token`: no session, or it ended (refresh token expired, revoked or
    /// spent): send the user to `/auth/login`. OpenID Connect's registered code.
    pub const LOGIN_REQUIRED: &str = "login_required";
    /// 503: Cognito or the session store is unavailable; the session is kept: retry later.
    pub const TEMPORARILY_UNAVAILABLE: &str = "temporarily_unavailable";
    /// 403: a POST without an allowed `Origin` header (a cross-site request).
    pub const CROSS_SITE_REQUEST: &str = "cross_site_request";
    /// 400: the sign-in could not be completed (no or expired pre-login cookie, `state`
    /// mismatch, a refused code, an id token that fails verification or has the wrong nonce).
    pub const INVALID_CALLBACK: &str = "invalid_callback";
    /// 400: the `return_to` of `/auth/login` is not a same-origin path.
    pub const INVALID_RETURN_PATH: &str = "invalid_return_path";
}

pub(crate) fn json(status: StatusCode, body: &serde_json::Value) -> Response<BffBody> {
    let mut response = Response::new(BffBody::new(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) fn error(status: StatusCode, code: &str, description: &str) -> Response<BffBody> {
    json(
        status,
        &serde_json::json!({ "error": code, "error_description": description }),
    )
}

pub(crate) fn status(status: StatusCode) -> Response<BffBody> {
    let mut response = Response::new(BffBody::default());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A 303 to `location` (a URL we built or a checked same-origin path).
pub(crate) fn redirect(location: &str) -> Response<BffBody> {
    let mut response = status(StatusCode::SEE_OTHER);
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// How the backend-for-frontend's cookies are set.
#[derive(Debug, Clone)]
pub(crate) struct CookieRules {
    pub(crate) session_name: String,
    pub(crate) login_name: String,
    pub(crate) path: String,
    pub(crate) secure: bool,
}

impl CookieRules {
    /// Adds `Set-Cookie` for `name` = `value` (HttpOnly, SameSite=Lax, our path, Secure unless
    /// plain http on loopback was allowed), or a removal when `value` is `None`.
    pub(crate) fn set(
        &self,
        response: &mut Response<BffBody>,
        name: &str,
        value: Option<&str>,
        max_age_secs: i64,
    ) {
        let mut cookie = Cookie::build((name.to_owned(), value.unwrap_or("").to_owned()))
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .path(self.path.clone())
            .build();
        if value.is_some() {
            cookie.set_max_age(cookie::time::Duration::seconds(max_age_secs));
        } else {
            cookie.make_removal();
        }
        if let Ok(header) = HeaderValue::from_str(&cookie.to_string()) {
            response.headers_mut().append(SET_COOKIE, header);
        }
    }
}

/// The value of cookie `name`, if the request carries exactly one.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = None;
    for header in headers.get_all(COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for cookie in Cookie::split_parse(text).flatten() {
            if cookie.name() == name {
                if found.is_some() {
                    // Two cookies of our name (one planted by a sibling domain): trust neither.
                    return None;
                }
                found = Some(cookie.value().to_owned());
            }
        }
    }
    found
}

/// Whether the request's `Origin` is one of `allowed` (exact, ASCII case-insensitive).
pub(crate) fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let mut origins = headers.get_all(ORIGIN).iter();
    match (origins.next(), origins.next()) {
        (Some(origin), None) => origin
            .to_str()
            .is_ok_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o))),
        _ => false,
    }
}

/// A return path that stays on this origin: starts with one `/`, no `//` or `/\` (which
/// browsers read as another host), no backslash, no control characters, at most 512 bytes.
pub(crate) fn same_origin_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && path.len() <= 512
        && path.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_paths_stay_on_this_origin() {
        for ok in ["/", "/app", "/app?tab=2#x", "/a/b%2F"] {
            assert!(same_origin_path(ok), "{ok}");
        }
        for bad in [
            "",
            "app",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "/a b",
            "/\u{0}x",
            "/tab\t",
            "/é",
        ] {
            assert!(!same_origin_path(bad), "{bad:?}");
        }
        assert!(!same_origin_path(&format!("/{}", "a".repeat(600))));
    }

    #[test]
    fn origin_must_be_one_allowed_value() {
        let allowed = vec!["https://app.example".to_owned()];
        let mut headers = HeaderMap::new();
        assert!(!origin_allowed(&headers, &allowed), "missing");
        headers.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!origin_allowed(&headers, &allowed));
        headers.insert(ORIGIN, HeaderValue::from_static("https://app.example"));
        assert!(origin_allowed(&headers, &allowed));
        headers.append(ORIGIN, HeaderValue::from_static("https://app.example"));
        assert!(!origin_allowed(&headers, &allowed), "two origins");
        headers.insert(ORIGIN, HeaderValue::from_static("null"));
        assert!(!origin_allowed(&headers, &allowed));
    }

    #[test]
    fn a_doubled_cookie_is_trusted_by_neither() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("a=1; sid=abc; b=2"));
        assert_eq!(cookie(&headers, "sid").as_deref(), Some("abc"));
        headers.append(COOKIE, HeaderValue::from_static("sid=planted"));
        assert_eq!(cookie(&headers, "sid"), None);
        assert_eq!(cookie(&HeaderMap::new(), "sid"), None);
    }
}
