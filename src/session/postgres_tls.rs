//! [`PostgresTls`]: how the PostgreSQL stores use TLS (rustls on the aws-lc-rs provider), and
//! how the connection string's `sslmode` chooses between TLS and plaintext.

use std::fmt;
use std::sync::Arc;

use deadpool_postgres::tokio_postgres::config::SslMode;
use deadpool_postgres::tokio_postgres::Config as PgConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{StoreError, StoreErrorKind};

/// TLS settings for [`PostgresStore`](super::PostgresStore) and `PostgresRefreshStore`: which
/// certificate authorities to trust. TLS itself is turned on by the connection string's
/// `sslmode`.
///
/// TLS is rustls (TLS 1.2 and 1.3, with the aws-lc-rs provider). The server's certificate
/// must chain to a trusted root, be valid now, and name the host the connection string gives
/// (`host`, also when `hostaddr` says which address to dial; an IP address must be in the
/// certificate's IP addresses): libpq's `sslmode=verify-full`, always. There is no setting that
/// skips the check, and no client certificate.
///
/// By default the roots are the system's (the `/etc/ssl/certs` bundle on Debian, read once when
/// a store connects). Managed databases often sign with their own CA, which is not there
/// (Amazon RDS and Aurora, Google Cloud SQL): give its bundle with
/// [`add_root_certificates_pem`](Self::add_root_certificates_pem), and trust only it with
/// [`without_system_roots`](Self::without_system_roots).
///
/// # `sslmode`
///
/// | `sslmode` in the connection string | `connect(url)` | `connect_with_tls(url, tls)` |
/// | --- | --- | --- |
/// | `disable` | plaintext | plaintext |
/// | `prefer`, or no `sslmode` | plaintext | TLS if the server offers it (verified: a certificate that fails the check is an error, never a fallback), plaintext if it does not |
/// | `require` | TLS with `PostgresTls::new()`, verified, or no connection | TLS with `tls`, verified, or no connection |
///
/// `prefer` through `connect(url)` stays plaintext, as tokio-postgres' `prefer` is without TLS
/// settings: a server offering TLS with a certificate nobody configured trust for (Debian's
/// default snake-oil one) keeps working as before. Use `require` in production: with `prefer`
/// an attacker on the path can answer that the server has no TLS. libpq's `verify-full` is what
/// `require` does here, but the connection string must say `require` (tokio-postgres knows
/// only `disable`, `prefer` and `require`); `verify-ca` (no host name check) is not offered.
///
/// A server whose certificate fails the check is refused when the store connects (an error of
/// kind [`Unavailable`](StoreErrorKind::Unavailable) whose message says why, such as
/// `invalid peer certificate: UnknownIssuer` or `certificate not valid for name "db.internal"`), and later, if it changes
/// its certificate, each request that needs a new connection gets the same error (a 503).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use tower_cognito::session::{PostgresStore, PostgresTls};
///
/// // Amazon RDS: trust the RDS bundle only (https://truststore.pki.rds.amazonaws.com).
/// let tls = PostgresTls::new()
///     .without_system_roots()
///     .add_root_certificates_pem(&std::fs::read("/etc/ssl/rds-global-bundle.pem")?)?;
/// let store = PostgresStore::connect_with_tls(
///     "postgres://app@mydb.abc123.eu-west-1.rds.amazonaws.com/app?sslmode=require",
///     &tls,
/// )
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresTls {
    system_roots: bool,
    extra_roots: Vec<CertificateDer<'static>>,
}

impl PostgresTls {
    /// Trusts the system's root certificates, and nothing else yet.
    #[must_use]
    pub fn new() -> Self {
        Self {
            system_roots: true,
            extra_roots: Vec::new(),
        }
    }

