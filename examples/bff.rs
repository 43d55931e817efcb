//! A backend-for-frontend: the refresh token stays on the server, the browser gets access
//! tokens from `POST /auth/token`, and one refresh per session runs at a time across servers.
//! `cargo run --example bff --features refresh`.
//!
//! Configured by environment variables, like `examples/server.rs`:
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `COGNITO_USER_POOL_ID` | (required) | the pool, such as `eu-west-1_AbCdEf123` |
//! | `COGNITO_CLIENT_ID` | (required) | the app client id |
//! | `COGNITO_CLIENT_SECRET` | none | the app client's secret, when it has one |
//! | `COGNITO_DOMAIN` | (required) | the hosted-UI domain: a bare host such as `myapp.auth.eu-west-1.amazoncognito.com` (`https://` implied) or a full origin such as `http://127.0.0.1:9000` |
//! | `COGNITO_TOKEN_ENDPOINT` | `{domain}/oauth2/token` | the token endpoint's full URL |
//! | `COGNITO_IDP_ENDPOINT` | `https://cognito-idp.{region}.amazonaws.com/` | the JSON API's base URL |
//! | `COGNITO_JWKS_URL` | the pool's | JWKS URL override, for emulators |
//! | `COGNITO_ISSUER` | the pool's | issuer (`iss`) override, for emulators |
//! | `COGNITO_ALLOW_HTTP` | `0` | `1` allows plain `http://` in any of these and in `REDIRECT_URL`, on loopback hosts only |
//! | `REDIRECT_URL` | `http://{LISTEN_ADDR}/auth/callback` on loopback | the callback URL registered with the app client |
//! | `SESSION_STORE` | `memory` | `memory`, a `redis://` URL (feature `redis`; a Redis Cluster node's URL uses the whole cluster) or a `postgres://` URL (feature `postgres`; TLS as its `sslmode` says, `?sslmode=require` verified against the system's roots): server sessions and the API's session window |
//! | `SESSION_STORE_CA_FILE` | none | a PEM file of CA certificates trusted for TLS to a `postgres://` `SESSION_STORE`, besides the system's roots; with it, `sslmode=prefer` or none also uses TLS when the server offers it |
//! | `SESSION_KEY` | (required, but random for `memory`) | the AES-256-GCM key sealing stored tokens: standard base64 of 32 bytes (`openssl rand -base64 32`) |
//! | `SESSION_KEY_ID` | `k1` | the key's id, stored with each sealed value (rotate by changing both) |
//! | `BFF_REFRESH_MARGIN_SECS` | `60` (`5` with `LOCAL_COGNITO=1`) | refresh when the access token expires within this |
//! | `LOCAL_COGNITO` | `0` | `1` starts a local Cognito (rotation on, grace 0) in this process and fills every unset `COGNITO_*` variable from it |
//! | `LOCAL_COGNITO_ACCESS_TTL_SECS` | `30` | with `LOCAL_COGNITO=1`: the access tokens' lifetime, short so refreshes come quickly |
//! | `LOCAL_COGNITO_REFRESH_DELAY_MS` | `0` | with `LOCAL_COGNITO=1`: every refresh waits this long before the local Cognito answers, like a real Cognito's latency, so refreshes that start together overlap (the browser test uses 200) |
//! | `BFF_UNCOORDINATED_FOR_TESTS` | `0` | **test-only, never in production**: `1` turns the one-refresh-per-session coordination off (every stale request refreshes on its own), so the browser test can show the race it removes; a loud warning is logged at start |
//! | `LISTEN_ADDR` | `127.0.0.1:3000` | where to listen |
//! | `RUST_LOG` | `info` | log filter |
//!
//! Routes: `GET /` (a page that signs in, gets tokens, calls the API and shows the answers),
//! `/auth/login`, `/auth/callback`, `POST /auth/token`, `POST /auth/logout` (see
//! `tower_cognito::refresh`), `GET /api/me` (behind `CognitoAuthLayer` with the session window),
//! `GET /health`; with `LOCAL_COGNITO=1` also `GET /local/counts` (what the local Cognito
//! served). A missing or invalid variable stops the server at start with one line naming it and
//! exit code 2 (exit code 1 when a store cannot be reached or the address cannot be bound).
//!
//! Try the race in two tabs, locally, in one command:
//!
//! ```sh
//! LOCAL_COGNITO=1 cargo run --example bff --features refresh
//! # open http://127.0.0.1:3000/ in two tabs: both stay signed in through every refresh
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_cognito::refresh::{
    Bff, BffBuilder, MemoryRefreshStore, RefreshStore, SealingKeys, TokenClient,
};
use tower_cognito::session::{MemoryStore, SessionConfig, SessionStore};
use tower_cognito::{
    AccessClaims, ClientIds, CognitoAuthLayer, CognitoConfig, IdClaims, TokenUse, UserPool,
    Verified, Verifier,
};
use tower_cognito_testing::{LocalCognito, Options};
use tracing_subscriber::EnvFilter;

