//! The verified-token cache: a token seen again skips decoding and the signature.
//!
//! - Bounded (moka), keyed by a fast keyed hash of the token (ahash, random keys per process)
//!   over its length and its last [`HASHED_TAIL`] bytes: the end of the signature, which differs
//!   between any two tokens that verified. Only verified tokens are ever inserted, so a token
//!   made to share that tail finds at most the entry it imitates, and the full comparison sends
//!   it to verification. Hashing the whole 1 KB token cost more than the rest of a lookup.
//! - On a hit the **full token is compared** with the one cached, so a hash collision can never
//!   admit a forged token: at worst it costs a miss.
//! - `exp` (with the leeway) is re-checked on every hit, and entries leave the cache when their
//!   token expires.
//! - A hit is honoured only while the JWKS still maps the token's `kid` to the key that verified
//!   it: a key removed from (or replaced in) the JWKS invalidates the tokens it signed.
//! - The session window and revocation still run on hits: the cache holds the outcome of the
//!   stateless checks only.

use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;
use nohash_hasher::BuildNoHashHasher;

use super::Verified;

/// How many bytes of the end of a token its cache key hashes: 48 bytes of signature.
const HASHED_TAIL: usize = 64;

/// The cache of verified tokens.
pub(crate) struct TokenCache<C> {
    /// Keyed by [`TokenCache::key`], already a keyed hash: moka uses it as it is.
    /// The value is the `Verified` itself (one `Arc`, with its validity): a hit hands it to
    /// the request as it is.
    entries: Cache<u64, Verified<C>, BuildNoHashHasher<u64>>,
    hasher: ahash::RandomState,
}

struct UntilExpiry;

impl<C> Expiry<u64, Verified<C>> for UntilExpiry {
    fn expire_after_create(&self, _: &u64, verified: &Verified<C>, _: Instant) -> Option<Duration> {
        Some(verified.validity().ttl)
    }
}

impl<C: Send + Sync + 'static> TokenCache<C> {
    /// A cache of at most `capacity` tokens.
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExpiry)
                .build_with_hasher(BuildNoHashHasher::default()),
            hasher: ahash::RandomState::new(),
        }
    }

    /// The cache key of `token`.
    fn key(&self, token: &[u8]) -> u64 {
        let tail = &token[token.len().saturating_sub(HASHED_TAIL)..];
        self.hasher.hash_one((token.len(), tail))
    }

    /// The verification of exactly this token, if cached.
    pub(crate) fn get(&self, token: &[u8]) -> Option<Verified<C>> {
        self.lookup(self.key(token), token)
    }

    /// The entry under `hash`, only if it holds exactly `token`: a colliding token misses.
    fn lookup(&self, hash: u64, token: &[u8]) -> Option<Verified<C>> {
        let verified = self.entries.get(&hash)?;
        (verified.token().as_bytes() == token).then_some(verified)
    }

    pub(crate) fn insert(&self, verified: Verified<C>) {
        let key = self.key(verified.token().as_bytes());
        self.entries.insert(key, verified);
    }

    /// Drops the entry of this token (once it is found expired or its key gone).
    pub(crate) fn remove(&self, token: &[u8]) {
        self.entries.invalidate(&self.key(token));
    }

    /// How many tokens are cached, after pending maintenance.
    pub(crate) fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::{KeySet, VerifyingKey};
    use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
    use aws_lc_rs::signature::KeyPair as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use std::sync::Arc;

    fn test_key() -> Arc<VerifyingKey> {
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let doc = serde_json::json!({"keys": [{
            "kty": "RSA", "kid": "k", "alg": "RS256", "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e),
        }]});
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        Arc::clone(set.get("k").unwrap())
    }

    #[test]
    fn a_hash_collision_never_admits_another_token() {
        let cache: TokenCache<()> = TokenCache::new(10);
        cache.insert(Verified::for_tests((), "a.b.c", test_key(), 100));
        let hash = cache.key(b"a.b.c");
        assert!(cache.lookup(hash, b"a.b.c").is_some());
        // A forged token that lands on the same hash must miss.
        assert!(cache.lookup(hash, b"a.b.d").is_none());
        assert!(cache.get(b"a.b.d").is_none());
    }

    /// A token made to share the hashed tail (and the length) of a cached one has its key, and
    /// still misses: the whole token is compared.
    #[test]
    fn a_token_sharing_the_hashed_tail_misses() {
        let cache: TokenCache<()> = TokenCache::new(10);
        let tail = "s".repeat(HASHED_TAIL);
        let genuine = format!("h.p1.{tail}");
        let imitation = format!("h.p2.{tail}");
        cache.insert(Verified::for_tests((), &genuine, test_key(), 100));
        let (genuine, imitation) = (genuine.as_bytes(), imitation.as_bytes());
        assert_eq!(cache.key(genuine), cache.key(imitation));
        assert!(cache.get(genuine).is_some());
        assert!(cache.get(imitation).is_none());
        // A different length is another key.
        assert_ne!(
            cache.key(genuine),
            cache.key(format!("h.p.{tail}").as_bytes())
        );
    }
}
