//! What `server` and `bff` share: reading settings from the environment, with one line naming
//! the variable and exit code 2 when one is missing or invalid (1 when something is down).
#![allow(dead_code)]

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

/// Why the program could not start: one line naming the variable, and the exit code.
pub struct StartError {
    pub variable: &'static str,
    pub message: String,
    /// 2 for a missing or invalid variable, 1 for anything else (such as a store that is down).
    pub code: u8,
}

impl StartError {
    pub fn invalid(variable: &'static str, message: impl fmt::Display) -> Self {
        Self {
            variable,
            message: message.to_string(),
            code: 2,
        }
    }

    pub fn failed(variable: &'static str, message: impl fmt::Display) -> Self {
        Self {
            variable,
            message: message.to_string(),
            code: 1,
        }
    }
}

/// The variable's value, trimmed; `None` when unset or empty.
pub fn var(name: &'static str) -> Result<Option<String>, StartError> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value.trim().to_owned())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(StartError::invalid(name, "not valid UTF-8")),
    }
}

pub fn required(name: &'static str, what: &str) -> Result<String, StartError> {
    var(name)?.ok_or_else(|| StartError::invalid(name, format!("required: {what}")))
}

/// `1`/`true` or `0`/`false` (default `false`).
pub fn flag(name: &'static str) -> Result<bool, StartError> {
    match var(name)?.as_deref() {
        None | Some("0" | "false") => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(other) => Err(StartError::invalid(
            name,
            format!("{other:?}: expected 1 or 0"),
        )),
    }
}

/// A whole number of seconds, or `default`.
pub fn seconds(name: &'static str, default: u64) -> Result<u64, StartError> {
    match var(name)? {
        None => Ok(default),
        Some(value) => value.parse().map_err(|_| {
            StartError::invalid(
                name,
                format!("{value:?}: expected a whole number of seconds"),
            )
        }),
    }
}

/// `LISTEN_ADDR` (default `127.0.0.1:3000`).
pub fn listen_addr() -> Result<SocketAddr, StartError> {
    let listen = var("LISTEN_ADDR")?.unwrap_or_else(|| "127.0.0.1:3000".into());
    listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            StartError::invalid(
                "LISTEN_ADDR",
                format!("{listen:?}: expected host:port, such as 127.0.0.1:3000"),
            )
        })
}

pub fn has_scheme(value: &str, schemes: &[&str]) -> bool {
    value
        .split_once("://")
        .is_some_and(|(scheme, _)| schemes.contains(&scheme))
}

/// Where session data lives (`SESSION_STORE`).
pub enum StoreSetting {
    None,
    Memory,
    Redis(String),
    Postgres(String),
}

impl StoreSetting {
    /// `SESSION_STORE`: `none` (only when `allow_none`), `memory`, a `redis://` or a
    /// `postgres://` URL; `default` when unset.
    pub fn from_env(default: &str, allow_none: bool) -> Result<Self, StartError> {
        let value = var("SESSION_STORE")?.unwrap_or_else(|| default.to_owned());
        let setting = Self::parse(value, allow_none)?;
        if var(CA_FILE)?.is_some() && !matches!(setting, Self::Postgres(_)) {
            return Err(StartError::invalid(
                CA_FILE,
                "applies to a postgres:// SESSION_STORE only",
            ));
        }
        Ok(setting)
    }

    fn parse(value: String, allow_none: bool) -> Result<Self, StartError> {
        Ok(match value.as_str() {
            "none" if allow_none => Self::None,
            "memory" => Self::Memory,
            s if has_scheme(s, &["redis", "rediss", "redis+unix"]) => Self::Redis(value),
            s if has_scheme(s, &["postgres", "postgresql"]) => Self::Postgres(value),
            s => {
                let expected = if allow_none { "none, memory" } else { "memory" };
                return Err(StartError::invalid(
                    "SESSION_STORE",
                    format!(
                        "{:?}: expected {expected}, a redis:// URL or a postgres:// URL",
                        redact(s)
                    ),
                ));
            }
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Memory => "memory",
            Self::Redis(_) => "redis",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// The variable naming a PEM file of CA certificates for TLS to a PostgreSQL `SESSION_STORE`.
pub const CA_FILE: &str = "SESSION_STORE_CA_FILE";

/// `SESSION_STORE_CA_FILE`, read: the TLS settings for a PostgreSQL `SESSION_STORE`, trusting
/// the file's certificates besides the system's roots; `None` when unset (then the URL's
/// `sslmode=require` uses the system's roots only, see `PostgresTls`).
#[cfg(feature = "postgres")]
pub fn postgres_tls() -> Result<Option<tower_cognito::session::PostgresTls>, StartError> {
    let Some(path) = var(CA_FILE)? else {
        return Ok(None);
    };
    let pem = std::fs::read(&path)
        .map_err(|e| StartError::invalid(CA_FILE, format!("cannot read {path:?}: {e}")))?;
    tower_cognito::session::PostgresTls::new()
        .add_root_certificates_pem(&pem)
        .map(Some)
        .map_err(|e| StartError::invalid(CA_FILE, format!("{path:?}: {e}")))
}

/// An http(s) URL setting: `https`, or `http` on loopback when `allow_http`.
pub fn check_url(variable: &'static str, value: &str, allow_http: bool) -> Result<(), StartError> {
    let invalid = |why: &str| StartError::invalid(variable, format!("{value:?}: {why}"));
    let url = url::Url::parse(value).map_err(|e| invalid(&e.to_string()))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http && is_loopback(&url) => Ok(()),
        "http" if allow_http => Err(invalid(
            "plain http is allowed only to localhost or a loopback address",
        )),
        "http" => Err(invalid(
            "plain http is refused; set COGNITO_ALLOW_HTTP=1 for a local emulator",
        )),
        other => Err(invalid(&format!("unsupported scheme {other:?}"))),
    }
}

pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The URL without its password, for messages.
pub fn redact(value: &str) -> String {
    match url::Url::parse(value) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(_) => value.to_owned(),
        Err(_) => "(not a URL)".to_owned(),
    }
}

/// Ctrl-C, or SIGTERM on Unix.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

/// Logs the error as one line and turns it into the exit code.
pub fn exit(result: Result<(), StartError>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}: {}", error.variable, error.message);
            std::process::ExitCode::from(error.code)
        }
    }
}
