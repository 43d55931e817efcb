//! What is accepted of a pool: [`TokenUse`] (the kind of token) and [`ClientIds`] (whose).

use std::collections::HashSet;
use std::fmt;

use super::ConfigError;

/// Which kind of Cognito token is accepted, by its `token_use` claim.
///
/// Access tokens are what an API should accept; id tokens describe the user to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenUse {
    /// Only access tokens (`token_use: "access"`); the client is checked through `client_id`.
    Access,
    /// Only id tokens (`token_use: "id"`); the client is checked through `aud`.
    Id,
    /// Either kind; the client is checked through the claim that kind carries.
    Any,
}

impl TokenUse {
    pub(crate) fn accepts(self, token_use: &str) -> bool {
        match self {
            Self::Access => token_use == "access",
            Self::Id => token_use == "id",
            Self::Any => token_use == "access" || token_use == "id",
        }
    }
}

/// The app client ids whose tokens are accepted.
///
/// Cognito access tokens carry the client in `client_id` and have no `aud`; id tokens carry it in
/// `aud`. Both are checked against this list.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIds(ClientRule);

/// Which clients pass: a list, or all of them.
#[derive(Clone, PartialEq, Eq)]
enum ClientRule {
    /// ahash, not SipHash: every fresh token is looked up here.
    Allowed(HashSet<String, ahash::RandomState>),
    Unchecked,
}

impl ClientIds {
    /// Accept tokens of these app clients only. An empty list is a [`ConfigError::NoClientIds`]
    /// when the verifier is built.
    pub fn new<I, S>(ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self(ClientRule::Allowed(
            ids.into_iter().map(Into::into).collect(),
        ))
    }

    /// Accept tokens of this one app client.
    pub fn one(id: impl Into<String>) -> Self {
        Self::new([id])
    }

    /// Skip the client check: accept tokens of ANY app client of the pool.
    ///
    /// Only for a pool whose every client is trusted by this API. The name is loud on purpose.
    pub fn unchecked() -> Self {
        Self(ClientRule::Unchecked)
    }

    pub(crate) fn allows(&self, client: &str) -> bool {
        match &self.0 {
            ClientRule::Allowed(ids) => ids.contains(client),
            ClientRule::Unchecked => true,
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        match &self.0 {
            ClientRule::Unchecked => Ok(()),
            ClientRule::Allowed(ids) if ids.is_empty() => Err(ConfigError::NoClientIds),
            ClientRule::Allowed(ids) => ids.iter().try_for_each(|id| {
                let ok = !id.is_empty()
                    && id.len() <= 128
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                ok.then_some(())
                    .ok_or_else(|| ConfigError::InvalidClientId(id.clone()))
            }),
        }
    }
}

impl fmt::Debug for ClientIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ClientRule::Allowed(ids) => {
                let mut ids: Vec<&String> = ids.iter().collect();
                ids.sort();
                f.debug_tuple("ClientIds").field(&ids).finish()
            }
            ClientRule::Unchecked => f.write_str("ClientIds::unchecked()"),
        }
    }
}
