//! [`PoolConfig`]: what one user pool of a configuration accepts, and where its keys come from.

use std::collections::HashSet;
use std::fmt;

use super::{ClientIds, ConfigError, IssuerForm, Issuers, TokenUse, UserPool};

/// One user pool of a [`CognitoConfig`](super::CognitoConfig): its app clients, the kind of
/// token it accepts, its issuers, and where its keys come from. Each pool has its own key cache.
///
/// [`CognitoConfig::new`](super::CognitoConfig::new) makes the first pool; add more with
/// [`CognitoConfig::add_pool`](super::CognitoConfig::add_pool):
///
/// ```
/// use tower_cognito::{ClientIds, CognitoConfig, PoolConfig, TokenUse, UserPool, Verifier};
///
/// let config = CognitoConfig::new(
///     UserPool::parse("eu-west-1_Staff")?,
///     TokenUse::Access,
///     ClientIds::one("staffclient1"),
/// )
/// .add_pool(PoolConfig::new(
///     UserPool::parse("us-east-1_Customers")?,
///     TokenUse::Access,
///     ClientIds::new(["webclient1", "mobileclient1"]),
/// ));
/// let verifier = Verifier::new(config)?;
/// # Ok::<(), tower_cognito::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct PoolConfig {
    pub(crate) pool: UserPool,
    pub(crate) token_use: TokenUse,
    pub(crate) client_ids: ClientIds,
    pub(crate) issuers: Issuers,
    pub(crate) issuer_override: Option<String>,
    /// Regions a replicated pool also issues tokens in (Multi-Region Replication).
    pub(crate) replica_regions: Vec<String>,
    pub(crate) keys: KeySource,
}

/// Where one pool's keys come from.
#[derive(Clone, Debug)]
pub(crate) struct KeySource {
    /// An override of the pool's JWKS URL.
    pub(crate) url: Option<String>,
    /// Keys to start with.
    pub(crate) document: Option<String>,
    /// Whether keys may be fetched at all.
    pub(crate) fetch: bool,
}

impl Default for KeySource {
    fn default() -> Self {
        Self {
            url: None,
            document: None,
            fetch: true,
        }
    }
}

impl PoolConfig {
    /// Accept tokens of `pool`, of kind `token_use`, issued to one of `client_ids`.
    ///
    /// A client id is accepted only on tokens of the pool it is listed for.
    pub fn new(pool: UserPool, token_use: TokenUse, client_ids: ClientIds) -> Self {
        Self {
            pool,
            token_use,
            client_ids,
            issuers: Issuers::Both,
            issuer_override: None,
            replica_regions: Vec::new(),
            keys: KeySource::default(),
        }
    }

    /// The user pool.
    pub fn pool(&self) -> &UserPool {
        &self.pool
    }

    /// Restrict the accepted issuer forms (both are accepted by default).
    pub fn issuers(mut self, issuers: Issuers) -> Self {
        self.issuers = issuers;
        self
    }

    /// Accept exactly this issuer instead of the Cognito ones: for local emulators and tests.
    pub fn issuer_override(mut self, issuer: impl Into<String>) -> Self {
        self.issuer_override = Some(issuer.into());
        self
    }

    /// The pool is replicated to `region` (Cognito Multi-Region Replication): also accept the
    /// issuers of the pool id in that region, in the forms [`issuers`](Self::issuers) allows, such
    /// as `https://issuer-cognito-idp.{region}.amazonaws.com/{poolId}`.
    ///
    /// Tokens of a replica are verified with this pool's keys: a replicated pool is one pool. If
    /// a replica ever served keys of its own, configure it as a pool of its own instead, with an
    /// [`issuer_override`](Self::issuer_override) and a [`jwks_url`](Self::jwks_url).
    pub fn replica_region(mut self, region: impl Into<String>) -> Self {
        self.replica_regions.push(region.into());
        self
    }

