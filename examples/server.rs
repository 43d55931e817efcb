//! A small API protected by tower-cognito, for a real user pool: `cargo run --example server`.
//!
//! Configured entirely by environment variables:
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `COGNITO_USER_POOL_ID` | (required) | the pool, such as `eu-west-1_AbCdEf123`, or several, comma-separated; an emulator's id without a region (cognito-local's `local_6e1bGJFg`) needs `COGNITO_ISSUER` and `COGNITO_JWKS_URL` |
//! | `COGNITO_CLIENT_IDS` | (required) | the accepted app client ids, comma-separated; every listed pool accepts them |
//! | `COGNITO_TOKEN_USE` | `access` | which tokens to accept: `access`, `id` or `any` |
//! | `COGNITO_REGION` | from the pool id | the pools' region; must match every pool id |
//! | `COGNITO_JWKS_URL` | the pool's | JWKS URL override, for emulators (moto, cognito-local); `{pool}` is replaced by each pool id (required with several pools) |
//! | `COGNITO_ISSUER` | the pool's | issuer (`iss`) override, for emulators; `{pool}` is replaced by each pool id (required with several pools) |
//! | `COGNITO_ALLOW_HTTP` | `0` | `1` allows plain `http://` in the two overrides, on loopback only |
//! | `COGNITO_MAX_LIFETIME_SECS` | off | refuse tokens whose `exp - iat` is longer than this many seconds (401) |
//! | `COGNITO_TOKEN_COOKIE` | none | also take the token from this cookie (a bearer header and the cookie on one request: 400); needs `COGNITO_CSRF_HEADER` or `COGNITO_ALLOWED_ORIGINS` |
//! | `COGNITO_CSRF_HEADER` | none | with a cookie token, unsafe methods (not GET/HEAD/OPTIONS/TRACE) must carry this header (`x-requested-with`, say) |
//! | `COGNITO_ALLOWED_ORIGINS` | none | with a cookie token, unsafe methods must come with one of these comma-separated `Origin`s (`https://app.example.com`) |
//! | `COGNITO_JWKS_PROXY` | direct | `env`: follow `HTTPS_PROXY`/`NO_PROXY`; or a proxy URL (`http://proxy.internal:3128`) for the JWKS fetches; the environment's proxy variables are ignored otherwise |
//! | `COGNITO_JWKS_NO_PROXY` | none | with a proxy URL: comma-separated hosts fetched directly |
//! | `COGNITO_JWKS_CA_FILE` | none | a PEM file of CA certificates also trusted for the https JWKS URL (a TLS-inspecting proxy, a private mirror) |
//! | `SESSION_STORE` | `none` | the session window: `none`, `memory`, a `redis://` URL (feature `redis`; a Redis Cluster node's URL uses the whole cluster) or a `postgres://` URL (feature `postgres`; TLS as its `sslmode` says: `?sslmode=require` is TLS with the certificate and host name verified against the system's roots) |
//! | `SESSION_STORE_CA_FILE` | none | a PEM file of CA certificates trusted for TLS to a `postgres://` `SESSION_STORE`, besides the system's roots (such as Amazon RDS's bundle); with it, `sslmode=prefer` or none also uses TLS when the server offers it |
//! | `LISTEN_ADDR` | `127.0.0.1:3000` | where to listen |
//! | `RUST_LOG` | `info` | log filter |
//!
//! Routes: `GET /health` (no auth; liveness: the process serves), `GET /ready` (no auth; 200
//! only when every pool's signing keys are loaded and the session store, if any, answers; 503
//! otherwise), `GET /metrics` (no auth; Prometheus text format, with `--features metrics`),
//! `GET /me` (the verified claims as JSON), `GET /admin` (members of the group `admins` only);
//! unknown paths are 404. SIGTERM or Ctrl-C stops the server gracefully: it stops accepting,
//! lets requests in flight finish, then exits 0. A missing or invalid variable
//! stops the server at start with one line naming it, and exit code 2 (exit code 1 when a session
//! store cannot be reached or the address cannot be bound). Every request is logged on one line,
//! with the reason of a refusal.
//!
//! ```sh
//! COGNITO_USER_POOL_ID=eu-west-1_AbCdEf123 COGNITO_CLIENT_IDS=4p1d8k3k9q2e5s7t0u6v1w3x4y \
//!     cargo run --example server
//! curl -H "Authorization: Bearer $ACCESS_TOKEN" http://127.0.0.1:3000/me
//!
//! # Two pools of a local emulator that serves one JWKS per pool:
//! COGNITO_USER_POOL_ID=local_Staff,local_Customers COGNITO_CLIENT_IDS=app1,app2 \
//!     COGNITO_ISSUER='http://127.0.0.1:9229/{pool}' \
//!     COGNITO_JWKS_URL='http://127.0.0.1:9229/{pool}/.well-known/jwks.json' \
//!     COGNITO_ALLOW_HTTP=1 cargo run --example server
//!
//! # A shared session window across servers:
//! SESSION_STORE=redis://127.0.0.1:6379 ... cargo run --example server --features redis
//!
//! # PostgreSQL over TLS, trusting the database's own CA:
//! SESSION_STORE='postgres://app@db.internal/app?sslmode=require' \
//!     SESSION_STORE_CA_FILE=/etc/ssl/db-ca.pem ... cargo run --example server --features postgres
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tower_cognito::session::{MemoryStore, SessionConfig, SessionStore};
use tower_cognito::{
    AccessClaims, AnyClaims, AuthError, ClientIds, CognitoAuthLayer, CognitoConfig, ConfigError,
    CsrfRule, IdClaims, JwksProxy, PoolConfig, TokenSource, TokenUse, UserPool, Verified, Verifier,
};
use tracing_subscriber::EnvFilter;

