//! [`TokenClient`]: Cognito's token endpoints, with typed answers.
//!
//! - The OAuth2 endpoints of the pool's domain (`/oauth2/authorize`, `/oauth2/token`), through
//!   the [`oauth2`] crate: the authorization-code grant with PKCE S256, the `refresh_token` grant
//!   and `client_credentials`.
//! - Cognito's JSON API (`cognito-idp.{region}.amazonaws.com`), written here because it is small
//!   and Cognito-only: `GetTokensFromRefreshToken` (the call that completes refresh-token
//!   rotation), `InitiateAuth` with `REFRESH_TOKEN_AUTH` (the refresh of app clients without
//!   rotation) and `RevokeToken`.
//!
//! Every call goes through one `reqwest` client built once, with connect and total timeouts and
//! a cap on the answer's size, and ends in one of four typed answers: new [`Tokens`],
//! [`TokenError::Reused`], [`TokenError::Invalid`] (sign in again) or
//! [`TokenError::Unavailable`] (retry later, never a reason to sign anyone out), plus
//! [`TokenError::Rejected`] when Cognito refuses the request itself (a configuration error).

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use url::Url;

use crate::secret::Secret;

/// The default connect timeout: 2 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The default total timeout of one call: 10 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default cap on an answer's body: 64 KiB (Cognito's token answers are a few KiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

const JSON_API_TARGET: &str = "AWSCognitoIdentityProviderService.";

/// Tokens from one successful call.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Tokens {
    /// The access token.
    pub access_token: Secret,
    /// The id token (absent from `client_credentials` answers).
    pub id_token: Option<Secret>,
    /// A new refresh token: present after a sign-in and after a rotating refresh; absent when
    /// the refresh token in use stays valid (keep it).
    pub refresh_token: Option<Secret>,
    /// The access token's lifetime as Cognito announced it.
    pub expires_in: Duration,
}

/// Why a call did not give tokens.
#[derive(Debug)]
#[non_exhaustive]
pub enum TokenError {
    /// The refresh token was already rotated (`RefreshTokenReuseException`): another refresh
    /// spent it. A newer refresh token may exist somewhere; without one, sign in again.
    Reused,
    /// The grant is no good: the refresh token expired or was revoked, the code was used or
    /// expired (`NotAuthorizedException`, `invalid_grant`). Sign in again.
    Invalid,
    /// Cognito could not be reached or did not answer properly (network, timeout, 5xx,
    /// throttling, an answer too large or of the wrong shape). Retry later; never sign anyone
    /// out for this.
    Unavailable(Cause),
    /// Cognito refused the request itself (unknown app client, wrong client secret, a scope the
    /// client may not ask for): a configuration error on our side, not the user's.
    Rejected(Cause),
}

impl TokenError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// Whether the user must sign in again (unless a newer refresh token is at hand).
    pub fn needs_sign_in(&self) -> bool {
        matches!(self, Self::Reused | Self::Invalid)
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reused => f.write_str("the refresh token was already used (rotated)"),
            Self::Invalid => f.write_str("the grant is expired, revoked or invalid"),
            Self::Unavailable(cause) => write!(f, "Cognito is unavailable: {cause}"),
            Self::Rejected(cause) => write!(f, "Cognito refused the request: {cause}"),
        }
    }
}

impl StdError for TokenError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Unavailable(cause) | Self::Rejected(cause) => cause.source(),
            _ => None,
        }
    }
}

/// What went wrong, for logs: Cognito's error name (such as `TooManyRequestsException` or
/// `invalid_client`) or a short description; the underlying error behind `source()`.
#[derive(Debug)]
pub struct Cause {
    what: Cow<'static, str>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl Cause {
    fn new(what: impl Into<Cow<'static, str>>) -> Self {
        Self {
            what: what.into(),
            source: None,
        }
    }

    fn with_source(what: &'static str, source: impl StdError + Send + Sync + 'static) -> Self {
        Self {
            what: Cow::Borrowed(what),
            source: Some(Box::new(source)),
        }
    }

    /// The error name or description.
    pub fn what(&self) -> &str {
        &self.what
    }

    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

/// A configuration the [`TokenClientBuilder`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfigError {
    setting: &'static str,
    reason: String,
}

impl ClientConfigError {
    fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }

    /// The setting at fault.
    pub fn setting(&self) -> &'static str {
        self.setting
    }
}

