//! [`Bff`]: the backend-for-frontend's routes as one tower service.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tower_cognito_client::{Secret, TokenError};

use super::coordinator::{Coordinator, Held, Outcome};
use super::web::{self, codes, BffBody, CookieRules};
use crate::claims::{AccessClaims, IdClaims};
use crate::verifier::Verifier;

mod builder;

pub use builder::BffBuilder;

/// The default route prefix.
pub const DEFAULT_PREFIX: &str = "/auth";
/// The default margin: refresh when the stored access token expires within 60 s.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// The default lease of a session's refresh lock: 15 s, longer than the token client's
/// default total timeout (10 s), so a live holder always finishes inside its lease.
pub const DEFAULT_LOCK_LEASE: Duration = Duration::from_secs(15);
/// The default session lifetime: 30 days, Cognito's default refresh-token lifetime.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a started sign-in may take: 10 minutes.
const LOGIN_TTL_SECS: i64 = 600;
/// The associated data of pre-login cookies, so they never open as a session's tokens.
const LOGIN_AAD: &[u8] = b"tower-cognito pre-login";

/// The backend-for-frontend: a tower service answering `GET {prefix}/login`,
/// `GET {prefix}/callback`, `POST {prefix}/token` and `POST {prefix}/logout`; see the
/// [module docs](super) for what each does. Any other path is 404.
///
/// Mount it where its prefix is (`Router::nest_service("/auth", bff)` in axum: the routes are
/// matched with or without the prefix, so a nesting router that strips it works too). Cheap
/// to clone.
#[derive(Clone)]
pub struct Bff {
    inner: Arc<Inner>,
}

struct Inner {
    coordinator: Coordinator,
    id_verifier: Verifier<IdClaims>,
    window: Option<Verifier<AccessClaims>>,
    redirect_url: String,
    scopes: Vec<String>,
    prefix: String,
    allowed_origins: Vec<String>,
    cookies: CookieRules,
    session_ttl: i64,
    random: SystemRandom,
}

impl fmt::Debug for Bff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("Bff")
            .field("prefix", &inner.prefix)
            .field("redirect_url", &inner.redirect_url)
            .field("store", &inner.coordinator.store)
            .field("client", &inner.coordinator.client)
            .field("keys", &inner.coordinator.keys)
            .finish_non_exhaustive()
    }
}

/// What the pre-login cookie holds, sealed.
#[derive(Serialize, Deserialize)]
struct PreLogin {
    #[serde(rename = "s")]
    state: String,
    #[serde(rename = "n")]
    nonce: String,
    #[serde(rename = "v")]
    verifier: String,
    #[serde(rename = "r")]
    return_to: String,
    #[serde(rename = "e")]
    expires_at: i64,
}

