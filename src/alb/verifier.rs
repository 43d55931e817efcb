//! [`AlbVerifier`]: the checks of an `x-amzn-oidc-data` token, in the order the
//! [module docs](super) give.

use std::sync::Arc;

use super::config::AlbConfig;
use super::endpoint::{check_region, checked_endpoint, parse_arn, region_endpoint};
use super::keys::{KeyOptions, KeyStore};
use super::{token, AlbClaims, AlbError, MAX_KEY_BYTES};
use crate::clock::Clock;
use crate::config::ConfigError;
use crate::error::InvalidToken;

/// One configured load balancer: its ARN and the index of its key endpoint.
#[derive(Debug)]
struct Signer {
    arn: String,
    endpoint: usize,
}

/// Verifies `x-amzn-oidc-data` tokens. Cheap to clone (one `Arc`); build it once.
///
/// See the [module docs](super) for the order of checks.
#[derive(Clone, Debug)]
pub struct AlbVerifier {
    inner: Arc<VerifierInner>,
}

#[derive(Debug)]
struct VerifierInner {
    signers: Vec<Signer>,
    issuer: Option<String>,
    client_ids: Option<Vec<String>>,
    leeway: i64,
    max_token_bytes: usize,
    clock: Arc<dyn Clock>,
    keys: KeyStore,
}

impl AlbVerifier {
    /// Checks `config` and builds the verifier (and its one HTTP client).
    ///
    /// Refused: no signer, a signer that is not an Application Load Balancer ARN, a region of
    /// other characters than `a-z`, `0-9` and `-`, a partition with no known key endpoint (`aws-cn`, ...) without
    /// [`key_endpoint`](AlbConfig::key_endpoint), a key endpoint that is not `https` (or `http`
    /// on loopback when allowed), an empty issuer or client id, zero budgets, and a
    /// [`key_root_certificates_pem`](AlbConfig::key_root_certificates_pem) bundle with no
    /// certificate ([`ConfigError::InvalidCertificate`]).
    pub fn new(config: AlbConfig) -> Result<Self, ConfigError> {
        if config.signers.is_empty() {
            return Err(ConfigError::InvalidSetting {
                setting: "ALB signer ARNs",
                reason: "at least one load balancer ARN is required",
            });
        }
        if config.issuer.as_deref() == Some("") {
            return Err(ConfigError::InvalidIssuer(String::new()));
        }
        if let Some(ids) = &config.client_ids {
            if let Some(bad) = ids.iter().find(|id| id.is_empty() || !id.is_ascii()) {
                return Err(ConfigError::InvalidClientId(bad.clone()));
            }
        }
        if config.fetches_per_cooldown == 0 || config.max_cached_keys == 0 {
            return Err(ConfigError::InvalidSetting {
                setting: "ALB key cache",
                reason: "fetches_per_cooldown and max_cached_keys must be at least 1",
            });
        }
        if let Some(region) = &config.region {
            check_region(region)?;
        }
        let override_url = config
            .key_endpoint
            .as_deref()
            .map(|raw| checked_endpoint(raw, config.allow_http_loopback))
            .transpose()?;

        let mut endpoints: Vec<reqwest::Url> = Vec::new();
        let mut signers = Vec::with_capacity(config.signers.len());
        for arn in &config.signers {
            let parsed = parse_arn(arn)?;
            let url = match &override_url {
                Some(url) => url.clone(),
                None => {
                    let region = config.region.as_deref().unwrap_or(parsed.region);
                    region_endpoint(parsed.partition, region)?
                }
            };
            let endpoint = match endpoints.iter().position(|u| *u == url) {
                Some(i) => i,
                None => {
                    endpoints.push(url);
                    endpoints.len() - 1
                }
            };
            if !signers.iter().any(|s: &Signer| s.arn == *arn) {
                signers.push(Signer {
                    arn: arn.clone(),
                    endpoint,
                });
            }
        }
        let keys = KeyStore::new(KeyOptions {
            endpoints,
            cooldown: config.cooldown,
            fetches_per_cooldown: config.fetches_per_cooldown,
            max_cached_keys: config.max_cached_keys,
            max_key_bytes: MAX_KEY_BYTES,
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            proxy: config.proxy,
            extra_roots: config.extra_roots,
        })?;
        Ok(Self {
            inner: Arc::new(VerifierInner {
                signers,
                issuer: config.issuer,
                client_ids: config.client_ids,
                leeway: i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX),
                max_token_bytes: config.max_token_bytes,
                clock: config.clock,
                keys,
            }),
        })
    }

    /// Verifies one `x-amzn-oidc-data` value and answers its claims.
    pub async fn verify(&self, token: &str) -> Result<AlbClaims, AlbError> {
        let inner = &*self.inner;
        let invalid = AlbError::InvalidToken;
        if token.len() > inner.max_token_bytes {
            return Err(invalid(InvalidToken::TooLarge));
        }
        let parts = token::split(token)?;
        let header = &parts.header;
        if header.crit.is_some() {
            return Err(invalid(InvalidToken::UnsupportedCritical));
        }
        if header.alg != "ES256" {
            return Err(invalid(InvalidToken::UnsupportedAlgorithm));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or(invalid(InvalidToken::MissingKeyId))?;
        if !token::valid_kid(kid) {
            tracing::debug!("ALB token kid of characters no ALB uses; refused unfetched");
            return Err(invalid(InvalidToken::MissingKeyId));
        }
        let signer = header
            .signer
            .as_deref()
            .and_then(|s| inner.signers.iter().find(|c| c.arn == s))
            .ok_or(AlbError::WrongSigner)?;
        // An ES256 JWS signature is r || s, 32 bytes each: anything else (DER, cut) is refused
        // before a key is looked up.
        if parts.signature.len() != 64 {
            return Err(invalid(InvalidToken::BadSignature));
        }
        let key = inner.keys.key(signer.endpoint, kid).await?;
        if key
            .verify_sig(parts.signing_input, &parts.signature)
            .is_err()
        {
            return Err(invalid(InvalidToken::BadSignature));
        }

        let now = inner.clock.now_unix();
        let exp = header
            .exp
            .as_ref()
            .ok_or(invalid(InvalidToken::MissingClaim))?;
        let exp = token::seconds(exp).ok_or(invalid(InvalidToken::Malformed))?;
        if now > exp.saturating_add(inner.leeway) {
            return Err(invalid(InvalidToken::Expired));
        }
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&parts.payload).map_err(|_| invalid(InvalidToken::Malformed))?;
        if let Some(payload_exp) = claims.get("exp") {
            let payload_exp = payload_exp
                .as_i64()
                .ok_or(invalid(InvalidToken::Malformed))?;
            if now > payload_exp.saturating_add(inner.leeway) {
                return Err(invalid(InvalidToken::Expired));
            }
        }
        if let Some(expected) = &inner.issuer {
            if header.iss.as_deref() != Some(expected.as_str()) {
                return Err(invalid(InvalidToken::WrongIssuer));
            }
        }
        if let Some(ids) = &inner.client_ids {
            if !header
                .client
                .as_deref()
                .is_some_and(|c| ids.iter().any(|id| id == c))
            {
                return Err(invalid(InvalidToken::WrongClient));
            }
        }
        let header = parts.header;
        Ok(AlbClaims {
            signer: signer.arn.clone(),
            issuer: header.iss,
            client: header.client,
            exp,
            claims: std::sync::Arc::new(claims),
        })
    }
}