impl fmt::Display for ClientConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.setting, self.reason)
    }
}

impl StdError for ClientConfigError {}

/// The start of a hosted-UI sign-in: send the browser to `url`, and keep the rest (in a
/// short-lived, HttpOnly cookie or server-side) to check the callback.
#[derive(Debug)]
#[non_exhaustive]
pub struct Authorization {
    /// `/oauth2/authorize?...` with `state`, `nonce` and the PKCE S256 challenge.
    pub url: String,
    /// The `state` to compare with the callback's.
    pub state: Secret,
    /// The `nonce` the id token must carry.
    pub nonce: Secret,
    /// The PKCE verifier for [`TokenClient::exchange_code`].
    pub pkce_verifier: Secret,
}

/// Builds a [`TokenClient`].
///
/// ```
/// use tower_cognito_client::TokenClient;
///
/// let client = TokenClient::builder("4p1d8k3k9q2e5s7t0u6v1w3x4y")
///     .region("eu-west-1")
///     .domain("myapp.auth.eu-west-1.amazoncognito.com")
///     .build()?;
/// # Ok::<(), tower_cognito_client::ClientConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TokenClientBuilder {
    client_id: String,
    client_secret: Option<Secret>,
    region: Option<String>,
    domain: Option<String>,
    token_endpoint: Option<String>,
    authorize_endpoint: Option<String>,
    idp_endpoint: Option<String>,
    allow_http_loopback: bool,
    connect_timeout: Duration,
    timeout: Duration,
    max_body_bytes: usize,
}

impl TokenClientBuilder {
    /// The app client's secret, when it has one (`client_secret_basic` on the OAuth2 endpoints,
    /// `ClientSecret` in the JSON API).
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(Secret::new(secret));
        self
    }

    /// The pool's region: the JSON API is `https://cognito-idp.{region}.amazonaws.com/`.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The hosted-UI domain: a bare host such as `myapp.auth.eu-west-1.amazoncognito.com`
    /// (`https://` implied) or a full origin such as `http://127.0.0.1:9000`. Needed for the
    /// OAuth2 grants.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The token endpoint's full URL (default `{domain}/oauth2/token`).
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.token_endpoint = Some(url.into());
        self
    }

    /// The authorize endpoint's full URL (default `{domain}/oauth2/authorize`).
    pub fn authorize_endpoint(mut self, url: impl Into<String>) -> Self {
        self.authorize_endpoint = Some(url.into());
        self
    }

    /// The JSON API's base URL (default `https://cognito-idp.{region}.amazonaws.com/`).
    pub fn idp_endpoint(mut self, url: impl Into<String>) -> Self {
        self.idp_endpoint = Some(url.into());
        self
    }

    /// Allow plain `http://` endpoints whose host is `localhost` or a loopback address (local
    /// Cognitos, emulators). Off by default: every endpoint must be `https`.
    pub fn allow_http_on_loopback(mut self, allow: bool) -> Self {
        self.allow_http_loopback = allow;
        self
    }

    /// Connect and total timeouts of one call (default 2 s and 10 s).
    pub fn timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.connect_timeout = connect;
        self.timeout = total;
        self
    }

    /// The cap on an answer's body (default 64 KiB); a larger answer is
    /// [`TokenError::Unavailable`] and nothing of it is used.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Checks the settings and builds the client (and its one HTTP client).
    pub fn build(self) -> Result<TokenClient, ClientConfigError> {
        if self.client_id.is_empty() || self.client_id.len() > 128 {
            return Err(ClientConfigError::new(
                "client id",
                "must be 1 to 128 characters",
            ));
        }
        if self.connect_timeout.is_zero() || self.timeout.is_zero() || self.max_body_bytes == 0 {
            return Err(ClientConfigError::new(
                "timeouts or body cap",
                "must be greater than zero",
            ));
        }
        let allow = self.allow_http_loopback;
        let domain = self
            .domain
            .as_deref()
            .map(|d| domain_origin(d, allow))
            .transpose()?;
        let endpoint =
            |setting: &'static str, given: &Option<String>, path: &str| match (given, &domain) {
                (Some(url), _) => checked_url(setting, url, allow).map(Some),
                (None, Some(origin)) => {
                    checked_url(setting, &format!("{origin}{path}"), allow).map(Some)
                }
                (None, None) => Ok(None),
            };
        let token_endpoint = endpoint("token endpoint", &self.token_endpoint, "/oauth2/token")?;
        let authorize_endpoint = endpoint(
            "authorize endpoint",
            &self.authorize_endpoint,
            "/oauth2/authorize",
        )?;
        let idp_endpoint = match (&self.idp_endpoint, &self.region) {
            (Some(url), _) => checked_url("idp endpoint", url, allow)?,
            (None, Some(region)) => {
                if region.is_empty()
                    || !region
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                {
                    return Err(ClientConfigError::new("region", "not a region name"));
                }
                checked_url(
                    "idp endpoint",
                    &format!("https://cognito-idp.{region}.amazonaws.com/"),
                    false,
                )?
            }
            (None, None) => {
                return Err(ClientConfigError::new(
                    "idp endpoint",
                    "give the region or the endpoint",
                ))
            }
        };
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            // Token endpoints never redirect; following one could send a code or a secret on.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientConfigError::new("HTTP client", e.to_string()))?;
        let oauth = token_endpoint.map(|token| {
            let mut client = OAuthBase::new(ClientId::new(self.client_id.clone()))
                .set_token_uri(TokenUrl::from_url(token))
                .set_auth_type(AuthType::BasicAuth);
            if let Some(secret) = &self.client_secret {
                client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
            }
            client
        });
        Ok(TokenClient {
            inner: Arc::new(Inner {
                http,
                client_id: self.client_id,
                client_secret: self.client_secret,
                oauth,
                authorize_endpoint: authorize_endpoint.map(AuthUrl::from_url),
                idp_endpoint,
                max_body_bytes: self.max_body_bytes,
            }),
        })
    }
}