mod common;
#[cfg(any(feature = "redis", feature = "postgres"))]
use common::redact;
use common::{
    check_url, exit, flag, listen_addr, required, shutdown_signal, var, StartError, StoreSetting,
};

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

struct Settings {
    /// Never empty.
    pools: Vec<UserPool>,
    client_ids: Vec<String>,
    token_use: TokenUse,
    jwks_url: Option<String>,
    issuer: Option<String>,
    allow_http: bool,
    max_lifetime: Option<Duration>,
    /// `COGNITO_TOKEN_COOKIE` with its CSRF rule.
    cookie: Option<TokenSource>,
    proxy: JwksProxy,
    /// The PEM of `COGNITO_JWKS_CA_FILE`.
    jwks_roots: Option<Vec<u8>>,
    store: StoreSetting,
    listen: SocketAddr,
}

impl Settings {
    fn from_env() -> Result<Self, StartError> {
        let pool_ids = required(
            "COGNITO_USER_POOL_ID",
            "the user pool id, such as eu-west-1_AbCdEf123, or several, comma-separated",
        )?;
        let region = var("COGNITO_REGION")?;
        let mut pools: Vec<UserPool> = Vec::new();
        for pool_id in pool_ids.split(',').map(str::trim) {
            let pool = UserPool::parse(pool_id)
                .map_err(|e| StartError::invalid("COGNITO_USER_POOL_ID", e))?;
            if pools.contains(&pool) {
                return Err(StartError::invalid(
                    "COGNITO_USER_POOL_ID",
                    format!("{pool_id:?} is listed twice"),
                ));
            }
            if let Some(region) = &region {
                UserPool::with_region(pool_id, region)
                    .map_err(|e| StartError::invalid("COGNITO_REGION", e))?;
            }
            pools.push(pool);
        }

        let client_ids: Vec<String> = required(
            "COGNITO_CLIENT_IDS",
            "the accepted app client ids, comma-separated",
        )?
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
        if client_ids.is_empty() {
            return Err(StartError::invalid(
                "COGNITO_CLIENT_IDS",
                "no client id in the list",
            ));
        }

        let token_use = match var("COGNITO_TOKEN_USE")?.as_deref() {
            None | Some("access") => TokenUse::Access,
            Some("id") => TokenUse::Id,
            Some("any") => TokenUse::Any,
            Some(other) => {
                return Err(StartError::invalid(
                    "COGNITO_TOKEN_USE",
                    format!("{other:?}: expected access, id or any"),
                ))
            }
        };

        let allow_http = flag("COGNITO_ALLOW_HTTP")?;
        let jwks_url = var("COGNITO_JWKS_URL")?;
        let issuer = var("COGNITO_ISSUER")?;
        for (name, template) in [("COGNITO_JWKS_URL", &jwks_url), ("COGNITO_ISSUER", &issuer)] {
            if let Some(template) = template {
                if pools.len() > 1 && !template.contains(POOL_PLACEHOLDER) {
                    return Err(StartError::invalid(
                        name,
                        format!(
                            "with several pools in COGNITO_USER_POOL_ID, it must contain {POOL_PLACEHOLDER} (replaced by each pool id)"
                        ),
                    ));
                }
            }
        }
        if let Some(issuer) = &issuer {
            for pool in &pools {
                check_url("COGNITO_ISSUER", &for_pool(issuer, pool), allow_http)?;
            }
        }

        let max_lifetime = match var("COGNITO_MAX_LIFETIME_SECS")? {
            None => None,
            Some(value) => match value.parse::<u64>() {
                Ok(secs) if secs > 0 => Some(Duration::from_secs(secs)),
                _ => {
                    return Err(StartError::invalid(
                        "COGNITO_MAX_LIFETIME_SECS",
                        format!("{value:?}: expected a whole number of seconds above 0"),
                    ))
                }
            },
        };
        let cookie = token_cookie()?;
        let proxy = jwks_proxy()?;
        let jwks_roots = match var("COGNITO_JWKS_CA_FILE")? {
            None => None,
            Some(path) => Some(std::fs::read(&path).map_err(|e| {
                StartError::invalid("COGNITO_JWKS_CA_FILE", format!("cannot read {path:?}: {e}"))
            })?),
        };
        let store = StoreSetting::from_env("none", true)?;
        let listen = listen_addr()?;

        Ok(Self {
            pools,
            client_ids,
            token_use,
            jwks_url,
            issuer,
            allow_http,
            max_lifetime,
            cookie,
            proxy,
            jwks_roots,
            store,
            listen,
        })
    }

