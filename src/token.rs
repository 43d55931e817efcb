//! The parts of a compact JWS and the JSON the verifier reads from them, borrowed from the
//! decoded bytes wherever JSON allows (a string with escapes is the only copy).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ops::Deref;

use base64_simd::{AsOut as _, URL_SAFE_NO_PAD};
use serde::de::{IgnoredAny, Visitor};
use serde::{Deserialize, Deserializer};

use crate::claims::AccessClaims;
use crate::error::{AuthError, InvalidToken};

/// A JSON string, borrowed from the input unless it holds escapes.
///
/// serde's own `Cow<str>` borrows only as a struct field of its own with `#[serde(borrow)]`:
/// inside an `Option` or a `Vec` it always copies.
pub(crate) struct Str<'a>(Cow<'a, str>);

impl Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<Str<'_>> for String {
    fn from(s: Str<'_>) -> String {
        s.0.into_owned()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StrVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for StrVisitor<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(StrVisitor(PhantomData))
    }
}

/// The JOSE header.
#[derive(Deserialize)]
pub(crate) struct Header<'a> {
    #[serde(borrow)]
    pub(crate) alg: Str<'a>,
    #[serde(borrow, default)]
    pub(crate) kid: Option<Str<'a>>,
    /// Present at all, even as `null`, means the token asks for an extension we do not know.
    #[serde(default, deserialize_with = "present")]
    pub(crate) crit: Option<()>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<()>, D::Error> {
    IgnoredAny::deserialize(d).map(|_| Some(()))
}

/// The registered claims the verifier checks (steps 5 to 9 and the session key).
#[derive(Deserialize)]
pub(crate) struct Registered<'a> {
    #[serde(borrow, default)]
    pub(crate) iss: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) token_use: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) client_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) aud: Option<Str<'a>>,
    #[serde(default)]
    pub(crate) exp: Option<i64>,
    #[serde(default)]
    pub(crate) nbf: Option<i64>,
    #[serde(default)]
    pub(crate) iat: Option<i64>,
    #[serde(borrow, default)]
    pub(crate) scope: Option<Str<'a>>,
    #[serde(borrow, default, rename = "cognito:groups")]
    pub(crate) groups: Option<Vec<Str<'a>>>,
    #[serde(borrow, default)]
    pub(crate) sub: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) origin_jti: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(crate) device_key: Option<Str<'a>>,
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
pub(crate) struct AccessPayload<'a> {
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
pub(crate) struct AccessRest<'a> {
    username: Option<Str<'a>>,
    jti: Option<Str<'a>>,
    event_id: Option<Str<'a>>,
    auth_time: Option<i64>,
}

impl<'a> AccessPayload<'a> {
    pub(crate) fn into_parts(self) -> (Registered<'a>, AccessRest<'a>) {
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
    pub(crate) fn into_claims(self, registered: Registered<'_>) -> Option<AccessClaims> {
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

/// Splits `header.payload.signature`; `None` unless there are exactly three non-empty parts.
/// Bounded work whatever the input: at most three `.` are looked for, in one pass with
/// `memchr` (SIMD; `str::splitn` scans eight bytes at a time and cost more than parsing the
/// header).
pub(crate) fn split_token(token: &str) -> Option<(&str, &str, &str)> {
    let mut dots = memchr::memchr_iter(b'.', token.as_bytes());
    let first = dots.next()?;
    let second = dots.next()?;
    if dots.next().is_some() {
        return None;
    }
    // Both are ASCII `.`, so every slice below is on a char boundary.
    let (header, payload, signature) = (
        &token[..first],
        &token[first + 1..second],
        &token[second + 1..],
    );
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return None;
    }
    Some((header, payload, signature))
}

/// Parses a JSON object of valid UTF-8 (RFC 8259 section 8.1; serde_json checks only the
/// strings it decodes, and skips ignored members unchecked). A derived struct would also accept
/// an array (fields by position), but RFC 7515 and 7519 require objects.
pub(crate) fn parse_object<'a, T: Deserialize<'a>>(json: &'a [u8]) -> Result<T, InvalidToken> {
    let json = simdutf8::basic::from_utf8(json).map_err(|_| InvalidToken::Malformed)?;
    if !json.trim_start().starts_with('{') {
        return Err(InvalidToken::Malformed);
    }
    serde_json::from_str(json).map_err(|_| InvalidToken::Malformed)
}

/// Strict base64url without padding (no `=`, no whitespace, zero trailing bits), as JWS
/// requires, decoded into `buf`, which need not be initialised; fails when it does not fit.
pub(crate) fn decode_b64_into<'b>(
    part: &str,
    buf: &'b mut [MaybeUninit<u8>],
) -> Result<&'b [u8], InvalidToken> {
    let len = URL_SAFE_NO_PAD
        .decoded_length(part.as_bytes())
        .map_err(|_| InvalidToken::Malformed)?;
    let buf = buf.get_mut(..len).ok_or(InvalidToken::Malformed)?;
    match URL_SAFE_NO_PAD.decode(part.as_bytes(), buf.as_out()) {
        Ok(bytes) => Ok(bytes),
        Err(_) => Err(InvalidToken::Malformed),
    }
}

