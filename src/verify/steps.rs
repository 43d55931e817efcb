//! Steps 1 to 10 for a token not verified before, in the order of the [module docs](super).

use std::sync::Arc;

use super::verified::Validity;
use super::{Checks, Verified, Verifier};
use crate::claims::{Payload, Registered};
use crate::error::{AuthError, InvalidToken};
use crate::jwks::VerifyingKey;
use crate::jws::{decode_b64_into, parse_object, split_token, stack_buffer, with_decoded, Header};
use crate::session::SessionKeyParts;
use serde::de::DeserializeOwned;

/// A compact JWS's three base64url parts: header, payload, signature.
type Parts<'t> = (&'t str, &'t str, &'t str);

/// The largest RS256 signature: 8192 bits.
const MAX_SIGNATURE_BYTES: usize = 1024;

/// Headers up to this size are decoded on the stack (Cognito's are about 70 bytes).
const HEADER_STACK_BYTES: usize = 512;

/// Payloads up to this size are decoded on the stack (Cognito's are about 1 KB).
const PAYLOAD_STACK_BYTES: usize = 4096;

/// The outcome of steps 1 to 9: everything but the session window.
struct Stateless<C> {
    /// With its session key, which step 10 still has to check, and its validity.
    verified: Verified<C>,
    /// When the claims were checked: the request's one clock reading, also used for step 10.
    now: i64,
}

/// How far steps 2 to 9 went without waiting.
enum Step<C> {
    /// All the way: the key was cached.
    Done(Stateless<C>),
    /// To the key: the pool's cache does not have this `kid`, which must be waited for.
    Fetch { pool: usize, kid: String },
}

/// A key, with the index of the pool it came from and the generation of that pool's key set.
struct PoolKey {
    pool: usize,
    key: Arc<VerifyingKey>,
    generation: u64,
}

