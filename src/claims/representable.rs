//! Whether a payload that the claims parser accepted can also be read as a `serde_json::Value`
//! (what [`Verified::claims_json`](crate::Verified::claims_json) and
//! [`Verified::claim`](crate::Verified::claim) answer).
//!
//! The claims parser skips the members it does not need without decoding them, so it accepts
//! three things a `Value` cannot hold: a number beyond `f64` (`1e400`), nesting deeper than
//! serde_json's limit (127 levels), and a lone UTF-16 surrogate escape in a string (`"\ud800"`).
//! Cognito never mints any of them. A token carrying one is refused as malformed, so the verifier
//! and the JSON view always agree: no accepted token reads as an empty object.
//!
//! One pass over bytes the parser already found to be a well-formed JSON object of valid UTF-8:
//! strings are skipped escape by escape (checking `\u` surrogate pairs), brackets counted outside
//! strings, and numbers parsed as `f64` only to see that they are finite.

/// serde_json's nesting limit for a `Value`: 127 levels, the outer object included.
const MAX_DEPTH: usize = 127;

/// Whether `json` (a well-formed JSON object) parses into a `serde_json::Value`.
pub(crate) fn representable(json: &[u8]) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => match skip_string(json, i + 1) {
                Some(end) => i = end,
                None => return false,
            },
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return false;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let end = json[i..]
                    .iter()
                    .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .map_or(json.len(), |n| i + n);
                // ASCII digits and signs only: valid UTF-8.
                let number = std::str::from_utf8(&json[i..end]).unwrap_or("x");
                if !number.parse::<f64>().is_ok_and(f64::is_finite) {
                    return false;
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    true
}

/// Skips the string whose first byte after the opening quote is at `start`: the index of the
/// closing quote, or `None` for a lone surrogate escape.
fn skip_string(json: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    loop {
        i += memchr::memchr2(b'"', b'\\', json.get(i..)?)?;
        if json[i] == b'"' {
            return Some(i);
        }
        // An escape: `\u` with four hex digits, or one character.
        if json.get(i + 1) != Some(&b'u') {
            i += 2;
            continue;
        }
        let unit = hex4(json, i + 2)?;
        i += 6;
        match unit {
            0xD800..=0xDBFF => {
                // A high surrogate must be followed by an escaped low one.
                if json.get(i) != Some(&b'\\') || json.get(i + 1) != Some(&b'u') {
                    return None;
                }
                if !(0xDC00..=0xDFFF).contains(&hex4(json, i + 2)?) {
                    return None;
                }
                i += 6;
            }
            0xDC00..=0xDFFF => return None,
            _ => {}
        }
    }
}

fn hex4(json: &[u8], at: usize) -> Option<u16> {
    let digits = std::str::from_utf8(json.get(at..at + 4)?).ok()?;
    u16::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::representable;
    use proptest::prelude::*;

    fn agrees(json: &str) {
        let value = serde_json::from_str::<serde_json::Value>(json).is_ok();
        assert_eq!(representable(json.as_bytes()), value, "{json}");
    }

    #[test]
    fn agrees_with_serde_json_on_the_edges() {
        for depth in [1, 125, 126, 127, 128, 300] {
            agrees(&format!(
                "{{\"a\":{}1{}}}",
                "[".repeat(depth),
                "]".repeat(depth)
            ));
            agrees(&format!(
                "{{\"a\":{}{{}}{}}}",
                "{\"b\":".repeat(depth),
                "}".repeat(depth)
            ));
        }
        for json in [
            r#"{"a":1e400}"#,
            r#"{"a":-1e400}"#,
            r#"{"a":1e308}"#,
            r#"{"a":1e-400}"#,
            r#"{"a":123456789012345678901234567890}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\udc00"}"#,
            r#"{"a":"\ud800\udc00"}"#,
            r#"{"a":"\ud800\u0041"}"#,
            r#"{"a":"\ud800x"}"#,
            r#"{"a":"\\ud800"}"#,
            r#"{"a":"\"[[[[\"","b":"1e999"}"#,
            r#"{"1e400":"\u00e9\n\t\/"}"#,
            r#"{"sub":"x","iat":1764633500,"exp":1764637100,"scope":"a b"}"#,
        ] {
            agrees(json);
        }
        let huge = format!("{{\"a\":1{}}}", "0".repeat(400));
        agrees(&huge);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        // Any JSON serde_json writes is representable; the scan never refuses it.
        #[test]
        fn what_serde_json_writes_is_representable(
            text in "\\PC{0,40}",
            number in any::<f64>().prop_filter("finite", |f| f.is_finite()),
            int in any::<i64>(),
            depth in 0usize..120,
        ) {
            let nested = format!("{}{}{}", "[".repeat(depth), int, "]".repeat(depth));
            let json = format!(
                "{{\"t\":{},\"n\":{},\"d\":{nested}}}",
                serde_json::to_string(&text).unwrap(),
                serde_json::to_string(&number).unwrap(),
            );
            prop_assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
            prop_assert!(representable(json.as_bytes()));
        }

        // Escapes of arbitrary code units: the scan and serde_json agree.
        #[test]
        fn unicode_escapes_agree(units in proptest::collection::vec(any::<u16>(), 0..4)) {
            let escaped: String = units.iter().map(|u| format!("\\u{u:04x}")).collect();
            let json = format!("{{\"a\":\"{escaped}\"}}");
            let value = serde_json::from_str::<serde_json::Value>(&json).is_ok();
            prop_assert_eq!(representable(json.as_bytes()), value);
        }
    }
}