/// [`decode_b64_into`] a new vector.
pub(crate) fn decode_b64(part: &str) -> Result<Vec<u8>, InvalidToken> {
    URL_SAFE_NO_PAD
        .decode_to_vec(part.as_bytes())
        .map_err(|_| InvalidToken::Malformed)
}

/// `part` decoded, handed to `f`: on the stack when it decodes to at most `N` bytes, in a new
/// vector otherwise.
pub(crate) fn with_decoded<const N: usize, R>(
    part: &str,
    f: impl FnOnce(&[u8]) -> Result<R, AuthError>,
) -> Result<R, AuthError> {
    if part.len() / 4 * 3 + 2 <= N {
        let mut stack = stack_buffer::<N>();
        f(decode_b64_into(part, &mut stack)?)
    } else {
        f(&decode_b64(part)?)
    }
}

/// A stack buffer for [`decode_b64_into`], left uninitialised: zeroing 5 KiB per token costs
/// more than the header's decoding.
pub(crate) fn stack_buffer<const N: usize>() -> [MaybeUninit<u8>; N] {
    [MaybeUninit::uninit(); N]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_exactly_three_parts() {
        assert_eq!(split_token("a.b.c"), Some(("a", "b", "c")));
        for bad in ["", "a", "a.b", "a.b.c.d", "a..c", ".b.c", "a.b.", "...."] {
            assert_eq!(split_token(bad), None, "{bad}");
        }
        let dots = ".".repeat(10_000);
        assert_eq!(split_token(&dots), None);
    }

    /// The strictness JWS asks of base64url (RFC 7515 section 2 and appendix C).
    #[test]
    fn base64url_is_strict() {
        let mut buf = stack_buffer::<16>();
        assert_eq!(decode_b64_into("eyJh", &mut buf).unwrap(), b"{\"a");
        assert_eq!(decode_b64_into("_-8", &mut buf).unwrap(), [0xff, 0xef]);
        for bad in [
            "eyJh=",
            "eyJ",
            "ey Jh",
            "+/8",
            "_-9",
            "e",
            "eyJhY",
            "eyJ\u{e9}",
        ] {
            assert!(decode_b64_into(bad, &mut buf).is_err(), "{bad}");
            assert!(decode_b64(bad).is_err(), "{bad}");
        }
        // Does not fit: refused, not truncated.
        let mut small = stack_buffer::<2>();
        assert!(decode_b64_into("eyJh", &mut small).is_err());
        assert_eq!(decode_b64("eyJh").unwrap(), b"{\"a");
    }

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let json = br#"{"iss":"plain","sub":"esc\"aped","cognito:groups":["a","b\u00e9"]}"#;
        let r: Registered<'_> = parse_object(json).unwrap();
        assert!(matches!(r.iss.as_ref().unwrap().0, Cow::Borrowed("plain")));
        assert!(matches!(r.sub.as_ref().unwrap().0, Cow::Owned(ref s) if s == "esc\"aped"));
        let groups = r.groups.unwrap();
        assert!(matches!(groups[0].0, Cow::Borrowed("a")));
        assert_eq!(&*groups[1], "bé");
    }

    #[test]
    fn strings_refuse_other_types() {
        for json in [
            r#"{"iss":5}"#,
            r#"{"iss":["a"]}"#,
            r#"{"cognito:groups":"a"}"#,
        ] {
            assert!(
                parse_object::<Registered<'_>>(json.as_bytes()).is_err(),
                "{json}"
            );
        }
    }

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
