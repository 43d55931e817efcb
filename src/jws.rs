//! Compact-JWS parsing: the three parts, strict base64url, and the JOSE header, borrowed from
//! the decoded bytes wherever JSON allows (a string with escapes is the only copy).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ops::Deref;

use base64_simd::{AsOut as _, URL_SAFE_NO_PAD};
use serde::de::{IgnoredAny, Visitor};
use serde::{Deserialize, Deserializer};

use crate::error::{AuthError, InvalidToken};

/// A JSON string, borrowed from the input unless it holds escapes.
///
/// serde's own `Cow<str>` borrows only as a struct field of its own with `#[serde(borrow)]`:
/// inside an `Option` or a `Vec` it always copies.
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

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
}