/// `https://{host}` for a bare host, the origin itself for a full one.
fn domain_origin(domain: &str, allow_http: bool) -> Result<String, ClientConfigError> {
    let full = if domain.contains("://") {
        domain.trim_end_matches('/').to_owned()
    } else {
        format!("https://{}", domain.trim_end_matches('/'))
    };
    let url = checked_url("domain", &full, allow_http)?;
    if url.path() != "/" || url.query().is_some() {
        return Err(ClientConfigError::new(
            "domain",
            "must be a host or an origin, without a path",
        ));
    }
    Ok(full)
}

/// `https`, or `http` on a loopback host when allowed.
fn checked_url(
    setting: &'static str,
    raw: &str,
    allow_http: bool,
) -> Result<Url, ClientConfigError> {
    let url = Url::parse(raw).map_err(|e| ClientConfigError::new(setting, e.to_string()))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if allow_http && loopback => Ok(url),
        "http" if allow_http => Err(ClientConfigError::new(
            setting,
            "plain http is allowed on loopback hosts only",
        )),
        "http" => Err(ClientConfigError::new(
            setting,
            "must be https (plain http needs allow_http_on_loopback, and a loopback host)",
        )),
        _ => Err(ClientConfigError::new(setting, "must be an https URL")),
    }
}

/// Cognito's answers carry an `id_token` beside the standard fields.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct CognitoFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl ExtraTokenFields for CognitoFields {}

type OAuthTokens = StandardTokenResponse<CognitoFields, BasicTokenType>;

type OAuthBase = oauth2::Client<
    BasicErrorResponse,
    OAuthTokens,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
>;

type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    OAuthTokens,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// A Cognito app client's token calls. Cheap to clone: one HTTP client shared by all clones.
#[derive(Clone)]
pub struct TokenClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    client_id: String,
    client_secret: Option<Secret>,
    oauth: Option<OAuthClient>,
    authorize_endpoint: Option<AuthUrl>,
    idp_endpoint: Url,
    max_body_bytes: usize,
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("TokenClient")
            .field("client_id", &inner.client_id)
            .field(
                "client_secret",
                &inner.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "token_endpoint",
                &inner.oauth.as_ref().map(|o| o.token_uri().as_str()),
            )
            .field("idp_endpoint", &inner.idp_endpoint.as_str())
            .finish()
    }
}

/// What our HTTP function answers the `oauth2` crate when no usable answer came back.
#[derive(Debug)]
enum Transport {
    Http(reqwest::Error),
    Status(u16),
    TooLarge,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(e) => write!(f, "{e}"),
            Self::Status(status) => write!(f, "status {status}"),
            Self::TooLarge => f.write_str("answer larger than the cap"),
        }
    }
}

