//! [`ConfigError`]: what is wrong with a configuration, found when the verifier is built.

use std::fmt;

/// An error in the configuration, found when the verifier is built. Never returned per request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The user pool id is not of the form `{region}_{id}`, such as `eu-west-1_AbCdEf123`.
    InvalidUserPoolId(String),
    /// An emulator's pool id (no region, such as `local_6e1bGJFg`) without both the issuer and
    /// the JWKS URL given: there is no Cognito URL to derive them from.
    EmulatorPoolNeedsOverrides(String),
    /// The region is not an AWS region name such as `eu-west-1`.
    InvalidRegion(String),
    /// The region given does not match the one in the user pool id.
    RegionMismatch {
        /// The region in the pool id.
        pool: String,
        /// The region given.
        given: String,
    },
    /// No client id was given; use [`ClientIds::unchecked`](super::ClientIds::unchecked) to skip the client check on purpose.
    NoClientIds,
    /// A client id is empty or holds characters Cognito never uses.
    InvalidClientId(String),
    /// A URL could not be parsed, or is not `https`.
    InvalidUrl {
        /// Which setting held the URL.
        setting: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// An issuer override is empty.
    InvalidIssuer(String),
    /// Two pools of one configuration accept the same issuer, so a token's issuer could not pick
    /// its pool.
    DuplicateIssuer(String),
    /// A required scope or group is empty or holds characters RFC 6749 does not allow in scopes.
    InvalidRule(String),
    /// Extra root certificates could not be read as PEM.
    InvalidCertificate(String),
    /// A JWKS document given at build time could not be used.
    InvalidJwks(String),
    /// A numeric setting is out of range.
    InvalidSetting {
        /// Which setting.
        setting: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmulatorPoolNeedsOverrides(id) => write!(
                f,
                "user pool id {id:?} has no region (an emulator's): give both the issuer and the JWKS URL"
            ),
            Self::InvalidUserPoolId(id) => write!(
                f,
                "invalid user pool id {id:?}: expected {{region}}_{{id}}, such as eu-west-1_AbCdEf123"
            ),
            Self::InvalidRegion(r) => {
                write!(f, "invalid AWS region {r:?}: expected a name such as eu-west-1")
            }
            Self::RegionMismatch { pool, given } => write!(
                f,
                "region {given:?} does not match the user pool id's region {pool:?}"
            ),
            Self::NoClientIds => f.write_str(
                "no app client id given: name the allowed client ids, or call ClientIds::unchecked() to skip the check on purpose",
            ),
            Self::InvalidClientId(id) => write!(f, "invalid app client id {id:?}"),
            Self::InvalidUrl { setting, reason } => write!(f, "invalid {setting}: {reason}"),
            Self::InvalidIssuer(i) => write!(f, "invalid issuer {i:?}"),
            Self::InvalidCertificate(reason) => {
                write!(f, "invalid root certificates for JWKS fetches: {reason}")
            }
            Self::DuplicateIssuer(i) => write!(
                f,
                "issuer {i:?} is accepted by two pools: each issuer must belong to one pool"
            ),
            Self::InvalidRule(r) => write!(
                f,
                "invalid scope or group {r:?}: must be non-empty printable ASCII without spaces, quotes or backslashes"
            ),
            Self::InvalidJwks(reason) => write!(f, "invalid JWKS document: {reason}"),
            Self::InvalidSetting { setting, reason } => write!(f, "invalid {setting}: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}
