//! The session key: which sign-in a verified token belongs to.

use std::sync::Arc;

use super::SessionConfig;

/// What a session key function sees of a verified token.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SessionKeyParts<'a> {
    /// `sub`.
    pub sub: Option<&'a str>,
    /// `client_id` (access tokens) or `aud` (id tokens).
    pub client: Option<&'a str>,
    /// `origin_jti`.
    pub origin_jti: Option<&'a str>,
    /// `device_key`.
    pub device_key: Option<&'a str>,
    /// `token_use`.
    pub token_use: &'a str,
}

impl SessionKeyParts<'_> {
    /// Whether this is a machine-to-machine token of the `client_credentials` grant: an access
    /// token with no `origin_jti` whose `sub` is its `client_id`.
    pub fn is_client_credentials(&self) -> bool {
        self.token_use == "access"
            && self.origin_jti.is_none_or(str::is_empty)
            && self
                .sub
                .is_some_and(|sub| !sub.is_empty() && Some(sub) == self.client)
    }

    /// The default key: `o:{origin_jti}`, else `s:{sub}:{client}[:{device_key}]`; `None` when the
    /// token has neither (then it is refused as lacking a required claim).
    pub fn default_key(&self) -> Option<String> {
        if let Some(origin) = self.origin_jti.filter(|o| !o.is_empty()) {
            return Some(format!("o:{origin}"));
        }
        let sub = self.sub.filter(|s| !s.is_empty())?;
        let client = self.client.unwrap_or("");
        Some(match self.device_key {
            Some(device) => format!("s:{sub}:{client}:{device}"),
            None => format!("s:{sub}:{client}"),
        })
    }
}

pub(super) type KeyFn = Arc<dyn Fn(&SessionKeyParts<'_>) -> Option<String> + Send + Sync>;

impl SessionConfig {
    /// The key of the session of a token with these parts: `Ok(None)` when it has no session
    /// (an M2M token, unless [`window_machine_tokens`](Self::window_machine_tokens)),
    /// `Err(())` to refuse it.
    pub(crate) fn key(&self, parts: &SessionKeyParts<'_>) -> Result<Option<String>, ()> {
        match &self.key_fn {
            Some(f) => f(parts).map(Some).ok_or(()),
            None if !self.window_machine_tokens && parts.is_client_credentials() => Ok(None),
            None => parts.default_key().map(Some).ok_or(()),
        }
    }
}