mod common;
#[cfg(any(feature = "redis", feature = "postgres"))]
use common::redact;
use common::{check_url, exit, is_loopback, listen_addr, StartError, StoreSetting};

const PAGE: &str = include_str!("bff.html");

/// The environment, with defaults from a local Cognito when `LOCAL_COGNITO=1`.
struct Env {
    local: HashMap<&'static str, String>,
}

impl Env {
    fn var(&self, name: &'static str) -> Result<Option<String>, StartError> {
        Ok(common::var(name)?.or_else(|| self.local.get(name).cloned()))
    }

    fn required(&self, name: &'static str, what: &str) -> Result<String, StartError> {
        self.var(name)?
            .ok_or_else(|| StartError::invalid(name, format!("required: {what}")))
    }

    fn flag(&self, name: &'static str) -> Result<bool, StartError> {
        match self.var(name)?.as_deref() {
            None | Some("0" | "false") => Ok(false),
            Some("1" | "true") => Ok(true),
            Some(other) => Err(StartError::invalid(
                name,
                format!("{other:?}: expected 1 or 0"),
            )),
        }
    }
}

struct Settings {
    pool: UserPool,
    client_id: String,
    client_secret: Option<String>,
    domain: String,
    token_endpoint: Option<String>,
    idp_endpoint: Option<String>,
    jwks_url: Option<String>,
    issuer: Option<String>,
    allow_http: bool,
    redirect_url: String,
    store: StoreSetting,
    keys: SealingKeys,
    margin: Duration,
    listen: SocketAddr,
}

