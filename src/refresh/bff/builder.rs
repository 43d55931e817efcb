//! [`BffBuilder`]: the settings of a [`Bff`], checked when it is built.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use tower_cognito_client::TokenClient;
use url::Url;

use super::{
    Bff, Inner, DEFAULT_LOCK_LEASE, DEFAULT_PREFIX, DEFAULT_REFRESH_MARGIN, DEFAULT_SESSION_TTL,
};
use crate::claims::{AccessClaims, IdClaims};
use crate::clock::{Clock, SystemClock};
use crate::config::ConfigError;
use crate::refresh::coordinator::{Coordination, Coordinator};
use crate::refresh::seal::SealingKeys;
use crate::refresh::store::RefreshStore;
use crate::refresh::web::{self, CookieRules};
use crate::verifier::Verifier;

/// Builds a [`Bff`].
#[must_use]
pub struct BffBuilder {
    client: TokenClient,
    store: Arc<dyn RefreshStore>,
    keys: SealingKeys,
    id_verifier: Verifier<IdClaims>,
    redirect_url: String,
    window: Option<Verifier<AccessClaims>>,
    scopes: Vec<String>,
    prefix: String,
    extra_origins: Vec<String>,
    session_cookie: String,
    login_cookie: String,
    insecure_loopback: bool,
    margin: Duration,
    lease: Duration,
    store_timeout: Duration,
    session_ttl: Duration,
    clock: Arc<dyn Clock>,
    coordination: Coordination,
}

impl fmt::Debug for BffBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BffBuilder")
            .field("redirect_url", &self.redirect_url)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Bff {
    /// A builder: the app client's token client, where sessions live, the keys that seal their
    /// tokens, a verifier of the app client's id tokens (`TokenUse::Id`, the same client id),
    /// and the callback URL registered with the app client (such as
    /// `https://app.example.com/auth/callback`).
    pub fn builder(
        client: TokenClient,
        store: Arc<dyn RefreshStore>,
        keys: SealingKeys,
        id_verifier: Verifier<IdClaims>,
        redirect_url: impl Into<String>,
    ) -> BffBuilder {
        BffBuilder {
            client,
            store,
            keys,
            id_verifier,
            redirect_url: redirect_url.into(),
            window: None,
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            prefix: DEFAULT_PREFIX.into(),
            extra_origins: Vec::new(),
            session_cookie: "cognito_session".into(),
            login_cookie: "cognito_login".into(),
            insecure_loopback: false,
            margin: DEFAULT_REFRESH_MARGIN,
            lease: DEFAULT_LOCK_LEASE,
            store_timeout: Duration::from_secs(1),
            session_ttl: DEFAULT_SESSION_TTL,
            clock: Arc::new(SystemClock),
            coordination: Coordination::Locked,
        }
    }
}

impl BffBuilder {
    /// The API's verifier, with its session window: the access token of each sign-in is checked
    /// with it, and sign-out revokes the session in its store, so its access tokens stop
    /// working at once (Cognito's revocation cannot do that for JWT verifiers).
    pub fn revoke_in(mut self, api_verifier: Verifier<AccessClaims>) -> Self {
        self.window = Some(api_verifier);
        self
    }

