//! [`StoredTokens`]: one sign-in's tokens as a token source holds them and a
//! [`TokenStore`](crate::TokenStore) keeps them, with their JSON form.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::jwt;
use crate::secret::Secret;
use crate::store::StoreError;
use crate::token_client::Tokens;

/// The version of the JSON form written by [`StoredTokens::to_json`].
const FORMAT_VERSION: u32 = 1;

/// Seconds since the Unix epoch, now.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One sign-in's tokens: the access token and when it expires, the refresh token and the id
/// token. `Debug` shows none of them.
///
/// The expiry is read from the access token's `exp` (without verifying it; the API does
/// that), or else from the `expires_in` Cognito announced.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredTokens {
    access_token: Secret,
    id_token: Option<Secret>,
    refresh_token: Option<Secret>,
    expires_at: u64,
    issued_at: u64,
}

impl fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |present: bool| if present { "<redacted>" } else { "None" };
        f.debug_struct("StoredTokens")
            .field("access_token", &"<redacted>")
            .field("id_token", &redacted(self.id_token.is_some()))
            .field("refresh_token", &redacted(self.refresh_token.is_some()))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl StoredTokens {
    /// Tokens from a sign-in made elsewhere: the access token (a JWT whose `exp` gives the
    /// expiry; anything else counts as already expired, so the first use refreshes) and the
    /// refresh token, if any.
    pub fn new(access_token: impl Into<Secret>, refresh_token: Option<Secret>) -> Self {
        let access_token = access_token.into();
        let (expires_at, issued_at) = match jwt::times(access_token.expose()) {
            Some(times) => (times.exp, times.iat.unwrap_or_else(now_secs)),
            None => (0, 0),
        };
        Self {
            access_token,
            id_token: None,
            refresh_token,
            expires_at,
            issued_at,
        }
    }

    /// With an id token.
    #[must_use]
    pub fn with_id_token(mut self, id_token: impl Into<Secret>) -> Self {
        self.id_token = Some(id_token.into());
        self
    }

    /// The access token.
    pub fn access_token(&self) -> &Secret {
        &self.access_token
    }

    /// The id token, if any.
    pub fn id_token(&self) -> Option<&Secret> {
        self.id_token.as_ref()
    }

    /// The refresh token, if any.
    pub fn refresh_token(&self) -> Option<&Secret> {
        self.refresh_token.as_ref()
    }

    /// When the access token expires.
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.expires_at)
    }

    /// The tokens of a refresh answer: its new refresh token, or this one's when none came back
    /// (rotation off), and this id token when the answer has none.
    pub(crate) fn refreshed(&self, answer: Tokens) -> Self {
        let mut next = Self::from(answer);
        if next.refresh_token.is_none() {
            next.refresh_token.clone_from(&self.refresh_token);
        }
        if next.id_token.is_none() {
            next.id_token.clone_from(&self.id_token);
        }
        next
    }

    /// Whether the access token is still valid `margin` from now. The margin is capped at half
    /// the token's lifetime, so that a pool with short-lived tokens does not refresh on every
    /// call.
    pub(crate) fn valid_for(&self, margin: Duration, now: u64) -> bool {
        let lifetime = self.expires_at.saturating_sub(self.issued_at);
        let margin = margin.as_secs().min(lifetime / 2);
        self.expires_at > now.saturating_add(margin)
    }

    /// The JSON form: `{"version":1,"access_token":...,"id_token":...,"refresh_token":...,
    /// "expires_at":<unix seconds>,"issued_at":<unix seconds>}`. It holds the tokens in
    /// clear: keep it where only the user can read it. The buffer is zeroed when dropped.
    pub fn to_json(&self) -> Zeroizing<Vec<u8>> {
        let form = Form {
            version: FORMAT_VERSION,
            access_token: self.access_token.expose(),
            id_token: self.id_token.as_ref().map(Secret::expose),
            refresh_token: self.refresh_token.as_ref().map(Secret::expose),
            expires_at: self.expires_at,
            issued_at: Some(self.issued_at),
        };
        // Serializing strings and numbers into a Vec cannot fail.
        Zeroizing::new(serde_json::to_vec_pretty(&form).unwrap_or_default())
    }

    /// Reads the JSON form of [`to_json`](Self::to_json). Anything else (truncated, not JSON,
    /// a missing field, another version) is a [`StoreError`] of kind
    /// [`Corrupt`](crate::StoreErrorKind::Corrupt) that says where, never what: the text may
    /// hold a token.
    pub fn from_json(bytes: &[u8]) -> Result<Self, StoreError> {
        let form: OwnedForm = serde_json::from_slice(bytes).map_err(|e| {
            StoreError::corrupt(format!(
                "not the token JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        if form.version != FORMAT_VERSION {
            return Err(StoreError::corrupt(format!(
                "format version {} is not {FORMAT_VERSION}",
                form.version
            )));
        }
        if form.access_token.is_empty() {
            return Err(StoreError::corrupt("the access token is empty"));
        }
        Ok(Self {
            access_token: Secret::new(form.access_token),
            id_token: form.id_token.map(Secret::new),
            refresh_token: form.refresh_token.map(Secret::new),
            expires_at: form.expires_at,
            issued_at: form.issued_at.unwrap_or(0),
        })
    }
}

impl From<Tokens> for StoredTokens {
    /// The tokens of a sign-in or refresh answer.
    fn from(tokens: Tokens) -> Self {
        let now = now_secs();
        let (expires_at, issued_at) = match jwt::times(tokens.access_token.expose()) {
            Some(times) => (times.exp, times.iat.unwrap_or(now)),
            None => (now.saturating_add(tokens.expires_in.as_secs()), now),
        };
        Self {
            access_token: tokens.access_token,
            id_token: tokens.id_token,
            refresh_token: tokens.refresh_token,
            expires_at,
            issued_at,
        }
    }
}

#[derive(Serialize)]
struct Form<'a> {
    version: u32,
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    expires_at: u64,
    issued_at: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnedForm {
    version: u32,
    access_token: String,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    expires_at: u64,
    #[serde(default)]
    issued_at: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_debug_redacts() {
        let tokens = StoredTokens::new("access-secret", Some(Secret::new("refresh-secret")))
            .with_id_token("id-secret");
        let json = tokens.to_json();
        assert_eq!(StoredTokens::from_json(&json).unwrap(), tokens);
        let shown = format!("{tokens:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn corrupt_json_says_where_not_what() {
        let json =
            StoredTokens::new("access-secret", Some(Secret::new("refresh-secret"))).to_json();
        for bad in [&json[..json.len() / 2], b"", b"{\"version\":1}", b"[1,2]"] {
            let error = StoredTokens::from_json(bad).unwrap_err();
            assert_eq!(error.kind(), crate::StoreErrorKind::Corrupt);
            assert!(!error.to_string().contains("secret"), "{error}");
        }
        let other = br#"{"version":2,"access_token":"a","expires_at":0}"#;
        assert!(StoredTokens::from_json(other).is_err());
        let typed = br#"{"version":1,"access_token":"a","expires_at":"access-secret"}"#;
        let error = StoredTokens::from_json(typed).unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[test]
    fn margin_is_capped_at_half_the_lifetime() {
        let tokens = StoredTokens {
            access_token: Secret::new("a"),
            id_token: None,
            refresh_token: None,
            expires_at: 1_300,
            issued_at: 1_000,
        };
        let margin = Duration::from_secs(60);
        assert!(tokens.valid_for(margin, 1_239));
        assert!(!tokens.valid_for(margin, 1_240));
        // 300 s lifetime, a 600 s margin: refreshes at half-life, not on every call.
        assert!(tokens.valid_for(Duration::from_secs(600), 1_149));
        assert!(!tokens.valid_for(Duration::from_secs(600), 1_150));
    }
}
