//! The registered claims the verifier checks, read from the payload in one borrowing pass.

use serde::Deserialize;

use crate::jws::Str;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::parse_object;
    use std::borrow::Cow;

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
}