impl Settings {
    fn from_env(env: &Env, local: bool) -> Result<Self, StartError> {
        let pool_id = env.required(
            "COGNITO_USER_POOL_ID",
            "the user pool id, such as eu-west-1_AbCdEf123",
        )?;
        let pool = UserPool::parse(&pool_id)
            .map_err(|e| StartError::invalid("COGNITO_USER_POOL_ID", e))?;
        let client_id = env.required("COGNITO_CLIENT_ID", "the app client id")?;
        let client_secret = env.var("COGNITO_CLIENT_SECRET")?;
        let allow_http = env.flag("COGNITO_ALLOW_HTTP")?;
        let domain = env.required(
            "COGNITO_DOMAIN",
            "the hosted-UI domain, such as myapp.auth.eu-west-1.amazoncognito.com",
        )?;
        if domain.contains("://") {
            check_url("COGNITO_DOMAIN", &domain, allow_http)?;
        }
        let mut urls = Vec::new();
        for name in [
            "COGNITO_TOKEN_ENDPOINT",
            "COGNITO_IDP_ENDPOINT",
            "COGNITO_JWKS_URL",
            "COGNITO_ISSUER",
        ] {
            let value = env.var(name)?;
            if let Some(url) = &value {
                check_url(name, url, allow_http)?;
            }
            urls.push(value);
        }
        let [token_endpoint, idp_endpoint, jwks_url, issuer]: [Option<String>; 4] = urls
            .try_into()
            .unwrap_or_else(|_| unreachable!("four names"));
        let listen = listen_addr()?;
        let redirect_url = match env.var("REDIRECT_URL")? {
            Some(url) => url,
            None if listen.ip().is_loopback() => format!("http://{listen}/auth/callback"),
            None => {
                return Err(StartError::invalid(
                    "REDIRECT_URL",
                    "required: the callback URL registered with the app client",
                ))
            }
        };
        check_url("REDIRECT_URL", &redirect_url, allow_http)?;
        let store = StoreSetting::from_env("memory", false)?;
        let key_id = env.var("SESSION_KEY_ID")?.unwrap_or_else(|| "k1".into());
        let keys = match (env.var("SESSION_KEY")?, &store) {
            (Some(key), _) => SealingKeys::from_base64(&key_id, &key)
                .map_err(|e| StartError::invalid("SESSION_KEY", e))?,
            (None, StoreSetting::Memory) => {
                tracing::info!("SESSION_KEY unset: a random key (sessions end with this process anyway)");
                let mut key = [0u8; 32];
                aws_lc_rs::rand::fill(&mut key).map_err(|_| StartError::failed("SESSION_KEY", "no randomness"))?;
                SealingKeys::new(&key_id, &key).map_err(|e| StartError::invalid("SESSION_KEY", e))?
            }
            (None, _) => {
                return Err(StartError::invalid(
                    "SESSION_KEY",
                    "required with a shared store: standard base64 of 32 bytes (openssl rand -base64 32), the same on every server",
                ))
            }
        };
        let margin = common::seconds("BFF_REFRESH_MARGIN_SECS", if local { 5 } else { 60 })?;
        Ok(Self {
            pool,
            client_id,
            client_secret,
            domain,
            token_endpoint,
            idp_endpoint,
            jwks_url,
            issuer,
            allow_http,
            redirect_url,
            store,
            keys,
            margin: Duration::from_secs(margin),
            listen,
        })
    }

    fn config(&self, token_use: TokenUse) -> CognitoConfig {
        let mut config = CognitoConfig::new(
            self.pool.clone(),
            token_use,
            ClientIds::one(&self.client_id),
        )
        .allow_http_on_loopback(self.allow_http);
        if let Some(url) = &self.jwks_url {
            config = config.jwks_url(url);
        }
        if let Some(issuer) = &self.issuer {
            config = config.issuer_override(issuer);
        }
        config
    }

    fn token_client(&self) -> Result<TokenClient, StartError> {
        let mut builder = TokenClient::builder(&self.client_id)
            .region(self.pool.region())
            .domain(&self.domain)
            .allow_http_on_loopback(self.allow_http);
        if let Some(secret) = &self.client_secret {
            builder = builder.client_secret(secret);
        }
        if let Some(url) = &self.token_endpoint {
            builder = builder.token_endpoint(url);
        }
        if let Some(url) = &self.idp_endpoint {
            builder = builder.idp_endpoint(url);
        }
        builder.build().map_err(|e| {
            let variable = match e.setting() {
                "token endpoint" => "COGNITO_TOKEN_ENDPOINT",
                "idp endpoint" => "COGNITO_IDP_ENDPOINT",
                "client id" => "COGNITO_CLIENT_ID",
                _ => "COGNITO_DOMAIN",
            };
            StartError::invalid(variable, e)
        })
    }
}

/// The two stores on one backend: server sessions and the API's session window.
async fn stores(
    setting: &StoreSetting,
) -> Result<(Arc<dyn RefreshStore>, Arc<dyn SessionStore>), StartError> {
    match setting {
        StoreSetting::Memory | StoreSetting::None => Ok((
            Arc::new(MemoryRefreshStore::new(100_000)),
            Arc::new(MemoryStore::new(100_000)),
        )),
        StoreSetting::Redis(url) => redis_stores(url).await,
        StoreSetting::Postgres(url) => postgres_stores(url).await,
    }
}