    /// The verifier configuration (without the session window): every pool accepts every
    /// listed client.
    fn config(&self) -> CognitoConfig {
        let pool_config = |pool: &UserPool| {
            let mut config = PoolConfig::new(
                pool.clone(),
                self.token_use,
                ClientIds::new(self.client_ids.iter().cloned()),
            );
            if let Some(url) = &self.jwks_url {
                config = config.jwks_url(for_pool(url, pool));
            }
            if let Some(issuer) = &self.issuer {
                config = config.issuer_override(for_pool(issuer, pool));
            }
            config
        };
        let (first, rest) = self.pools.split_first().expect("at least one pool");
        let mut config = CognitoConfig::from_pool(pool_config(first))
            .allow_http_on_loopback(self.allow_http)
            .jwks_proxy(self.proxy.clone());
        if let Some(max) = self.max_lifetime {
            config = config.max_lifetime(max);
        }
        if let Some(pem) = &self.jwks_roots {
            config = config.jwks_root_certificates_pem(pem.clone());
        }
        rest.iter()
            .fold(config, |config, pool| config.add_pool(pool_config(pool)))
    }

    /// The layer of the protected routes: the bearer header, or also the cookie.
    fn layer<C: Claims>(&self, verifier: Verifier<C>) -> CognitoAuthLayer<C> {
        let layer = CognitoAuthLayer::new(verifier);
        match &self.cookie {
            Some(source) => layer.token_source(source.clone()),
            None => layer,
        }
    }
}

/// `COGNITO_TOKEN_COOKIE` with `COGNITO_CSRF_HEADER` and/or `COGNITO_ALLOWED_ORIGINS`.
fn token_cookie() -> Result<Option<TokenSource>, StartError> {
    let header = var("COGNITO_CSRF_HEADER")?;
    let origins = var("COGNITO_ALLOWED_ORIGINS")?;
    let Some(name) = var("COGNITO_TOKEN_COOKIE")? else {
        for (variable, value) in [
            ("COGNITO_CSRF_HEADER", &header),
            ("COGNITO_ALLOWED_ORIGINS", &origins),
        ] {
            if value.is_some() {
                return Err(StartError::invalid(
                    variable,
                    "only means something with COGNITO_TOKEN_COOKIE",
                ));
            }
        }
        return Ok(None);
    };
    let csrf = match (header, origins) {
        (Some(_), Some(_)) => {
            return Err(StartError::invalid(
                "COGNITO_CSRF_HEADER",
                "set COGNITO_CSRF_HEADER or COGNITO_ALLOWED_ORIGINS, not both",
            ))
        }
        (Some(header), None) => {
            let name = axum::http::HeaderName::try_from(header.as_str()).map_err(|_| {
                StartError::invalid(
                    "COGNITO_CSRF_HEADER",
                    format!("{header:?}: not a header name"),
                )
            })?;
            CsrfRule::require_header(name)
                .map_err(|e| StartError::invalid("COGNITO_CSRF_HEADER", e))?
        }
        (None, Some(origins)) => {
            CsrfRule::allowed_origins(origins.split(',').map(str::trim).filter(|o| !o.is_empty()))
                .map_err(|e| StartError::invalid("COGNITO_ALLOWED_ORIGINS", e))?
        }
        (None, None) => {
            return Err(StartError::invalid(
                "COGNITO_TOKEN_COOKIE",
                "a cookie token is open to cross-site request forgery: also set \
                 COGNITO_CSRF_HEADER or COGNITO_ALLOWED_ORIGINS",
            ))
        }
    };
    TokenSource::bearer_or_cookie(&name, csrf)
        .map(Some)
        .map_err(|e| StartError::invalid("COGNITO_TOKEN_COOKIE", e))
}