    /// Also trusts every certificate in `pem` (one or more `-----BEGIN CERTIFICATE-----` blocks,
    /// such as a CA bundle file's contents) as a root.
    ///
    /// Text outside the blocks is ignored. No certificate block, a block that is not valid
    /// base64, or a certificate that cannot serve as a trust anchor, is an error of kind
    /// [`InvalidInput`](StoreErrorKind::InvalidInput).
    pub fn add_root_certificates_pem(mut self, pem: &[u8]) -> Result<Self, StoreError> {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert =
                cert.map_err(|e| invalid(format!("cannot read the root certificates' PEM: {e}")))?;
            // Checked now, so a bad certificate is refused here rather than at connect.
            RootCertStore::empty().add(cert.clone()).map_err(|e| {
                invalid(format!(
                    "root certificate {} of the PEM cannot be a trust anchor: {e}",
                    added + 1
                ))
            })?;
            self.extra_roots.push(cert);
            added += 1;
        }
        if added == 0 {
            return Err(invalid(
                "no `-----BEGIN CERTIFICATE-----` block in the root certificates' PEM".to_owned(),
            ));
        }
        Ok(self)
    }

    /// Trusts only the certificates given with
    /// [`add_root_certificates_pem`](Self::add_root_certificates_pem), not the system's.
    #[must_use]
    pub fn without_system_roots(mut self) -> Self {
        self.system_roots = false;
        self
    }

    /// The rustls connector for tokio-postgres, with the system's roots loaded now (when asked
    /// for) and the given ones. No root at all is an error of kind `InvalidInput`.
    pub(crate) fn connector(&self) -> Result<MakeRustlsConnect, StoreError> {
        let mut roots = RootCertStore::empty();
        let mut system_errors = Vec::new();
        if self.system_roots {
            let found = rustls_native_certs::load_native_certs();
            // Some systems ship certificates rustls cannot use as anchors: skip those.
            roots.add_parsable_certificates(found.certs);
            system_errors = found.errors;
        }
        for cert in &self.extra_roots {
            roots
                .add(cert.clone())
                .map_err(|e| invalid(e.to_string()))?;
        }
        if roots.is_empty() {
            let why = if !self.system_roots {
                "none were given and the system's are not used".to_owned()
            } else if system_errors.is_empty() {
                "the system has none and none were given".to_owned()
            } else {
                let errors: Vec<String> = system_errors.iter().map(ToString::to_string).collect();
                format!(
                    "none were given and the system's could not be read: {}",
                    errors.join("; ")
                )
            };
            return Err(invalid(format!(
                "no trusted root certificate for PostgreSQL TLS: {why}"
            )));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }
}

impl Default for PostgresTls {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for PostgresTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresTls")
            .field("system_roots", &self.system_roots)
            .field("extra_roots", &self.extra_roots.len())
            .finish()
    }
}

/// How a pool connects: which TLS connector, chosen from the connection string's `sslmode` and
/// the TLS settings given (if any), as [`PostgresTls`]'s table says.
pub(crate) enum Transport {
    Plain,
    Tls(MakeRustlsConnect),
}

impl Transport {
    pub(crate) fn choose(config: &PgConfig, tls: Option<&PostgresTls>) -> Result<Self, StoreError> {
        match (config.get_ssl_mode(), tls) {
            (SslMode::Disable, _) | (SslMode::Prefer, None) => Ok(Self::Plain),
            (_, Some(tls)) => Ok(Self::Tls(tls.connector()?)),
            // `require`, and any mode tokio-postgres adds later: TLS with the defaults.
            (_, None) => Ok(Self::Tls(PostgresTls::new().connector()?)),
        }
    }

    /// `plaintext`, `tls-if-offered` or `tls`: for `Debug`.
    pub(crate) fn describe(&self, config: &PgConfig) -> &'static str {
        match (self, config.get_ssl_mode()) {
            (Self::Plain, _) => "plaintext",
            (Self::Tls(_), SslMode::Prefer) => "tls-if-offered",
            (Self::Tls(_), _) => "tls",
        }
    }
}

/// Parses a connection string, with a hint when it names a libpq `sslmode` tokio-postgres does
/// not know. The error never repeats the string (it may hold a password).
pub(crate) fn parse_config(url: &str) -> Result<PgConfig, StoreError> {
    url.parse::<PgConfig>().map_err(|e| {
        let libpq_mode = ["verify-full", "verify-ca", "allow"]
            .iter()
            .find(|mode| url.contains(&format!("sslmode={mode}")));
        match libpq_mode {
            Some(mode) => invalid(format!(
                "{e} (sslmode={mode} is libpq's: here `require` is TLS with the certificate and \
                 host name verified, as libpq's verify-full; `disable` and `prefer` are the \
                 others)"
            )),
            None => StoreError::new(StoreErrorKind::InvalidInput, e),
        }
    })
}

fn invalid(message: String) -> StoreError {
    StoreError::new(StoreErrorKind::InvalidInput, message)
}
