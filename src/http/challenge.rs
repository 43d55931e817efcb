//! The RFC 6750 challenge: the `WWW-Authenticate` value of each refusal, with the realm.

use http::HeaderValue;

use crate::error::AuthError;

impl AuthError {
    /// The `WWW-Authenticate` value for this error, or `None` for the 503 answers.
    ///
    /// `realm` must be a valid quoted-string content (the layer checks it when it is built).
    pub fn www_authenticate(&self, realm: &str) -> Option<HeaderValue> {
        let value = match (self, self.error_code()) {
            (Self::KeysUnavailable | Self::StoreUnavailable, _) => return None,
            (_, None) => format!("Bearer realm=\"{realm}\""),
            (Self::InsufficientScope { scope: Some(s), .. }, Some(code)) => format!(
                "Bearer realm=\"{realm}\", error=\"{code}\", error_description=\"{}\", scope=\"{s}\"",
                self.description()
            ),
            (_, Some(code)) => format!(
                "Bearer realm=\"{realm}\", error=\"{code}\", error_description=\"{}\"",
                self.description()
            ),
        };
        HeaderValue::from_str(&value).ok()
    }
}
