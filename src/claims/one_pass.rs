//! The one-pass parse of an access token's payload: the registered claims and the rest of
//! [`AccessClaims`] at once, so that the JSON is parsed once rather than twice.
//!
//! An optimisation only: [`Payload`] falls back to two passes whenever this one refuses.

use std::any::{Any, TypeId};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::representable::representable;
use super::{AccessClaims, Registered};
use crate::error::InvalidToken;
use crate::jws::{parse_object, Str};

/// A decoded payload: the registered claims to check, and what the claims type is read from.
pub(crate) struct Payload<'a> {
    /// What steps 5 to 9 and the session key read.
    pub(crate) registered: Registered<'a>,
    /// Left over by the one-pass parse, when it ran and accepted the payload.
    rest: Option<AccessRest<'a>>,
    json: &'a [u8],
}

impl<'a> Payload<'a> {
    /// Parses the payload for claims type `C`. The crate's own access claims come from the same
    /// single pass as the checked claims; a payload that pass refuses takes the general path
    /// (two passes) for the precise error.
    pub(crate) fn parse<C: 'static>(json: &'a [u8]) -> Result<Self, InvalidToken> {
        let one_pass = (TypeId::of::<C>() == TypeId::of::<AccessClaims>())
            .then(|| parse_object::<AccessPayload<'_>>(json).ok())
            .flatten();
        let payload = match one_pass {
            Some(one_pass) => {
                let (registered, rest) = one_pass.into_parts();
                Self {
                    registered,
                    rest: Some(rest),
                    json,
                }
            }
            None => Self {
                registered: parse_object::<Registered<'_>>(json)?,
                rest: None,
                json,
            },
        };
        Ok(payload)
    }

    /// Accepted claims must also read as a JSON value (`Verified::claims_json`): checked last,
    /// once every other step passed, so the order of checks (and each refusal's answer) stays.
    pub(crate) fn check_representable(&self) -> Result<(), InvalidToken> {
        if representable(self.json) {
            Ok(())
        } else {
            tracing::debug!("claims hold a number, a nesting or a string a JSON value cannot");
            Err(InvalidToken::Malformed)
        }
    }

    /// The claims, read into the claims type.
    pub(crate) fn into_claims<C: DeserializeOwned + 'static>(self) -> Result<C, InvalidToken> {
        match self.rest {
            Some(rest) => rest
                .into_claims(self.registered)
                .and_then(downcast::<AccessClaims, C>)
                .ok_or_else(|| {
                    tracing::debug!("claims do not fit the claims type");
                    InvalidToken::Malformed
                }),
            None => serde_json::from_slice(self.json).map_err(|e| {
                tracing::debug!(error = %e, "claims do not fit the claims type");
                InvalidToken::Malformed
            }),
        }
    }
}

/// `value` as a `U`, when `T` and `U` are the same type.
fn downcast<T: 'static, U: 'static>(value: T) -> Option<U> {
    let mut value = Some(value);
    (&mut value as &mut dyn Any)
        .downcast_mut::<Option<U>>()
        .and_then(Option::take)
}

/// [`Registered`] and the rest of [`AccessClaims`] in one pass over the payload, so that an
/// access token's JSON is parsed once rather than twice.
///
/// It accepts exactly the payloads that both [`Registered`] and [`AccessClaims`] accept, apart
/// from the claims `AccessClaims` requires, which [`into_parts`](Self::into_parts) looks for:
/// the members both read have the stricter of the two types (`scope`, `cognito:groups` and
/// `username` may be missing but not `null`). When this parse fails, the verifier falls back
/// to the two-pass path, which then gives the precise error in the documented order.
#[derive(Deserialize)]
struct AccessPayload<'a> {
    #[serde(borrow, default)]
    iss: Option<Str<'a>>,
    #[serde(borrow, default)]
    token_use: Option<Str<'a>>,
    #[serde(borrow, default)]
    client_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    aud: Option<Str<'a>>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(borrow, default, deserialize_with = "not_null")]
    scope: Option<Str<'a>>,
    #[serde(
        borrow,
        default,
        rename = "cognito:groups",
        deserialize_with = "not_null"
    )]
    groups: Option<Vec<Str<'a>>>,
    #[serde(borrow, default)]
    sub: Option<Str<'a>>,
    #[serde(borrow, default)]
    origin_jti: Option<Str<'a>>,
    #[serde(borrow, default)]
    device_key: Option<Str<'a>>,
    #[serde(borrow, default, deserialize_with = "not_null")]
    username: Option<Str<'a>>,
    #[serde(borrow, default)]
    jti: Option<Str<'a>>,
    #[serde(borrow, default)]
    event_id: Option<Str<'a>>,
    #[serde(default)]
    auth_time: Option<i64>,
}

