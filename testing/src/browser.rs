//! [`Browser`]: a cookie jar in front of a tower service, with the hosted-UI hop to a
//! [`LocalCognito`](crate::LocalCognito), for testing a backend-for-frontend without a browser.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use http::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use serde_json::Value;
use tower_service::Service;

/// One answer, read whole.
#[derive(Debug)]
#[non_exhaustive]
pub struct Page {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Page {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The `Location` header.
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }

    /// What a `Set-Cookie` of `name` in this answer sets (`Some("")` for a removal).
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers.get_all(SET_COOKIE).iter().find_map(|h| {
            let value = h.to_str().ok()?.strip_prefix(name)?.strip_prefix('=')?;
            Some(value.split(';').next().unwrap_or("").to_owned())
        })
    }

    /// The full `Set-Cookie` header of `name`, attributes included.
    pub fn set_cookie_header(&self, name: &str) -> Option<String> {
        self.headers.get_all(SET_COOKIE).iter().find_map(|h| {
            let text = h.to_str().ok()?;
            text.strip_prefix(name)?
                .starts_with('=')
                .then(|| text.to_owned())
        })
    }
}

/// What a browser tab does, minus the rendering: keeps the cookies an app sets (one jar shared
/// by every call, like the tabs of one browser), sends them back, puts `Origin` on POSTs, and
/// follows the sign-in through the local Cognito's hosted UI over real HTTP.
///
/// `S` is the app as a tower service (an axum `Router`, `tower_cognito::refresh::Bff`, ...),
/// called in-process with requests under `origin` (such as `http://127.0.0.1:8080`).
pub struct Browser<S> {
    app: S,
    origin: String,
    jar: Mutex<HashMap<String, String>>,
    /// Built on the first sign-in only: most calls never leave the process.
    http: OnceLock<reqwest::Client>,
}

impl<S> fmt::Debug for Browser<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let jar = self.jar.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Browser")
            .field("origin", &self.origin)
            .field("cookies", &jar.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<S, B> Browser<S>
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>> + Clone,
    S::Error: fmt::Debug,
    B: http_body::Body,
    B::Error: fmt::Debug,
{
    /// A browser with an empty jar, for the app `app` served at `origin`.
    pub fn new(app: S, origin: impl Into<String>) -> Self {
        Self {
            app,
            origin: origin.into(),
            jar: Mutex::new(HashMap::new()),
            http: OnceLock::new(),
        }
    }

    /// The app's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The cookie `name` in the jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar().get(name).cloned()
    }

    /// Sets (or with `None` removes) the cookie `name`, as a forger or a test would.
    pub fn set_cookie(&self, name: &str, value: Option<&str>) {
        match value {
            Some(value) => self.jar().insert(name.to_owned(), value.to_owned()),
            None => self.jar().remove(name),
        };
    }

    fn jar(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.jar.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `GET path` with the jar's cookies.
    pub async fn get(&self, path: &str) -> Page {
        self.send(Request::get(path)).await
    }

    /// `POST path` with the jar's cookies and this origin's `Origin`.
    pub async fn post(&self, path: &str) -> Page {
        self.send(Request::post(path).header(ORIGIN, &self.origin))
            .await
    }

    /// Sends `request` (cookies added), keeps the cookies the answer sets.
    pub async fn send(&self, mut request: http::request::Builder) -> Page {
        let cookies = {
            let jar = self.jar();
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if !cookies.is_empty() {
            request = request.header(COOKIE, cookies);
        }
        let request = request.body(Empty::new()).expect("a valid request");
        let response = self
            .app
            .clone()
            .call(request)
            .await
            .expect("the app answers");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("the body").to_bytes();
        let page = Page {
            status: parts.status,
            headers: parts.headers,
            body,
        };
        let mut jar = self.jar();
        for header in page.headers.get_all(SET_COOKIE) {
            let Ok(text) = header.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                let removal = value.is_empty() || text.contains("Max-Age=0");
                if removal {
                    jar.remove(name.trim());
                } else {
                    jar.insert(name.trim().to_owned(), value.to_owned());
                }
            }
        }
        page
    }

    /// The first half of a sign-in: `GET login_path`, then the hosted UI it redirects to (over
    /// HTTP, with `tamper` applied to its URL first). Answers the path of the app's callback
    /// the hosted UI sent the browser back to, not yet requested. Panics when a step is not a
    /// redirect of the expected kind.
    pub async fn start_sign_in(
        &self,
        login_path: &str,
        tamper: impl Fn(String) -> String,
    ) -> String {
        let login = self.get(login_path).await;
        assert!(
            login.status.is_redirection(),
            "login redirects: {}",
            login.status
        );
        let authorize = login.location().expect("a Location").to_owned();
        let http = self.http.get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client builds")
        });
        let hosted = http
            .get(tamper(authorize))
            .send()
            .await
            .expect("the hosted UI answers");
        assert_eq!(hosted.status().as_u16(), 302, "the hosted UI approves");
        let back = hosted.headers()["location"]
            .to_str()
            .expect("an ASCII Location")
            .to_owned();
        back.strip_prefix(&self.origin)
            .expect("the hosted UI sends the browser back to the app")
            .to_owned()
    }

    /// Signs in: [`start_sign_in`](Self::start_sign_in), then the callback. Answers the
    /// callback's answer.
    pub async fn sign_in_with(&self, login_path: &str, tamper: impl Fn(String) -> String) -> Page {
        let callback = self.start_sign_in(login_path, tamper).await;
        self.get(&callback).await
    }

    /// [`sign_in_with`](Self::sign_in_with) without tampering.
    pub async fn sign_in(&self, login_path: &str) -> Page {
        self.sign_in_with(login_path, |url| url).await
    }
}