/// The store id of a session cookie: SHA-256, lowercase hex.
pub(crate) fn session_id(cookie: &str) -> String {
    let hash = digest(&SHA256, cookie.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in hash.as_ref() {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl Inner {
    fn now(&self) -> i64 {
        self.coordinator.clock.now_unix()
    }

    fn random_token(&self) -> String {
        let mut bytes = [0u8; 32];
        self.random
            .fill(&mut bytes)
            .expect("the operating system's random number generator failed");
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The session's store id from its cookie, if the cookie has the shape we issue.
    fn session_of(&self, request: &Parts) -> Option<String> {
        let value = web::cookie(&request.headers, &self.cookies.session_name)?;
        (value.len() == 43 && URL_SAFE_NO_PAD.decode(&value).is_ok_and(|b| b.len() == 32))
            .then(|| session_id(&value))
    }

    async fn route(&self, request: Parts) -> Response<BffBody> {
        let path = request.uri.path();
        let route = path.strip_prefix(self.prefix.as_str()).unwrap_or(path);
        match (route, &request.method) {
            ("/login", &Method::GET) => self.login(&request),
            ("/callback", &Method::GET) => self.callback(&request).await,
            ("/token", &Method::POST) => self.token(&request).await,
            ("/logout", &Method::POST) => self.logout(&request).await,
            ("/login" | "/callback" | "/token" | "/logout", _) => {
                web::status(StatusCode::METHOD_NOT_ALLOWED)
            }
            _ => web::status(StatusCode::NOT_FOUND),
        }
    }

    fn login(&self, request: &Parts) -> Response<BffBody> {
        let return_to = query_param(request.uri.query(), "return_to").unwrap_or("/".into());
        if !web::same_origin_path(&return_to) {
            return web::error(
                StatusCode::BAD_REQUEST,
                codes::INVALID_RETURN_PATH,
                "The return path must be a path on this site",
            );
        }
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        let authorization = match self
            .coordinator
            .client
            .authorize(&self.redirect_url, &scopes)
        {
            Ok(a) => a,
            Err(error) => {
                tracing::error!(error = %error, "cannot start a sign-in");
                return web::status(StatusCode::INTERNAL_SERVER_ERROR);
            }
        };
        let pre_login = PreLogin {
            state: authorization.state.expose().to_owned(),
            nonce: authorization.nonce.expose().to_owned(),
            verifier: authorization.pkce_verifier.expose().to_owned(),
            return_to,
            expires_at: self.now() + LOGIN_TTL_SECS,
        };
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(&pre_login).expect("strings"));
        let sealed = URL_SAFE_NO_PAD.encode(self.coordinator.keys.seal(LOGIN_AAD, &plain));
        let mut response = web::redirect(&authorization.url);
        let login = &self.cookies.login_name;
        self.cookies
            .set(&mut response, login, Some(&sealed), LOGIN_TTL_SECS);
        response
    }

    fn pre_login(&self, request: &Parts) -> Option<PreLogin> {
        let value = web::cookie(&request.headers, &self.cookies.login_name)?;
        let sealed = URL_SAFE_NO_PAD.decode(value).ok()?;
        let plain = self.coordinator.keys.open(LOGIN_AAD, &sealed)?;
        let pre_login: PreLogin = serde_json::from_slice(&plain).ok()?;
        (pre_login.expires_at > self.now()).then_some(pre_login)
    }

    fn refuse_callback(&self, why: &str) -> Response<BffBody> {
        tracing::info!(reason = why, "sign-in callback refused");
        let mut response = web::error(
            StatusCode::BAD_REQUEST,
            codes::INVALID_CALLBACK,
            "The sign-in could not be completed; start again",
        );
        let login = &self.cookies.login_name;
        self.cookies.set(&mut response, login, None, 0);
        response
    }

    async fn callback(&self, request: &Parts) -> Response<BffBody> {
        let Some(pre_login) = self.pre_login(request) else {
            return self.refuse_callback("no valid pre-login cookie");
        };
        let query = request.uri.query();
        let (Some(state), Some(code)) = (query_param(query, "state"), query_param(query, "code"))
        else {
            return self.refuse_callback("no code or state (sign-in cancelled or failed)");
        };
        if aws_lc_rs::constant_time::verify_slices_are_equal(
            state.as_bytes(),
            pre_login.state.as_bytes(),
        )
        .is_err()
        {
            return self.refuse_callback("state mismatch");
        }
        let verifier = Secret::new(pre_login.verifier.as_str());
        let client = &self.coordinator.client;
        let tokens = match client
            .exchange_code(&code, &verifier, &self.redirect_url)
            .await
        {
            Ok(tokens) => tokens,
            Err(error @ (TokenError::Unavailable(_) | TokenError::Rejected(_))) => {
                tracing::warn!(error = %error, "code exchange failed");
                return unavailable();
            }
            Err(_) => return self.refuse_callback("code refused by Cognito"),
        };
        let Some(id_token) = &tokens.id_token else {
            return self.refuse_callback("no id token (is the openid scope asked for?)");
        };
        let claims = match self.id_verifier.verify(id_token.expose()).await {
            Ok(verified) => verified,
            Err(error) if error.status() == StatusCode::SERVICE_UNAVAILABLE => {
                return unavailable()
            }
            Err(error) => {
                tracing::info!(reason = error.reason(), "id token refused");
                return self.refuse_callback("id token refused");
            }
        };
        let nonce_ok = claims
            .claims()
            .other
            .get("nonce")
            .and_then(|n| n.as_str())
            .is_some_and(|n| {
                aws_lc_rs::constant_time::verify_slices_are_equal(
                    n.as_bytes(),
                    pre_login.nonce.as_bytes(),
                )
                .is_ok()
            });
        if !nonce_ok {
            return self.refuse_callback("id token nonce missing or wrong");
        }
        let window_key = match &self.window {
            None => None,
            Some(api) => match api.verify(tokens.access_token.expose()).await {
                Ok(verified) => verified.session_key().map(str::to_owned),
                Err(error) if error.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    return unavailable()
                }
                Err(error) => {
                    tracing::info!(reason = error.reason(), "access token refused");
                    return self.refuse_callback("access token refused");
                }
            },
        };
        let Some(refresh) = &tokens.refresh_token else {
            return self.refuse_callback("no refresh token in the code exchange");
        };
        let held = Held {
            refresh: refresh.expose().to_owned(),
            access: tokens.access_token.expose().to_owned(),
            id: Some(id_token.expose().to_owned()),
            window_key,
        };
        let cookie_value = self.random_token();
        let id = session_id(&cookie_value);
        let now = self.now();
        let expires_at = now.saturating_add(self.session_ttl);
        let record = self
            .coordinator
            .record_for(&id, 0, expires_at, &held, tokens.expires_in);
        let store = &self.coordinator.store;
        match tokio::time::timeout(
            self.coordinator.store_timeout,
            store.create(&id, &record, now),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "session not stored");
                return unavailable();
            }
            Err(_) => {
                tracing::warn!("session store timed out");
                return unavailable();
            }
        }
        // A session this browser had before is over: the new sign-in replaces it.
        if let Some(old) = self.session_of(request) {
            let _ = tokio::time::timeout(self.coordinator.store_timeout, store.delete(&old)).await;
        }
        tracing::info!("signed in");
        let mut response = web::redirect(&pre_login.return_to);
        let (session, login) = (&self.cookies.session_name, &self.cookies.login_name);
        self.cookies.set(
            &mut response,
            session,
            Some(&cookie_value),
            self.session_ttl,
        );
        self.cookies.set(&mut response, login, None, 0);
        response
    }

    fn cross_site(&self, request: &Parts) -> Option<Response<BffBody>> {
        (!web::origin_allowed(&request.headers, &self.allowed_origins)).then(|| {
            web::error(
                StatusCode::FORBIDDEN,
                codes::CROSS_SITE_REQUEST,
                "The request must come from this site",
            )
        })
    }

    async fn token(&self, request: &Parts) -> Response<BffBody> {
        if let Some(refused) = self.cross_site(request) {
            return refused;
        }
        let Some(id) = self.session_of(request) else {
            return login_required();
        };
        match self.coordinator.access_token(&id).await {
            Outcome::Token { access, expires_at } => web::json(
                StatusCode::OK,
                &serde_json::json!({
                    "access_token": access.expose(),
                    "expires_in": expires_at.saturating_sub(self.now()).max(0),
                    "token_type": "Bearer",
                }),
            ),
            Outcome::SignIn => {
                let mut response = login_required();
                let session = &self.cookies.session_name;
                self.cookies.set(&mut response, session, None, 0);
                response
            }
            Outcome::Unavailable => unavailable(),
        }
    }

    async fn logout(&self, request: &Parts) -> Response<BffBody> {
        if let Some(refused) = self.cross_site(request) {
            return refused;
        }
        if let Some(id) = self.session_of(request) {
            let record = match self.coordinator.load(&id).await {
                Ok(record) => record,
                Err(error) => {
                    tracing::warn!(error = %error, "sign-out: session store unavailable");
                    return unavailable();
                }
            };
            if let Some(held) = record.and_then(|r| self.coordinator.open(&id, &r)) {
                // Best effort at Cognito: the refresh token is deleted here in any case and
                // never left this server.
                let refresh = Secret::new(held.refresh.as_str());
                if let Err(error) = self.coordinator.client.revoke(&refresh).await {
                    tracing::warn!(error = %error, "RevokeToken failed; session deleted anyway");
                }
                if let (Some(api), Some(key)) = (&self.window, &held.window_key) {
                    if api.revoke_session(key).await.is_err() {
                        return unavailable();
                    }
                }
            }
            let delete = self.coordinator.store.delete(&id);
            match tokio::time::timeout(self.coordinator.store_timeout, delete).await {
                Ok(Ok(())) => tracing::info!("signed out"),
                _ => return unavailable(),
            }
        }
        let mut response = web::status(StatusCode::NO_CONTENT);
        let session = &self.cookies.session_name;
        self.cookies.set(&mut response, session, None, 0);
        response
    }
}

fn login_required() -> Response<BffBody> {
    web::error(
        StatusCode::UNAUTHORIZED,
        codes::LOGIN_REQUIRED,
        "Sign in again",
    )
}

fn unavailable() -> Response<BffBody> {
    let mut response = web::error(
        StatusCode::SERVICE_UNAVAILABLE,
        codes::TEMPORARILY_UNAVAILABLE,
        "Try again shortly; the session is kept",
    );
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    response
}

impl<B> tower_service::Service<Request<B>> for Bff
where
    B: Send + 'static,
{
    type Response = Response<BffBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        // The body is never read: every route works from the method, URI and headers.
        let (parts, _) = request.into_parts();
        Box::pin(async move { Ok(inner.route(parts).await) })
    }
}
