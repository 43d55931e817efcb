//! Typed Cognito claims: [`AccessClaims`], [`IdClaims`], and [`AnyClaims`] for either.
//!
//! These are what handlers read after verification. Any `serde::de::DeserializeOwned` type can
//! stand in their place (`Verifier<MyClaims>`); the verifier checks the registered claims itself,
//! whatever type the handler asks for. Claims without a field here (a pre-token-generation
//! trigger's, say) are read with [`Verified::claim`](crate::Verified::claim) or
//! [`Verified::claims_json`](crate::Verified::claims_json).

mod one_pass;
mod registered;
mod representable;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

pub(crate) use one_pass::Payload;
pub(crate) use registered::Registered;

/// The claims of a Cognito access token (`token_use: "access"`).
///
/// Other claims (`version`, or a pre-token-generation trigger's) are not kept here, so that the
/// hot path parses no map: read them with [`Verified::claim`](crate::Verified::claim).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct AccessClaims {
    /// The user's unique, immutable id.
    pub sub: String,
    /// The issuer.
    pub iss: String,
    /// The app client the token was issued to.
    pub client_id: String,
    /// The user name.
    #[serde(default)]
    pub username: String,
    /// The granted OAuth scopes, space-separated; see [`scopes`](Self::scopes).
    #[serde(default)]
    pub scope: String,
    /// The user's groups (`cognito:groups`).
    #[serde(rename = "cognito:groups", default)]
    pub groups: Vec<String>,
    /// The id of the sign-in, kept across refreshes.
    #[serde(default)]
    pub origin_jti: Option<String>,
    /// The id of this token.
    #[serde(default)]
    pub jti: Option<String>,
    /// The id of the authentication event.
    #[serde(default)]
    pub event_id: Option<String>,
    /// The remembered device, when device tracking is on.
    #[serde(default)]
    pub device_key: Option<String>,
    /// When the user authenticated (seconds since the epoch).
    #[serde(default)]
    pub auth_time: Option<i64>,
    /// When the token was issued (seconds since the epoch).
    pub iat: i64,
    /// When the token expires (seconds since the epoch).
    pub exp: i64,
}

impl AccessClaims {
    /// The granted scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// The claims of a Cognito id token (`token_use: "id"`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct IdClaims {
    /// The user's unique, immutable id.
    pub sub: String,
    /// The issuer.
    pub iss: String,
    /// The app client the token was issued to.
    pub aud: String,
    /// The user name (`cognito:username`).
    #[serde(rename = "cognito:username", default)]
    pub username: String,
    /// The e-mail address, when the app client may read it.
    #[serde(default)]
    pub email: Option<String>,
    /// Whether the e-mail address is verified (`"true"` strings from emulators are accepted).
    #[serde(default, deserialize_with = "lenient_bool")]
    pub email_verified: Option<bool>,
    /// The user's groups (`cognito:groups`).
    #[serde(rename = "cognito:groups", default)]
    pub groups: Vec<String>,
    /// The id of the sign-in, kept across refreshes.
    #[serde(default)]
    pub origin_jti: Option<String>,
    /// The id of this token.
    #[serde(default)]
    pub jti: Option<String>,
    /// When the user authenticated (seconds since the epoch).
    #[serde(default)]
    pub auth_time: Option<i64>,
    /// When the token was issued (seconds since the epoch).
    pub iat: i64,
    /// When the token expires (seconds since the epoch).
    pub exp: i64,
    /// Every other claim: profile attributes, `custom:` attributes, `identities`, ...
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl IdClaims {
    /// A custom attribute, by its name without the `custom:` prefix.
    pub fn custom_attribute(&self, name: &str) -> Option<&Value> {
        self.other
            .iter()
            .find(|(k, _)| k.strip_prefix("custom:") == Some(name))
            .map(|(_, v)| v)
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// Either kind of token, chosen by its `token_use` claim: for [`TokenUse::Any`](crate::TokenUse::Any).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "token_use")]
#[non_exhaustive]
pub enum AnyClaims {
    /// An access token.
    #[serde(rename = "access")]
    Access(AccessClaims),
    /// An id token.
    #[serde(rename = "id")]
    Id(IdClaims),
}

impl AnyClaims {
    /// The user's unique id.
    pub fn sub(&self) -> &str {
        match self {
            Self::Access(c) => &c.sub,
            Self::Id(c) => &c.sub,
        }
    }

    /// The user's groups.
    pub fn groups(&self) -> &[String] {
        match self {
            Self::Access(c) => &c.groups,
            Self::Id(c) => &c.groups,
        }
    }
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Lenient {
        Bool(bool),
        Str(String),
    }
    Ok(match Option::<Lenient>::deserialize(d)? {
        None => None,
        Some(Lenient::Bool(b)) => Some(b),
        Some(Lenient::Str(s)) if s.eq_ignore_ascii_case("true") => Some(true),
        Some(Lenient::Str(s)) if s.eq_ignore_ascii_case("false") => Some(false),
        Some(Lenient::Str(_)) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_claims_read_cognito_names() {
        let c: AccessClaims = serde_json::from_str(
            r#"{"sub":"u","iss":"i","client_id":"c","token_use":"access","scope":"a  b",
                "cognito:groups":["admins"],"username":"alice","iat":1,"exp":2,"version":2}"#,
        )
        .unwrap();
        assert_eq!(c.scopes().collect::<Vec<_>>(), ["a", "b"]);
        assert!(c.has_scope("b") && !c.has_scope("c"));
        assert!(c.in_group("admins"));
    }

    #[test]
    fn id_claims_are_lenient_with_profile_attributes() {
        let c: IdClaims = serde_json::from_str(
            r#"{"sub":"u","iss":"i","aud":"c","cognito:username":"bob","email_verified":"true",
                "custom:tenant":"acme","iat":1,"exp":2}"#,
        )
        .unwrap();
        assert_eq!(c.email_verified, Some(true));
        assert_eq!(c.custom_attribute("tenant"), Some(&Value::from("acme")));
        assert_eq!(c.username, "bob");
    }

    #[test]
    fn any_claims_dispatch_on_token_use() {
        let a: AnyClaims = serde_json::from_str(
            r#"{"sub":"u","iss":"i","client_id":"c","token_use":"access","iat":1,"exp":2}"#,
        )
        .unwrap();
        assert!(matches!(a, AnyClaims::Access(_)));
        let i: AnyClaims = serde_json::from_str(
            r#"{"sub":"u","iss":"i","aud":"c","token_use":"id","iat":1,"exp":2}"#,
        )
        .unwrap();
        assert!(matches!(i, AnyClaims::Id(_)));
    }
}