impl<C> Verifier<C>
where
    C: DeserializeOwned + Send + Sync + 'static,
{
    /// Every step, then the outcome of the stateless ones is remembered for the next time this
    /// token comes.
    pub(super) async fn verify_all_steps(&self, token: &str) -> Result<Verified<C>, AuthError> {
        let checks = &*self.state.checks;
        // 1. Size, before anything else.
        if token.len() > checks.max_token_bytes {
            return Err(InvalidToken::TooLarge.into());
        }
        let Stateless { verified, now } = self.verify_stateless(token).await?;
        if let Some(cache) = &self.state.cache {
            cache.insert(verified.clone());
        }
        // 10. Session window.
        checks.check_session(&verified, now).await?;
        Ok(verified)
    }

    /// Steps 2 to 9, and the session key for step 10.
    async fn verify_stateless(&self, token: &str) -> Result<Stateless<C>, AuthError> {
        let parts = split_token(token).ok_or(InvalidToken::Malformed)?;
        let (pool, kid) = match self.verify_with_cached_key(token, parts)? {
            Step::Done(stateless) => return Ok(stateless),
            Step::Fetch { pool, kid } => (pool, kid),
        };
        let (key, generation) = self.state.checks.pools.get(pool).keys.key(&kid).await?;
        self.check_signed(
            token,
            parts,
            PoolKey {
                pool,
                key,
                generation,
            },
            None,
        )
    }

    /// Steps 2 to 9 as far as they go without waiting: the header, the token's pool (by the
    /// payload's `iss`, when several are configured), and with the pool's cached key of the
    /// header's `kid` the rest; or the `kid` to wait for. Synchronous, so that the decoded
    /// header and payload stay on the stack; with several pools the payload decoded to read
    /// `iss` is the one whose claims are checked, decoded once.
    fn verify_with_cached_key(
        &self,
        token: &str,
        parts @ (header_b64, payload_b64, _): Parts<'_>,
    ) -> Result<Step<C>, AuthError> {
        with_decoded::<HEADER_STACK_BYTES, _>(header_b64, |json| {
            let header: Header<'_> = parse_object(json)?;
            if &*header.alg != "RS256" {
                return Err(InvalidToken::UnsupportedAlgorithm.into());
            }
            if header.crit.is_some() {
                return Err(InvalidToken::UnsupportedCritical.into());
            }
            let kid = header.kid.ok_or(InvalidToken::MissingKeyId)?;
            let pools = &self.state.checks.pools;
            let step = |pool: usize, payload: Option<&[u8]>| {
                Ok(match pools.get(pool).keys.cached_key(&kid) {
                    Some((key, generation)) => Step::Done(self.check_signed(
                        token,
                        parts,
                        PoolKey {
                            pool,
                            key,
                            generation,
                        },
                        payload,
                    )?),
                    None => Step::Fetch {
                        pool,
                        kid: String::from(&*kid),
                    },
                })
            };
            if pools.len() == 1 {
                // The payload is read after the signature only.
                return step(0, None);
            }
            with_decoded::<PAYLOAD_STACK_BYTES, _>(payload_b64, |payload| {
                step(pools.select(payload)?, Some(payload))
            })
        })
    }

    /// Steps 4 to 9, after the key is had. Synchronous, so that its buffers live on the stack
    /// rather than in the future.
    /// `payload` is the decoded payload when the caller has it already.
    fn check_signed(
        &self,
        token: &str,
        (header_b64, payload_b64, signature_b64): Parts<'_>,
        key: PoolKey,
        payload: Option<&[u8]>,
    ) -> Result<Stateless<C>, AuthError> {
        // 4. Signature.
        let mut signature = stack_buffer::<MAX_SIGNATURE_BYTES>();
        let signature = decode_b64_into(signature_b64, &mut signature)
            .map_err(|_| InvalidToken::BadSignature)?;
        let signing_input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        if !key.key.verify(signing_input, signature) {
            tracing::debug!(kid = key.key.kid(), "bad signature");
            return Err(InvalidToken::BadSignature.into());
        }

        // 5-9. Claims, as of now: after the key, which may have been waited for.
        let now = self.state.checks.clock.now_unix();
        let verified = match payload {
            Some(payload) => self.read_claims(token, payload, now, key)?,
            None => with_decoded::<PAYLOAD_STACK_BYTES, _>(payload_b64, |payload| {
                self.read_claims(token, payload, now, key)
            })?,
        };
        Ok(Stateless { verified, now })
    }

    /// Steps 5 to 9 on the decoded payload of `token`, with the session key for step 10 and the
    /// validity of the verification (`key` is the one that verified the signature, of the pool
    /// whose claims are checked).
    fn read_claims(
        &self,
        token: &str,
        payload: &[u8],
        now: i64,
        PoolKey {
            pool,
            key,
            generation,
        }: PoolKey,
    ) -> Result<Verified<C>, AuthError> {
        let checks = &*self.state.checks;
        let pool_claims = &checks.pools.get(pool).claims;
        let payload = Payload::parse::<C>(payload)?;
        let claims = &payload.registered;
        let (iat, exp) = pool_claims.check(claims, now)?;
        self.state
            .rules
            .check_claims(claims.scope.as_deref(), claims.groups.as_deref())?;
        // Its error, if any, comes after those of the claims type and the custom check.
        let session_key = checks.session_key(claims);
        // Last of the claim checks: the claims must also read as a JSON value.
        let representable = payload.check_representable();
        let typed: C = payload.into_claims()?;
        self.state.rules.check_typed(&typed)?;
        representable?;
        let validity = Validity::new(
            pool,
            key,
            generation,
            exp.saturating_add(pool_claims.leeway),
            now,
        );
        Ok(Verified::new(
            typed,
            (iat, exp),
            session_key?,
            token,
            validity,
        ))
    }
}

impl Checks {
    /// The session key of a token, when the session window is on.
    fn session_key(&self, claims: &Registered<'_>) -> Result<Option<Box<str>>, InvalidToken> {
        let Some(sessions) = &self.sessions else {
            return Ok(None);
        };
        let token_use = claims.token_use.as_deref().unwrap_or_default();
        let parts = SessionKeyParts {
            sub: claims.sub.as_deref(),
            client: super::checks::client(claims, token_use),
            origin_jti: claims.origin_jti.as_deref(),
            device_key: claims.device_key.as_deref(),
            token_use,
        };
        let key = sessions
            .config()
            .key(&parts)
            .map_err(|()| InvalidToken::MissingClaim)?;
        Ok(key.map(Into::into))
    }
}
