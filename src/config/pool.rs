//! [`UserPool`] and the issuer forms Cognito uses for it.

use std::fmt;

use super::ConfigError;

/// A Cognito user pool, parsed from its id (`{region}_{id}`).
///
/// Local emulators make ids without a region: cognito-local's look like `local_6e1bGJFg`. Such
/// an id parses too (its [`region`](Self::region) is empty, and [`is_emulated`](Self::is_emulated)
/// says so), but a verifier accepts it only when the configuration names both the issuer
/// ([`issuer_override`](crate::CognitoConfig::issuer_override)) and where the keys come from
/// ([`jwks_url`](crate::CognitoConfig::jwks_url) or a JWKS document): there is no Cognito URL to
/// derive them from.
///
/// ```
/// use tower_cognito::UserPool;
///
/// let pool = UserPool::parse("eu-west-1_AbCdEf123").unwrap();
/// assert_eq!(pool.region(), "eu-west-1");
/// assert_eq!(
///     pool.jwks_url(),
///     "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123/.well-known/jwks.json"
/// );
/// assert!(UserPool::parse("not a pool").is_err());
///
/// let local = UserPool::parse("local_6e1bGJFg").unwrap();
/// assert!(local.is_emulated());
/// assert_eq!(local.region(), "");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserPool {
    id: String,
    region: String,
}

impl UserPool {
    /// Parses a user pool id such as `eu-west-1_AbCdEf123`; the region is taken from the id.
    pub fn parse(id: &str) -> Result<Self, ConfigError> {
        let (region, suffix) = id
            .split_once('_')
            .ok_or_else(|| ConfigError::InvalidUserPoolId(id.to_owned()))?;
        if suffix.is_empty()
            || suffix.len() > 40
            || !suffix.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(ConfigError::InvalidUserPoolId(id.to_owned()));
        }
        if is_region(region) {
            return Ok(Self {
                id: id.to_owned(),
                region: region.to_owned(),
            });
        }
        // An emulator's id: a short lowercase word instead of a region (`local_...`).
        let emulator_word = !region.is_empty()
            && region.len() <= 16
            && region.bytes().all(|b| b.is_ascii_lowercase())
            && !region.contains('-');
        if !emulator_word {
            return Err(ConfigError::InvalidUserPoolId(id.to_owned()));
        }
        Ok(Self {
            id: id.to_owned(),
            region: String::new(),
        })
    }

    /// Like [`parse`](Self::parse), but with the region given separately; it must match the id's.
    pub fn with_region(id: &str, region: &str) -> Result<Self, ConfigError> {
        if !is_region(region) {
            return Err(ConfigError::InvalidRegion(region.to_owned()));
        }
        let pool = Self::parse(id)?;
        if pool.region != region {
            return Err(ConfigError::RegionMismatch {
                pool: pool.region,
                given: region.to_owned(),
            });
        }
        Ok(pool)
    }

    /// The pool id, such as `eu-west-1_AbCdEf123`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The AWS region, such as `eu-west-1`; empty for an emulator's pool id.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Whether the id is an emulator's, with no region (such as cognito-local's
    /// `local_6e1bGJFg`): the issuer and the JWKS URL must then be given explicitly.
    pub fn is_emulated(&self) -> bool {
        self.region.is_empty()
    }

    /// The JWKS URL on the original issuer host, which serves every pool.
    pub fn jwks_url(&self) -> String {
        format!(
            "{}/.well-known/jwks.json",
            self.issuer(IssuerForm::Original)
        )
    }

    /// The issuer string of the given form.
    pub fn issuer(&self, form: IssuerForm) -> String {
        self.issuer_in(&self.region, form)
    }

    /// The issuer string of the given form in `region`: the pool's own region, or a replica's.
    pub(crate) fn issuer_in(&self, region: &str, form: IssuerForm) -> String {
        let host = match form {
            IssuerForm::Original => "cognito-idp",
            IssuerForm::Updated => "issuer-cognito-idp",
        };
        format!("https://{host}.{region}.amazonaws.com/{}", self.id)
    }
}

impl fmt::Display for UserPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl std::str::FromStr for UserPool {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// `xx-name-1`, `us-gov-west-1`, `ap-southeast-2`: two letters, one or more words, a number.
pub(super) fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.len() <= 5
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].len() <= 2
        && !parts[parts.len() - 1].is_empty()
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

/// The two issuer forms Cognito uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IssuerForm {
    /// `https://cognito-idp.{region}.amazonaws.com/{poolId}`.
    Original,
    /// `https://issuer-cognito-idp.{region}.amazonaws.com/{poolId}`, used by pools switched to the
    /// updated issuer configuration.
    Updated,
}

/// Which issuers a token may name. Both Cognito forms are accepted by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Issuers {
    /// Accept both the original and the updated issuer form.
    #[default]
    Both,
    /// Accept only this form.
    Only(IssuerForm),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pool_ids() {
        for ok in [
            "eu-west-1_AbC123",
            "us-gov-west-1_x9",
            "ap-southeast-2_Z",
            "il-central-1_q",
        ] {
            assert!(UserPool::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "_",
            "eu-west-1_",
            "eu-west-1",
            "EU-west-1_abc",
            "eu-west_abc",
            "eu-west-1_ab-c",
            "e-west-1_abc",
            "eu-west-1_abc/../x",
        ] {
            assert!(
                matches!(UserPool::parse(bad), Err(ConfigError::InvalidUserPoolId(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn emulator_ids_parse_without_a_region() {
        let pool = UserPool::parse("local_6e1bGJFg").unwrap();
        assert!(pool.is_emulated());
        assert_eq!((pool.id(), pool.region()), ("local_6e1bGJFg", ""));
        assert!(!UserPool::parse("eu-west-1_AbC123").unwrap().is_emulated());
        for bad in [
            "LOCAL_x",
            "lo-cal_x",
            "local_",
            "averyveryverylongword_x",
            "local_a.b",
        ] {
            assert!(UserPool::parse(bad).is_err(), "{bad}");
        }
        // A region is still required where one is named.
        assert!(UserPool::with_region("local_6e1bGJFg", "eu-west-1").is_err());
    }

    #[test]
    fn region_must_match_the_id() {
        assert!(UserPool::with_region("eu-west-1_abc", "eu-west-1").is_ok());
        assert_eq!(
            UserPool::with_region("eu-west-1_abc", "us-east-1"),
            Err(ConfigError::RegionMismatch {
                pool: "eu-west-1".into(),
                given: "us-east-1".into()
            })
        );
        assert_eq!(
            UserPool::with_region("eu-west-1_abc", "nowhere"),
            Err(ConfigError::InvalidRegion("nowhere".into()))
        );
    }
}