impl StdError for Transport {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Http(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Transport> for TokenError {
    fn from(transport: Transport) -> Self {
        match transport {
            Transport::Http(e) if e.is_timeout() => {
                TokenError::Unavailable(Cause::with_source("timeout", e))
            }
            Transport::Http(e) => TokenError::Unavailable(Cause::with_source("network", e)),
            Transport::Status(status) => {
                TokenError::Unavailable(Cause::new(format!("status {status}")))
            }
            Transport::TooLarge => TokenError::Unavailable(Cause::new("answer too large")),
        }
    }
}

impl TokenClient {
    /// A builder for app client `client_id`.
    pub fn builder(client_id: impl Into<String>) -> TokenClientBuilder {
        TokenClientBuilder {
            client_id: client_id.into(),
            client_secret: None,
            region: None,
            domain: None,
            token_endpoint: None,
            authorize_endpoint: None,
            idp_endpoint: None,
            allow_http_loopback: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// The app client id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// Starts a hosted-UI sign-in: an `/oauth2/authorize` URL with a fresh `state`, `nonce` and
    /// PKCE S256 challenge. Needs the domain (or the authorize endpoint).
    pub fn authorize(
        &self,
        redirect_uri: &str,
        scopes: &[&str],
    ) -> Result<Authorization, ClientConfigError> {
        let auth_url = self.inner.authorize_endpoint.clone().ok_or_else(|| {
            ClientConfigError::new("authorize endpoint", "give the domain or the endpoint")
        })?;
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| ClientConfigError::new("redirect URL", e.to_string()))?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = CsrfToken::new_random();
        let client = oauth2::basic::BasicClient::new(ClientId::new(self.inner.client_id.clone()))
            .set_auth_uri(auth_url)
            .set_redirect_uri(redirect);
        let (url, state) = client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(scopes.iter().map(|s| Scope::new((*s).to_owned())))
            .add_extra_param("nonce", nonce.secret())
            .set_pkce_challenge(challenge)
            .url();
        Ok(Authorization {
            url: url.into(),
            state: Secret::new(state.into_secret()),
            nonce: Secret::new(nonce.into_secret()),
            pkce_verifier: Secret::new(verifier.into_secret()),
        })
    }

    /// Exchanges a hosted-UI authorization code (the `authorization_code` grant with the PKCE
    /// verifier of [`authorize`](Self::authorize)).
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &Secret,
        redirect_uri: &str,
    ) -> Result<Tokens, TokenError> {
        let oauth = self.oauth()?;
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|_| TokenError::Rejected(Cause::new("redirect URL is not a URL")))?;
        let code = AuthorizationCode::new(code.to_owned());
        let send = self.form_sender();
        let answer = oauth
            .exchange_code(code)
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.expose().to_owned()))
            .set_redirect_uri(Cow::Owned(redirect))
            .request_async(&send)
            .await;
        oauth_tokens(answer)
    }

    /// Refreshes with the `/oauth2/token` `refresh_token` grant.
    pub async fn refresh_oauth(&self, refresh_token: &Secret) -> Result<Tokens, TokenError> {
        let oauth = self.oauth()?;
        let token = RefreshToken::new(refresh_token.expose().to_owned());
        let send = self.form_sender();
        oauth_tokens(
            oauth
                .exchange_refresh_token(&token)
                .request_async(&send)
                .await,
        )
    }

    /// An M2M access token (the `client_credentials` grant; the app client needs a secret).
    /// `scopes` empty: every scope the app client may ask for.
    pub async fn client_credentials(&self, scopes: &[&str]) -> Result<Tokens, TokenError> {
        let oauth = self.oauth()?;
        let send = self.form_sender();
        oauth_tokens(
            oauth
                .exchange_client_credentials()
                .add_scopes(scopes.iter().map(|s| Scope::new((*s).to_owned())))
                .request_async(&send)
                .await,
        )
    }

    /// Refreshes with `GetTokensFromRefreshToken`, the call that completes refresh-token
    /// rotation. With rotation on, the answer carries a new refresh token and the one sent is
    /// spent (after the app client's grace period); without, no refresh token comes back and
    /// the one sent stays valid.
    pub async fn refresh(
        &self,
        refresh_token: &Secret,
        device_key: Option<&str>,
    ) -> Result<Tokens, TokenError> {
        let mut body = json!({
            "ClientId": self.inner.client_id,
            "RefreshToken": refresh_token.expose(),
        });
        if let Some(secret) = &self.inner.client_secret {
            body["ClientSecret"] = Value::from(secret.expose());
        }
        if let Some(device) = device_key {
            body["DeviceKey"] = Value::from(device);
        }
        let answer = self.json_api("GetTokensFromRefreshToken", &body).await?;
        json_tokens(&answer)
    }

    /// Refreshes with `InitiateAuth` and `AuthFlow: REFRESH_TOKEN_AUTH`, the refresh of app
    /// clients WITHOUT refresh-token rotation (and the one emulators such as moto and
    /// cognito-local implement).
    ///
    /// - No new refresh token comes back: the one sent stays valid, keep it
    ///   ([`Tokens::refresh_token`] is `None`).
    /// - App clients with rotation on refuse this flow: use [`refresh`](Self::refresh)
    ///   (`GetTokensFromRefreshToken`) for them.
    /// - `username`: when the app client has a secret, Cognito wants a `SECRET_HASH`,
    ///   base64(HMAC-SHA256(client secret, username + client id)), and for this flow the
    ///   username is the user's Cognito username (the access token's `username` claim), which
    ///   in pools that sign in by email or phone is the user's `sub`, NOT the email typed at
    ///   sign-in. Without a secret it is not needed and not sent. A client with a secret and no
    ///   `username` gives [`TokenError::Rejected`] before any call.
    /// - `device_key`: the remembered device's key (`DEVICE_KEY`), when there is one.
    ///
    /// Errors as for [`refresh`](Self::refresh): an expired, revoked or unknown refresh token
    /// (and a wrong `SECRET_HASH`, which Cognito reports the same way) is
    /// [`TokenError::Invalid`].
    pub async fn refresh_initiate_auth(
        &self,
        refresh_token: &Secret,
        username: Option<&str>,
        device_key: Option<&str>,
    ) -> Result<Tokens, TokenError> {
        let mut parameters = json!({ "REFRESH_TOKEN": refresh_token.expose() });
        if let Some(secret) = &self.inner.client_secret {
            let username = username.ok_or_else(|| {
                TokenError::Rejected(Cause::new(
                    "REFRESH_TOKEN_AUTH with a client secret needs the username \
                     (the access token's `username` claim) for SECRET_HASH",
                ))
            })?;
            parameters["SECRET_HASH"] =
                Value::from(secret_hash(secret, username, &self.inner.client_id).expose());
        }
        if let Some(device) = device_key {
            parameters["DEVICE_KEY"] = Value::from(device);
        }
        let body = json!({
            "AuthFlow": "REFRESH_TOKEN_AUTH",
            "ClientId": self.inner.client_id,
            "AuthParameters": parameters,
        });
        let answer = self.json_api("InitiateAuth", &body).await?;
        json_tokens(&answer)
    }

    /// Revokes a refresh token and the access and id tokens it issued (`RevokeToken`). Cognito
    /// then refuses them for its own APIs; JWT verifiers still accept the access tokens until
    /// they expire, unless a session window revokes the session too.
    pub async fn revoke(&self, refresh_token: &Secret) -> Result<(), TokenError> {
        let mut body = json!({
            "ClientId": self.inner.client_id,
            "Token": refresh_token.expose(),
        });
        if let Some(secret) = &self.inner.client_secret {
            body["ClientSecret"] = Value::from(secret.expose());
        }
        self.json_api("RevokeToken", &body).await.map(|_| ())
    }

    fn oauth(&self) -> Result<&OAuthClient, TokenError> {
        self.inner.oauth.as_ref().ok_or_else(|| {
            TokenError::Rejected(Cause::new(
                "no token endpoint: give the domain or the endpoint",
            ))
        })
    }

    /// The HTTP function for the `oauth2` crate: one form POST per call, with futures that own
    /// what they use (so they are `Send` whatever the caller's lifetimes). 5xx and 429 become
    /// transport errors, so they are `Unavailable` rather than parsed as an OAuth2 error.
    fn form_sender(&self) -> impl Fn(HttpRequest) -> FormFuture {
        let http = self.inner.http.clone();
        let cap = self.inner.max_body_bytes;
        move |request| {
            let http = http.clone();
            Box::pin(async move {
                let request = reqwest::Request::try_from(request).map_err(Transport::Http)?;
                let response = http.execute(request).await.map_err(Transport::Http)?;
                let status = response.status();
                if status.is_server_error() || status.as_u16() == 429 {
                    return Err(Transport::Status(status.as_u16()));
                }
                let body = read_capped(response, cap).await?;
                let mut answer = HttpResponse::new(body);
                *answer.status_mut() = status;
                answer.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                Ok(answer)
            })
        }
    }

    /// One call of Cognito's JSON API: the answer's JSON, or the typed error.
    async fn json_api(&self, operation: &str, body: &Value) -> Result<Value, TokenError> {
        let response = self
            .inner
            .http
            .post(self.inner.idp_endpoint.clone())
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", format!("{JSON_API_TARGET}{operation}"))
            .body(body.to_string())
            .send()
            .await
            .map_err(Transport::Http)?;
        let status = response.status();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(error_name);
        let body = read_capped(response, self.inner.max_body_bytes).await?;
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        if status.is_success() {
            return json.ok_or_else(|| TokenError::Unavailable(Cause::new("answer is not JSON")));
        }
        let name = error_type.or_else(|| {
            json.as_ref()
                .and_then(|j| j.get("__type"))
                .and_then(Value::as_str)
                .map(error_name)
        });
        Err(json_api_error(status.as_u16(), name.as_deref()))
    }
}