/// `COGNITO_JWKS_PROXY` (`env` or a URL) and `COGNITO_JWKS_NO_PROXY`.
fn jwks_proxy() -> Result<JwksProxy, StartError> {
    let no_proxy = var("COGNITO_JWKS_NO_PROXY")?;
    let proxy = match var("COGNITO_JWKS_PROXY")?.as_deref() {
        None => JwksProxy::none(),
        Some("env") => JwksProxy::from_env(),
        Some(url) => {
            if !common::has_scheme(url, &["http", "https"]) {
                return Err(StartError::invalid(
                    "COGNITO_JWKS_PROXY",
                    "expected `env` or an http:// or https:// proxy URL",
                ));
            }
            let proxy = JwksProxy::url(url);
            return Ok(match no_proxy {
                Some(hosts) => proxy.no_proxy(hosts),
                None => proxy,
            });
        }
    };
    if no_proxy.is_some() {
        return Err(StartError::invalid(
            "COGNITO_JWKS_NO_PROXY",
            "only means something with a proxy URL in COGNITO_JWKS_PROXY (with `env`, NO_PROXY applies)",
        ));
    }
    Ok(proxy)
}

/// What `{pool}` in `COGNITO_JWKS_URL` and `COGNITO_ISSUER` is replaced with.
const POOL_PLACEHOLDER: &str = "{pool}";

/// `template` for `pool`: `{pool}` replaced by its id.
fn for_pool(template: &str, pool: &UserPool) -> String {
    template.replace(POOL_PLACEHOLDER, pool.id())
}

/// Names the variable a configuration error comes from.
fn config_error(error: ConfigError, settings: &Settings) -> StartError {
    let variable = match &error {
        ConfigError::InvalidUserPoolId(_) | ConfigError::EmulatorPoolNeedsOverrides(_) => {
            "COGNITO_USER_POOL_ID"
        }
        ConfigError::InvalidRegion(_) | ConfigError::RegionMismatch { .. } => "COGNITO_REGION",
        ConfigError::NoClientIds | ConfigError::InvalidClientId(_) => "COGNITO_CLIENT_IDS",
        ConfigError::InvalidIssuer(_) | ConfigError::DuplicateIssuer(_) => "COGNITO_ISSUER",
        ConfigError::InvalidUrl {
            setting: "JWKS proxy",
            ..
        } => "COGNITO_JWKS_PROXY",
        ConfigError::InvalidUrl { .. } => "COGNITO_JWKS_URL",
        ConfigError::InvalidCertificate(_) => "COGNITO_JWKS_CA_FILE",
        ConfigError::InvalidSetting {
            setting: "max_lifetime",
            ..
        } => "COGNITO_MAX_LIFETIME_SECS",
        _ => "configuration",
    };
    let mut message = error.to_string();
    if matches!(error, ConfigError::EmulatorPoolNeedsOverrides(_)) {
        message.push_str(" (set COGNITO_ISSUER and COGNITO_JWKS_URL)");
    }
    if matches!(error, ConfigError::InvalidUrl { .. })
        && !settings.allow_http
        && settings
            .jwks_url
            .as_deref()
            .is_some_and(|u| u.starts_with("http://"))
    {
        message = format!("{message} (here: set COGNITO_ALLOW_HTTP=1)");
    }
    StartError::invalid(variable, message)
}