#[cfg(any(feature = "redis", feature = "postgres"))]
fn store_error(url: &str, e: tower_cognito::session::StoreError) -> StartError {
    use tower_cognito::session::StoreErrorKind;
    if e.kind() == StoreErrorKind::InvalidInput {
        StartError::invalid("SESSION_STORE", format!("invalid URL: {e}"))
    } else {
        StartError::failed("SESSION_STORE", format!("cannot use {}: {e}", redact(url)))
    }
}

#[cfg(feature = "redis")]
async fn redis_stores(
    url: &str,
) -> Result<(Arc<dyn RefreshStore>, Arc<dyn SessionStore>), StartError> {
    use tower_cognito::refresh::RedisRefreshStore;
    use tower_cognito::session::RedisStore;
    let sessions = RedisRefreshStore::connect(url)
        .await
        .map_err(|e| store_error(url, e))?;
    let window = RedisStore::connect(url)
        .await
        .map_err(|e| store_error(url, e))?;
    Ok((Arc::new(sessions), Arc::new(window)))
}

#[cfg(not(feature = "redis"))]
async fn redis_stores(
    _: &str,
) -> Result<(Arc<dyn RefreshStore>, Arc<dyn SessionStore>), StartError> {
    Err(StartError::invalid(
        "SESSION_STORE",
        "a Redis store needs the crate feature `redis`: `cargo run --example bff --features refresh,redis`",
    ))
}

#[cfg(feature = "postgres")]
async fn postgres_stores(
    url: &str,
) -> Result<(Arc<dyn RefreshStore>, Arc<dyn SessionStore>), StartError> {
    use tower_cognito::refresh::PostgresRefreshStore;
    use tower_cognito::session::PostgresStore;
    let tls = common::postgres_tls()?;
    let (sessions, window) = match &tls {
        Some(tls) => (
            PostgresRefreshStore::connect_with_tls(url, tls).await,
            PostgresStore::connect_with_tls(url, tls).await,
        ),
        None => (
            PostgresRefreshStore::connect(url).await,
            PostgresStore::connect(url).await,
        ),
    };
    let sessions = sessions.map_err(|e| store_error(url, e))?;
    let window = window.map_err(|e| store_error(url, e))?;
    for created in [sessions.create_schema().await, window.create_schema().await] {
        created.map_err(|e| {
            StartError::failed("SESSION_STORE", format!("cannot create the tables: {e}"))
        })?;
    }
    Ok((Arc::new(sessions), Arc::new(window)))
}

#[cfg(not(feature = "postgres"))]
async fn postgres_stores(
    _: &str,
) -> Result<(Arc<dyn RefreshStore>, Arc<dyn SessionStore>), StartError> {
    Err(StartError::invalid(
        "SESSION_STORE",
        "a PostgreSQL store needs the crate feature `postgres`: `cargo run --example bff --features refresh,postgres`",
    ))
}

/// What the page shows of the token the API accepted.
async fn me(verified: Verified) -> Json<Value> {
    let claims = verified.claims();
    Json(json!({
        "username": claims.username,
        "iat": verified.issued_at(),
        "exp": verified.expires_at(),
        "jti": claims.jti,
    }))
}

/// Starts a local Cognito and answers the `COGNITO_*` defaults it implies.
async fn local_cognito() -> Result<(LocalCognito, HashMap<&'static str, String>), StartError> {
    let ttl = common::seconds("LOCAL_COGNITO_ACCESS_TTL_SECS", 30)?;
    let delay = match common::var("LOCAL_COGNITO_REFRESH_DELAY_MS")? {
        None => 0,
        Some(value) => value.parse().map_err(|_| {
            StartError::invalid(
                "LOCAL_COGNITO_REFRESH_DELAY_MS",
                format!("{value:?}: expected a whole number of milliseconds"),
            )
        })?,
    };
    let cognito =
        LocalCognito::start_with(Options::new().access_ttl(Duration::from_secs(ttl))).await;
    cognito.set_refresh_delay(Duration::from_millis(delay));
    let defaults = HashMap::from([
        ("COGNITO_USER_POOL_ID", cognito.pool_id().to_owned()),
        ("COGNITO_CLIENT_ID", cognito.client_id().to_owned()),
        ("COGNITO_DOMAIN", cognito.origin()),
        ("COGNITO_IDP_ENDPOINT", cognito.idp_url()),
        ("COGNITO_JWKS_URL", cognito.jwks_url()),
        ("COGNITO_ISSUER", cognito.issuer()),
        ("COGNITO_ALLOW_HTTP", "1".to_owned()),
    ]);
    tracing::info!(origin = %cognito.origin(), access_ttl_secs = ttl, refresh_delay_ms = delay, "local Cognito started (rotation on, grace 0)");
    Ok((cognito, defaults))
}