type FormFuture = Pin<Box<dyn Future<Output = Result<HttpResponse, Transport>> + Send>>;

/// The body, or `TooLarge` as soon as it passes `cap` (nothing of it is used then).
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, Transport> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(Transport::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Transport::Http)? {
        if body.len() + chunk.len() > cap {
            return Err(Transport::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `NotAuthorizedException` from `NotAuthorizedException:http://...` or
/// `aws.cognito#NotAuthorizedException`.
fn error_name(raw: &str) -> String {
    let name = raw.split(':').next().unwrap_or(raw);
    name.rsplit('#').next().unwrap_or(name).trim().to_owned()
}

fn json_api_error(status: u16, name: Option<&str>) -> TokenError {
    match name {
        Some("RefreshTokenReuseException") => TokenError::Reused,
        Some("NotAuthorizedException" | "UserNotFoundException" | "UserNotConfirmedException") => {
            TokenError::Invalid
        }
        Some(
            name @ ("TooManyRequestsException"
            | "LimitExceededException"
            | "InternalErrorException"
            | "ServiceUnavailableException"
            | "ThrottlingException"),
        ) => TokenError::Unavailable(Cause::new(name.to_owned())),
        _ if status >= 500 || status == 429 => {
            TokenError::Unavailable(Cause::new(format!("status {status}")))
        }
        Some(name) => TokenError::Rejected(Cause::new(name.to_owned())),
        None => TokenError::Unavailable(Cause::new(format!("status {status}, no error name"))),
    }
}

/// Cognito's `SECRET_HASH`: base64(HMAC-SHA256(key = client secret, username + client id)).
fn secret_hash(client_secret: &Secret, username: &str, client_id: &str) -> Secret {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, client_secret.expose().as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(username.as_bytes());
    context.update(client_id.as_bytes());
    Secret::new(STANDARD.encode(context.sign().as_ref()))
}

/// `AuthenticationResult` of a JSON API answer.
fn json_tokens(answer: &Value) -> Result<Tokens, TokenError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct AuthenticationResult {
        access_token: String,
        id_token: Option<String>,
        refresh_token: Option<String>,
        expires_in: Option<u64>,
    }
    let result = answer
        .get("AuthenticationResult")
        .cloned()
        .and_then(|r| serde_json::from_value::<AuthenticationResult>(r).ok())
        .ok_or_else(|| TokenError::Unavailable(Cause::new("answer has no AuthenticationResult")))?;
    Ok(Tokens {
        access_token: Secret::new(result.access_token),
        id_token: result.id_token.map(Secret::new),
        refresh_token: result.refresh_token.map(Secret::new),
        expires_in: Duration::from_secs(result.expires_in.unwrap_or(3600)),
    })
}

fn oauth_tokens(
    answer: Result<OAuthTokens, RequestTokenError<Transport, BasicErrorResponse>>,
) -> Result<Tokens, TokenError> {
    match answer {
        Ok(tokens) => Ok(Tokens {
            access_token: Secret::new(tokens.access_token().secret().clone()),
            id_token: tokens.extra_fields().id_token.clone().map(Secret::new),
            refresh_token: tokens
                .refresh_token()
                .map(|t| Secret::new(t.secret().clone())),
            expires_in: tokens.expires_in().unwrap_or(Duration::from_secs(3600)),
        }),
        Err(RequestTokenError::ServerResponse(error)) => Err(match error.error() {
            BasicErrorResponseType::InvalidGrant => TokenError::Invalid,
            other => TokenError::Rejected(Cause::new(other.as_ref().to_owned())),
        }),
        Err(RequestTokenError::Request(transport)) => Err(transport.into()),
        Err(RequestTokenError::Parse(error, _)) => Err(TokenError::Unavailable(
            Cause::with_source("answer of the wrong shape", error),
        )),
        Err(RequestTokenError::Other(what)) => Err(TokenError::Unavailable(Cause::new(what))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_read_from_either_form() {
        assert_eq!(
            error_name("NotAuthorizedException:http://internal.amazon.com/"),
            "NotAuthorizedException"
        );
        assert_eq!(
            error_name("aws.cognito#RefreshTokenReuseException"),
            "RefreshTokenReuseException"
        );
        assert!(matches!(
            json_api_error(400, Some("RefreshTokenReuseException")),
            TokenError::Reused
        ));
        assert!(matches!(
            json_api_error(400, Some("NotAuthorizedException")),
            TokenError::Invalid
        ));
        assert!(json_api_error(400, Some("TooManyRequestsException")).is_retryable());
        assert!(json_api_error(503, None).is_retryable());
        assert!(matches!(
            json_api_error(400, Some("ResourceNotFoundException")),
            TokenError::Rejected(_)
        ));
    }

    #[test]
    fn secret_hash_is_hmac_sha256_of_username_and_client_id() {
        // base64(HMAC-SHA256(key "secret", "alice" + "client")), computed with Python's hmac.
        assert_eq!(
            secret_hash(&Secret::new("secret"), "alice", "client").expose(),
            "RTsve+FQ659UKyESgvLg9GYmZEL+QjzQsW/OjL77/b0="
        );
    }

    #[tokio::test]
    async fn initiate_auth_refresh_with_a_secret_needs_the_username() {
        let client = TokenClient::builder("client")
            .idp_endpoint("http://127.0.0.1:9/")
            .allow_http_on_loopback(true)
            .client_secret("secret")
            .build()
            .unwrap();
        let error = client
            .refresh_initiate_auth(&Secret::new("refresh"), None, None)
            .await
            .unwrap_err();
        match error {
            TokenError::Rejected(cause) => assert!(cause.what().contains("username"), "{cause}"),
            other => panic!("expected Rejected, got {other:?}"),
        }
    }

    #[test]
    fn endpoints_are_https_or_loopback_http_when_allowed() {
        let build = |domain: &str, allow: bool| {
            TokenClient::builder("client")
                .region("eu-west-1")
                .domain(domain)
                .allow_http_on_loopback(allow)
                .build()
        };
        assert!(build("myapp.auth.eu-west-1.amazoncognito.com", false).is_ok());
        assert!(build("http://127.0.0.1:9000", true).is_ok());
        assert!(build("http://localhost:9000", true).is_ok());
        assert_eq!(
            build("http://127.0.0.1:9000", false).unwrap_err().setting(),
            "domain"
        );
        assert_eq!(
            build("http://example.com", true).unwrap_err().setting(),
            "domain"
        );
        assert_eq!(
            build("https://x.example/path", false)
                .unwrap_err()
                .setting(),
            "domain"
        );
        let no_region = TokenClient::builder("client").build().unwrap_err();
        assert_eq!(no_region.setting(), "idp endpoint");
        let bad_region = TokenClient::builder("client")
            .region("eu-west-1/../x")
            .build()
            .unwrap_err();
        assert_eq!(bad_region.setting(), "region");
    }

    #[test]
    fn debug_redacts_the_secret() {
        let client = TokenClient::builder("client")
            .region("eu-west-1")
            .client_secret("s3cr3t-value")
            .build()
            .unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