    /// The scopes asked for at sign-in (default `openid email profile`).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The route prefix and cookie path (default `/auth`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Another origin whose POSTs are accepted, besides the callback URL's.
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.extra_origins.push(origin.into());
        self
    }

    /// Refresh when the stored access token expires within `margin` (default 60 s).
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// The lease of a session's refresh lock (default 15 s). Keep it longer than the token
    /// client's total timeout: a holder still waiting on Cognito when its lease ends may see
    /// its result refused in favour of a newer holder's.
    pub fn lock_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long one store step may take before the request gets 503 (default 1 s).
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// How long a session lives from its sign-in (default 30 days): set it to the app client's
    /// refresh-token lifetime. Refreshes do not extend it, as rotated refresh tokens live only
    /// for the rest of the original's lifetime.
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// The cookie names (default `cognito_session` and `cognito_login`).
    pub fn cookie_names(mut self, session: impl Into<String>, login: impl Into<String>) -> Self {
        self.session_cookie = session.into();
        self.login_cookie = login.into();
        self
    }

    /// Cookies without `Secure`, for a callback URL that is plain `http` on a loopback host
    /// (local development only; refused for any other callback URL).
    pub fn insecure_cookies_on_loopback(mut self, allow: bool) -> Self {
        self.insecure_loopback = allow;
        self
    }

    /// The time source for token and session expiry (tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// **Test-only.** Turns the one-refresh-per-session coordination off: every request that
    /// finds a stale token refreshes on its own and a spent refresh token ends the session, as
    /// a naive backend-for-frontend does. It exists to show the race it removes; never use it
    /// in production.
    #[doc(hidden)]
    pub fn uncoordinated_for_tests(mut self) -> Self {
        self.coordination = Coordination::Off;
        self
    }

    /// Checks the settings and builds the service.
    pub fn build(self) -> Result<Bff, ConfigError> {
        let invalid_url = |reason: &str| ConfigError::InvalidUrl {
            setting: "redirect URL",
            reason: reason.to_owned(),
        };
        let redirect = Url::parse(&self.redirect_url).map_err(|e| invalid_url(&e.to_string()))?;
        let loopback = matches!(redirect.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
            || matches!(redirect.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
            || matches!(redirect.host(), Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost"));
        let secure = match redirect.scheme() {
            "https" => true,
            "http" if self.insecure_loopback && loopback => false,
            "http" => return Err(invalid_url(
                "must be https (plain http needs insecure_cookies_on_loopback and a loopback host)",
            )),
            _ => return Err(invalid_url("must be an https URL")),
        };
        let setting = |setting, reason| Err(ConfigError::InvalidSetting { setting, reason });
        if !self.prefix.starts_with('/')
            || self.prefix.ends_with('/')
            || !web::same_origin_path(&self.prefix)
        {
            return setting(
                "prefix",
                "must start with / and not end with one, such as /auth",
            );
        }
        let cookie_name_ok = |n: &str| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !cookie_name_ok(&self.session_cookie)
            || !cookie_name_ok(&self.login_cookie)
            || self.session_cookie == self.login_cookie
        {
            return setting(
                "cookie names",
                "two different names of letters, digits, _ and -",
            );
        }
        if self.lease.is_zero() || self.store_timeout.is_zero() || self.session_ttl.as_secs() < 60 {
            return setting(
                "lock lease, store timeout or session ttl",
                "must be positive (the session ttl at least a minute)",
            );
        }
        let mut allowed_origins = vec![redirect.origin().ascii_serialization()];
        for origin in self.extra_origins {
            match Url::parse(&origin) {
                Ok(url) if url.origin().is_tuple() => {
                    allowed_origins.push(url.origin().ascii_serialization())
                }
                _ => {
                    return Err(ConfigError::InvalidUrl {
                        setting: "allowed origin",
                        reason: "not an origin such as https://app.example.com".into(),
                    })
                }
            }
        }
        let coordinator = Coordinator::new(
            self.store,
            self.client,
            self.keys,
            self.clock,
            self.margin,
            self.lease,
            self.store_timeout,
            self.coordination,
        );
        Ok(Bff {
            inner: Arc::new(Inner {
                coordinator,
                id_verifier: self.id_verifier,
                window: self.window,
                redirect_url: self.redirect_url,
                scopes: self.scopes,
                cookies: CookieRules {
                    session_name: self.session_cookie,
                    login_name: self.login_cookie,
                    path: self.prefix.clone(),
                    secure,
                },
                prefix: self.prefix,
                allowed_origins,
                session_ttl: i64::try_from(self.session_ttl.as_secs()).unwrap_or(i64::MAX),
                random: SystemRandom::new(),
            }),
        })
    }
}