/// `BFF_UNCOORDINATED_FOR_TESTS=1`: the naive flow, for the browser test's control only. Two
/// tabs refreshing together then lose one of them to `RefreshTokenReuseException`.
fn uncoordinated(builder: BffBuilder) -> BffBuilder {
    let banner = "!".repeat(78);
    tracing::warn!("{banner}");
    tracing::warn!(
        "BFF_UNCOORDINATED_FOR_TESTS=1: refresh coordination is OFF. Concurrent refreshes of one \
         session race at Cognito and sign users out. TEST-ONLY: never set this in production."
    );
    tracing::warn!("{banner}");
    builder.uncoordinated_for_tests()
}

async fn run() -> Result<(), StartError> {
    let local = common::flag("LOCAL_COGNITO")?;
    let (cognito, defaults) = if local {
        let (cognito, defaults) = local_cognito().await?;
        (Some(Arc::new(cognito)), defaults)
    } else {
        (None, HashMap::new())
    };
    let settings = Settings::from_env(&Env { local: defaults }, local)?;
    let config_error = |e: tower_cognito::ConfigError| StartError::invalid("configuration", e);
    let id_verifier: Verifier<IdClaims> =
        Verifier::with_claims(settings.config(TokenUse::Id)).map_err(config_error)?;
    let client = settings.token_client()?;
    let (sessions, window) = stores(&settings.store).await?;
    let api: Verifier<AccessClaims> = Verifier::new(
        settings
            .config(TokenUse::Access)
            .session_window(SessionConfig::new(window)),
    )
    .map_err(config_error)?;
    let redirect = url::Url::parse(&settings.redirect_url)
        .map_err(|e| StartError::invalid("REDIRECT_URL", e))?;
    let mut builder = Bff::builder(
        client,
        sessions,
        settings.keys,
        id_verifier,
        &settings.redirect_url,
    )
    .revoke_in(api.clone())
    .refresh_margin(settings.margin)
    .insecure_cookies_on_loopback(settings.allow_http && is_loopback(&redirect));
    if common::flag("BFF_UNCOORDINATED_FOR_TESTS")? {
        builder = uncoordinated(builder);
    }
    let bff = builder
        .build()
        .map_err(|e| StartError::invalid("REDIRECT_URL", e))?;

    let mut app = Router::new()
        .route("/api/me", get(me))
        .route_layer(CognitoAuthLayer::new(api))
        .route("/", get(|| async { Html(PAGE) }))
        .route("/health", get(|| async { "ok" }))
        .nest_service("/auth", bff);
    if let Some(cognito) = cognito.clone() {
        app = app.route(
            "/local/counts",
            get(move || {
                let counts = cognito.counts();
                async move {
                    Json(json!({
                        "refreshes": counts.refreshes,
                        "refresh_ok": counts.refresh_ok,
                        "reused": counts.reused,
                        "invalid": counts.invalid,
                        "sign_ins": counts.sign_ins,
                        "revocations": counts.revocations,
                    }))
                }
            }),
        );
    }
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| {
            StartError::failed(
                "LISTEN_ADDR",
                format!("cannot listen on {}: {e}", settings.listen),
            )
        })?;
    tracing::info!(
        pool = %settings.pool,
        session_store = settings.store.name(),
        redirect = %settings.redirect_url,
        "listening on http://{}", settings.listen
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(common::shutdown_signal())
        .await
        .map_err(|e| StartError::failed("LISTEN_ADDR", e))
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    exit(run().await)
}
