//! [`AlbClaims`]: what a verified `x-amzn-oidc-data` token says.

/// The claims of a verified ALB token: the header's `signer`, `iss`, `client` and `exp`, and
/// the payload (the identity provider's user claims) as JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct AlbClaims {
    pub(super) signer: String,
    pub(super) issuer: Option<String>,
    pub(super) client: Option<String>,
    pub(super) exp: i64,
    /// Shared, so that a clone (each extraction is one) copies no claim.
    pub(super) claims: std::sync::Arc<serde_json::Map<String, serde_json::Value>>,
}

impl AlbClaims {
    /// The load balancer ARN that signed the token (one of the configured ones).
    pub fn signer(&self) -> &str {
        &self.signer
    }

    /// The header's `iss`: the identity provider.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The header's `client`: the app client id.
    pub fn client(&self) -> Option<&str> {
        self.client.as_deref()
    }

    /// The header's `exp`, seconds since the Unix epoch.
    pub fn exp(&self) -> i64 {
        self.exp
    }

    /// The payload's `sub`.
    pub fn sub(&self) -> Option<&str> {
        self.str_claim("sub")
    }

    /// The payload's `email`.
    pub fn email(&self) -> Option<&str> {
        self.str_claim("email")
    }

    /// The payload's `username`.
    pub fn username(&self) -> Option<&str> {
        self.str_claim("username")
    }

    /// A string claim of the payload.
    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(serde_json::Value::as_str)
    }

    /// The whole payload, exactly as signed (every number representable, or the token was
    /// refused as malformed).
    pub fn claims(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.claims
    }
}