/// A member that may be missing (then `None`, by `default`) but not `null`, as a `String` or
/// `Vec` field with `#[serde(default)]` reads it.
fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// What [`AccessPayload::into_parts`] leaves for [`AccessRest::into_claims`].
struct AccessRest<'a> {
    username: Option<Str<'a>>,
    jti: Option<Str<'a>>,
    event_id: Option<Str<'a>>,
    auth_time: Option<i64>,
}

impl<'a> AccessPayload<'a> {
    fn into_parts(self) -> (Registered<'a>, AccessRest<'a>) {
        let registered = Registered {
            iss: self.iss,
            token_use: self.token_use,
            client_id: self.client_id,
            aud: self.aud,
            exp: self.exp,
            nbf: self.nbf,
            iat: self.iat,
            scope: self.scope,
            groups: self.groups,
            sub: self.sub,
            origin_jti: self.origin_jti,
            device_key: self.device_key,
        };
        let rest = AccessRest {
            username: self.username,
            jti: self.jti,
            event_id: self.event_id,
            auth_time: self.auth_time,
        };
        (registered, rest)
    }
}

impl AccessRest<'_> {
    /// The [`AccessClaims`], or `None` where deserializing them would fail: a required claim
    /// is missing.
    fn into_claims(self, registered: Registered<'_>) -> Option<AccessClaims> {
        Some(AccessClaims {
            sub: registered.sub?.into(),
            iss: registered.iss?.into(),
            client_id: registered.client_id?.into(),
            username: self.username.map(String::from).unwrap_or_default(),
            scope: registered.scope.map(String::from).unwrap_or_default(),
            groups: registered
                .groups
                .map(|groups| groups.into_iter().map(String::from).collect())
                .unwrap_or_default(),
            origin_jti: registered.origin_jti.map(String::from),
            jti: self.jti.map(String::from),
            event_id: self.event_id.map(String::from),
            device_key: registered.device_key.map(String::from),
            auth_time: self.auth_time,
            iat: registered.iat?,
            exp: registered.exp?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass parse accepts a payload only when the two-pass parse would, and then gives
    /// the same claims.
    #[test]
    fn one_pass_agrees_with_two_passes() {
        let payloads = [
            r#"{"sub":"u","iss":"i","client_id":"c","token_use":"access","scope":"a b",
                "cognito:groups":["g"],"username":"al\u0069ce","origin_jti":"o","jti":"j",
                "event_id":"e","device_key":"d","auth_time":1,"iat":2,"exp":3,"version":2}"#,
            r#"{"sub":"u","iss":"i","client_id":"c","iat":2,"exp":3}"#,
            r#"{"sub":"u","iss":"i","client_id":"c","iat":2,"exp":3,"scope":null}"#,
            r#"{"sub":"u","iss":"i","client_id":"c","iat":2,"exp":3,"cognito:groups":null}"#,
            r#"{"sub":"u","iss":"i","client_id":"c","iat":2,"exp":3,"username":null}"#,
            r#"{"sub":"u","iss":"i","client_id":"c","iat":2,"exp":3,"username":5}"#,
            r#"{"sub":"u","iss":"i","client_id":"c","iat":2,"exp":3,"jti":null,"aud":"x"}"#,
            r#"{"sub":"u","iss":"i","client_id":"c","iat":2,"exp":3,"auth_time":"1"}"#,
            r#"{"sub":"u","iss":"i","client_id":"c","iat":2,"exp":3,"username":"a","username":"b"}"#,
            r#"{"sub":"u","iss":"i","client_id":"c","iat":2,"exp":3,"iss":"j"}"#,
            r#"{"iss":"i","client_id":"c","iat":2,"exp":3}"#,
            r#"{"sub":null,"iss":"i","client_id":"c","iat":2,"exp":3}"#,
            r#"{"sub":"u","iss":"i","client_id":"c","iat":2}"#,
            r#"{"sub":"u","iss":"i","client_id":"c","iat":2,"exp":null}"#,
            r#"{"sub":"u","iss":5,"client_id":"c","iat":2,"exp":3}"#,
            r#"{"sub":"u","iss":"i","client_id":"c","iat":2.5,"exp":3}"#,
        ];
        for payload in payloads {
            let json = payload.as_bytes();
            let two_passes = parse_object::<Registered<'_>>(json)
                .ok()
                .and_then(|_| serde_json::from_slice::<AccessClaims>(json).ok());
            let one_pass = parse_object::<AccessPayload<'_>>(json).ok().and_then(|p| {
                let (registered, rest) = p.into_parts();
                rest.into_claims(registered)
            });
            assert_eq!(one_pass, two_passes, "{payload}");
        }
    }

    /// The registered claims as plain values, to compare the two parses.
    type Plain = ([Option<String>; 8], [Option<i64>; 3], Option<Vec<String>>);

    fn plain(r: &Registered<'_>) -> Plain {
        let s = |v: &Option<Str<'_>>| v.as_deref().map(str::to_owned);
        (
            [
                s(&r.iss),
                s(&r.token_use),
                s(&r.client_id),
                s(&r.aud),
                s(&r.scope),
                s(&r.sub),
                s(&r.origin_jti),
                s(&r.device_key),
            ],
            [r.exp, r.nbf, r.iat],
            r.groups
                .as_ref()
                .map(|g| g.iter().map(|v| v.to_string()).collect()),
        )
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        const NAMES: [&str; 18] = [
            "sub",
            "iss",
            "client_id",
            "token_use",
            "aud",
            "exp",
            "nbf",
            "iat",
            "scope",
            "cognito:groups",
            "origin_jti",
            "device_key",
            "username",
            "jti",
            "event_id",
            "auth_time",
            "version",
            "custom:x",
        ];

        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(r#""a""#.to_owned()),
                Just(r#""b\u0063""#.to_owned()),
                Just("null".to_owned()),
                Just("true".to_owned()),
                Just("7".to_owned()),
                Just("-3".to_owned()),
                Just("2.5".to_owned()),
                Just("1e3".to_owned()),
                Just("[]".to_owned()),
                Just(r#"["g","h\n"]"#.to_owned()),
                Just(r#"["g",1]"#.to_owned()),
                Just(r#"{"k":"v"}"#.to_owned()),
            ]
        }

        proptest! {
            /// Over objects built from every claim name either parse reads, with values of
            /// every JSON type, the claims `AccessClaims` requires filled in with good values
            /// where not drawn (else almost every object would fail both ways), and now and then
            /// a repeated member: the one pass accepts exactly what the two passes accept, with
            /// the same registered claims and the same `AccessClaims`.
            #[test]
            fn one_pass_is_the_two_passes(
                drawn in proptest::collection::btree_map(0..NAMES.len(), value(), 0..8),
                repeat in proptest::option::weighted(0.2, (0..NAMES.len(), value())),
            ) {
                let mut body: Vec<String> = drawn
                    .iter()
                    .map(|(name, value)| format!(r#""{}":{value}"#, NAMES[*name]))
                    .collect();
                for (name, good) in
                    [("sub", r#""u""#), ("iss", r#""i""#), ("client_id", r#""c""#), ("iat", "1"), ("exp", "2")]
                {
                    if !drawn.keys().any(|k| NAMES[*k] == name) {
                        body.push(format!(r#""{name}":{good}"#));
                    }
                }
                if let Some((name, value)) = repeat {
                    body.push(format!(r#""{}":{value}"#, NAMES[name]));
                }
                let json = format!("{{{}}}", body.join(","));
                let json = json.as_bytes();
                let registered = parse_object::<Registered<'_>>(json).ok();
                let typed = serde_json::from_slice::<AccessClaims>(json).ok();
                let two_passes = registered.as_ref().map(plain).zip(typed);
                let one_pass = parse_object::<AccessPayload<'_>>(json).ok().and_then(|p| {
                    let (registered, rest) = p.into_parts();
                    let plain = plain(&registered);
                    rest.into_claims(registered).map(|typed| (plain, typed))
                });
                prop_assert_eq!(one_pass, two_passes);
            }
        }
    }
}
