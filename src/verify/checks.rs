//! Steps 5 to 8 of verification: issuer, token use, client and time (`exp`, `nbf`, `iat`, and the
//! maximum lifetime when one is set). Pure: the claims and the
//! time in, the first failure out.

use crate::claims::Registered;
use crate::config::{ClientIds, TokenUse};
use crate::error::InvalidToken;

/// The claim checks of one configuration.
#[derive(Debug)]
pub(crate) struct ClaimChecks {
    pub(crate) issuers: Vec<String>,
    pub(crate) token_use: TokenUse,
    pub(crate) client_ids: ClientIds,
    /// Seconds, applied to `exp`, `nbf` and `iat`.
    pub(crate) leeway: i64,
    /// The longest `exp - iat` accepted, in seconds, when set.
    pub(crate) max_lifetime: Option<i64>,
}

impl ClaimChecks {
    /// Steps 5 to 8 at `now`; returns `(iat, exp)`.
    pub(crate) fn check(
        &self,
        claims: &Registered<'_>,
        now: i64,
    ) -> Result<(i64, i64), InvalidToken> {
        // 5. Issuer.
        let iss = claims.iss.as_deref().ok_or(InvalidToken::WrongIssuer)?;
        if !self.issuers.iter().any(|accepted| accepted == iss) {
            return Err(InvalidToken::WrongIssuer);
        }
        // 6. Token use.
        let token_use = claims
            .token_use
            .as_deref()
            .ok_or(InvalidToken::WrongTokenUse)?;
        if !self.token_use.accepts(token_use) {
            return Err(InvalidToken::WrongTokenUse);
        }
        // 7. Client: the claim that this kind of token carries, required.
        if !client(claims, token_use).is_some_and(|c| self.client_ids.allows(c)) {
            return Err(InvalidToken::WrongClient);
        }
        // 8. Time.
        let exp = claims.exp.ok_or(InvalidToken::MissingClaim)?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(InvalidToken::Expired);
        }
        if let Some(nbf) = claims.nbf {
            if now.saturating_add(self.leeway) < nbf {
                return Err(InvalidToken::NotYetValid);
            }
        }
        let iat = claims.iat.ok_or(InvalidToken::MissingClaim)?;
        if iat > now.saturating_add(self.leeway) {
            return Err(InvalidToken::IssuedInFuture);
        }
        if self
            .max_lifetime
            .is_some_and(|max| exp.saturating_sub(iat) > max)
        {
            return Err(InvalidToken::LifetimeTooLong);
        }
        Ok((iat, exp))
    }
}

/// The app client a token of this `token_use` names: `client_id` for access tokens, `aud`
/// otherwise.
pub(crate) fn client<'a>(claims: &'a Registered<'_>, token_use: &str) -> Option<&'a str> {
    if token_use == "access" {
        claims.client_id.as_deref()
    } else {
        claims.aud.as_deref()
    }
}