// ---------------------------------------------------------------------------------------------
// Session stores
// ---------------------------------------------------------------------------------------------

async fn session_store(
    setting: &StoreSetting,
) -> Result<Option<Arc<dyn SessionStore>>, StartError> {
    match setting {
        StoreSetting::None => Ok(None),
        StoreSetting::Memory => Ok(Some(Arc::new(MemoryStore::new(100_000)))),
        StoreSetting::Redis(url) => redis_store(url).await.map(Some),
        StoreSetting::Postgres(url) => postgres_store(url).await.map(Some),
    }
}

#[cfg(feature = "redis")]
async fn redis_store(url: &str) -> Result<Arc<dyn SessionStore>, StartError> {
    use tower_cognito::session::{RedisStore, StoreErrorKind};
    match RedisStore::connect(url).await {
        Ok(store) => Ok(Arc::new(store)),
        Err(e) if e.kind() == StoreErrorKind::InvalidInput => Err(StartError::invalid(
            "SESSION_STORE",
            format!("invalid Redis URL: {e}"),
        )),
        Err(e) => Err(StartError::failed(
            "SESSION_STORE",
            format!("cannot use {}: {e}", redact(url)),
        )),
    }
}

#[cfg(not(feature = "redis"))]
async fn redis_store(_url: &str) -> Result<Arc<dyn SessionStore>, StartError> {
    Err(StartError::invalid(
        "SESSION_STORE",
        "a Redis store needs the crate feature `redis`: rebuild with \
         `cargo run --example server --features redis`",
    ))
}

#[cfg(feature = "postgres")]
async fn postgres_store(url: &str) -> Result<Arc<dyn SessionStore>, StartError> {
    use std::time::Duration;
    use tower_cognito::session::{PostgresStore, StoreErrorKind};
    use tower_cognito::{Clock, SystemClock};

    let connected = match common::postgres_tls()? {
        Some(tls) => PostgresStore::connect_with_tls(url, &tls).await,
        None => PostgresStore::connect(url).await,
    };
    let store = match connected {
        Ok(store) => store,
        Err(e) if e.kind() == StoreErrorKind::InvalidInput => {
            return Err(StartError::invalid(
                "SESSION_STORE",
                format!("invalid PostgreSQL URL: {e}"),
            ))
        }
        Err(e) => {
            return Err(StartError::failed(
                "SESSION_STORE",
                format!("cannot use {}: {e}", redact(url)),
            ))
        }
    };
    store.create_schema().await.map_err(|e| {
        StartError::failed(
            "SESSION_STORE",
            format!("cannot create the sessions table: {e}"),
        )
    })?;
    // Expired rows are never read as live; deleting them only reclaims space.
    let cleaner = store.clone();
    tokio::spawn(async move {
        let mut every_hour = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            match cleaner.cleanup_expired(SystemClock.now_unix()).await {
                Ok(deleted) => tracing::debug!(deleted, "expired sessions deleted"),
                Err(error) => tracing::warn!(%error, "could not delete expired sessions"),
            }
        }
    });
    Ok(Arc::new(store))
}

#[cfg(not(feature = "postgres"))]
async fn postgres_store(_url: &str) -> Result<Arc<dyn SessionStore>, StartError> {
    Err(StartError::invalid(
        "SESSION_STORE",
        "a PostgreSQL store needs the crate feature `postgres`: rebuild with \
         `cargo run --example server --features postgres`",
    ))
}

// ---------------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------------

/// The claims types this server can be run with (`COGNITO_TOKEN_USE`).
trait Claims: DeserializeOwned + Send + Sync + 'static {}
impl Claims for AccessClaims {}
impl Claims for IdClaims {}
impl Claims for AnyClaims {}

async fn health() -> &'static str {
    "ok"
}

/// Readiness: 200 once the verifier can serve, 503 (with the reason) otherwise.
async fn ready<C: Claims>(
    axum::extract::State(verifier): axum::extract::State<Verifier<C>>,
) -> (axum::http::StatusCode, String) {
    match verifier.ready().await {
        Ok(()) => (axum::http::StatusCode::OK, "ready\n".to_owned()),
        Err(error) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {error}\n"),
        ),
    }
}