    /// Fetch keys from this URL instead of the pool's: for local emulators and tests.
    ///
    /// It must be `https`, unless
    /// [`allow_http_on_loopback`](super::CognitoConfig::allow_http_on_loopback) is set and the
    /// host is a loopback address.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.keys.url = Some(url.into());
        self
    }

    /// Start with the keys of this JWKS document (`{"keys": [...]}`), for an offline start or
    /// tests. Keys are still fetched for an unknown `kid` and when they grow old, unless
    /// [`fetch_keys(false)`](Self::fetch_keys) is set.
    pub fn jwks_document(mut self, json: impl Into<String>) -> Self {
        self.keys.document = Some(json.into());
        self
    }

    /// Whether this pool's keys may be fetched over the network (default `true`). With `false`,
    /// only the keys of [`jwks_document`](Self::jwks_document) are used.
    pub fn fetch_keys(mut self, fetch: bool) -> Self {
        self.keys.fetch = fetch;
        self
    }

    /// The issuers a token of this pool may name.
    pub(crate) fn accepted_issuers(&self) -> Vec<String> {
        if let Some(issuer) = &self.issuer_override {
            return vec![issuer.clone()];
        }
        let forms: &[IssuerForm] = match self.issuers {
            Issuers::Both => &[IssuerForm::Original, IssuerForm::Updated],
            Issuers::Only(IssuerForm::Original) => &[IssuerForm::Original],
            Issuers::Only(IssuerForm::Updated) => &[IssuerForm::Updated],
        };
        let regions = std::iter::once(self.pool.region()).chain(
            self.replica_regions
                .iter()
                .map(String::as_str)
                .filter(|r| *r != self.pool.region()),
        );
        let mut seen = HashSet::new();
        regions
            .flat_map(|region| forms.iter().map(move |&form| (region, form)))
            .map(|(region, form)| self.pool.issuer_in(region, form))
            .filter(|issuer| seen.insert(issuer.clone()))
            .collect()
    }

    /// Checks everything of this pool that can be checked without the network, except its key
    /// source (which needs the configuration's HTTP settings).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.client_ids.validate()?;
        if let Some(issuer) = &self.issuer_override {
            if issuer.trim().is_empty() || issuer.trim() != issuer {
                return Err(ConfigError::InvalidIssuer(issuer.clone()));
            }
        }
        if self.pool.is_emulated()
            && (self.issuer_override.is_none()
                || (self.keys.url.is_none() && self.keys.document.is_none()))
        {
            return Err(ConfigError::EmulatorPoolNeedsOverrides(
                self.pool.id().to_owned(),
            ));
        }
        for region in &self.replica_regions {
            if !super::pool::is_region(region) {
                return Err(ConfigError::InvalidRegion(region.clone()));
            }
            if self.pool.is_emulated() || self.issuer_override.is_some() {
                return Err(ConfigError::InvalidSetting {
                    setting: "replica_region",
                    reason: "needs a Cognito pool id and the Cognito issuers, not an override",
                });
            }
        }
        Ok(())
    }
}

impl fmt::Debug for PoolConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolConfig")
            .field("pool", &self.pool.id())
            .field("token_use", &self.token_use)
            .field("client_ids", &self.client_ids)
            .field("issuers", &self.accepted_issuers())
            .field("jwks_url", &self.keys.url)
            .field("fetch_keys", &self.keys.fetch)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(id: &str) -> PoolConfig {
        PoolConfig::new(
            UserPool::parse(id).unwrap(),
            TokenUse::Access,
            ClientIds::one("c"),
        )
    }

    #[test]
    fn replica_regions_add_the_pool_issuers_of_each_region() {
        let replicated = pool("eu-west-1_AbC").replica_region("us-east-1");
        assert_eq!(
            replicated.accepted_issuers(),
            [
                "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC",
                "https://issuer-cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC",
                "https://cognito-idp.us-east-1.amazonaws.com/eu-west-1_AbC",
                "https://issuer-cognito-idp.us-east-1.amazonaws.com/eu-west-1_AbC",
            ]
        );
        let updated_only = pool("eu-west-1_AbC")
            .issuers(Issuers::Only(IssuerForm::Updated))
            .replica_region("us-east-1")
            .replica_region("eu-west-1");
        assert_eq!(
            updated_only.accepted_issuers(),
            [
                "https://issuer-cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC",
                "https://issuer-cognito-idp.us-east-1.amazonaws.com/eu-west-1_AbC",
            ]
        );
        assert_eq!(updated_only.validate(), Ok(()));
    }

    #[test]
    fn replica_regions_are_checked() {
        assert_eq!(
            pool("eu-west-1_AbC").replica_region("mars-1").validate(),
            Err(ConfigError::InvalidRegion("mars-1".into()))
        );
        assert!(matches!(
            pool("eu-west-1_AbC")
                .issuer_override("http://127.0.0.1:1/x")
                .replica_region("us-east-1")
                .validate(),
            Err(ConfigError::InvalidSetting {
                setting: "replica_region",
                ..
            })
        ));
    }
}