/// The Prometheus recorder, installed before the verifier is built (it takes its counters
/// then), and the route that renders it.
#[cfg(feature = "metrics")]
fn metrics_route() -> Router {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::warn!("a metrics recorder was already installed; /metrics renders ours only");
    }
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
            }
        }),
    )
}

#[cfg(not(feature = "metrics"))]
fn metrics_route() -> Router {
    tracing::info!("metrics off: rebuild with --features metrics for GET /metrics");
    Router::new()
}

/// Every claim of the verified token, including those without a field in the claims type.
async fn me<C: Claims>(verified: Verified<C>) -> Json<Value> {
    Json(verified.claims_json())
}

async fn admin<C: Claims>(verified: Verified<C>) -> Json<Value> {
    let sub: Option<String> = verified.claim("sub");
    Json(json!({ "admin": true, "sub": sub }))
}

/// One log line per request: method, path, status, latency, and why a request was refused.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let latency = started.elapsed();
    match response.extensions().get::<AuthError>() {
        Some(error) if error.status().is_server_error() => tracing::warn!(
            %method, path = %path, status, ?latency, reason = error.reason(), "refused"
        ),
        Some(error) => tracing::info!(
            %method, path = %path, status, ?latency, reason = error.reason(), "refused"
        ),
        None => tracing::info!(%method, path = %path, status, ?latency, "served"),
    }
    response
}

/// Builds the app for the claims type `C` and serves it until Ctrl-C.
async fn serve<C: Claims>(
    settings: Settings,
    sessions: Option<SessionConfig>,
) -> Result<(), StartError> {
    // Before the verifier: it takes the handles of its counters when it is built.
    let metrics = metrics_route();
    let mut config = settings.config();
    if let Some(sessions) = sessions {
        config = config.session_window(sessions);
    }
    let verifier: Verifier<C> =
        Verifier::with_claims(config).map_err(|e| config_error(e, &settings))?;
    // Derived for one route: same key cache, so no second JWKS fetch.
    let admin_verifier = verifier
        .clone()
        .require_any_group(["admins"])
        .map_err(|e| config_error(e, &settings))?;

    // Warm the key cache without delaying the start: until keys are had, requests with a
    // token get 503 (our outage, not the client's 401).
    let warm = verifier.clone();
    let ready_verifier = verifier.clone();
    tokio::spawn(async move {
        match warm.prefetch_keys().await {
            Ok(keys) => tracing::info!(keys, "signing keys fetched"),
            Err(error) => {
                tracing::warn!(%error, "no signing keys yet; requests with a token get 503")
            }
        }
    });

    // `route_layer`: the layers run only for these routes, so unknown paths stay 404.
    let app = Router::new()
        .route("/me", get(me::<C>))
        .route_layer(settings.layer(verifier))
        .merge(
            Router::new()
                .route("/admin", get(admin::<C>))
                .route_layer(settings.layer(admin_verifier)),
        )
        .route("/health", get(health))
        .merge(
            Router::new()
                .route("/ready", get(ready::<C>))
                .with_state(ready_verifier),
        )
        .merge(metrics)
        .layer(axum::middleware::from_fn(log_request));

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| {
            StartError::failed(
                "LISTEN_ADDR",
                format!("cannot listen on {}: {e}", settings.listen),
            )
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::failed("LISTEN_ADDR", e))?;
    tracing::info!(
        pools = settings
            .pools
            .iter()
            .map(UserPool::id)
            .collect::<Vec<_>>()
            .join(","),
        token_use = ?settings.token_use,
        clients = settings.client_ids.join(","),
        session_store = settings.store.name(),
        "listening on http://{addr}"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| StartError::failed("LISTEN_ADDR", e))
}

async fn run() -> Result<(), StartError> {
    let settings = Settings::from_env()?;
    // Every configuration error before connecting to a session store.
    Verifier::<AccessClaims>::new(settings.config()).map_err(|e| config_error(e, &settings))?;
    let sessions = session_store(&settings.store)
        .await?
        .map(SessionConfig::new);
    match settings.token_use {
        TokenUse::Access => serve::<AccessClaims>(settings, sessions).await,
        TokenUse::Id => serve::<IdClaims>(settings, sessions).await,
        // `Any`, and kinds a later version may add: `AnyClaims` reads either token.
        _ => serve::<AnyClaims>(settings, sessions).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    exit(run().await)
}
