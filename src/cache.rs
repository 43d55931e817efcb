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

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;
use nohash_hasher::BuildNoHashHasher;

use crate::jwks::VerifyingKey;
use crate::verifier::Verified;

/// One verified token.
pub(crate) struct Entry<C> {
    /// The verified claims, the token (compared on every hit) and the session key.
    pub(crate) verified: Verified<C>,
    /// The key that verified the token (it knows its `kid`).
    pub(crate) key: Arc<VerifyingKey>,
    /// The generation of the key set `key` came from.
    pub(crate) generation: u64,
    /// `exp + leeway`: the first second at which the token is refused.
    pub(crate) refused_from: i64,
    /// How long the entry may stay: until the token expires, as seen at insertion.
    ttl: Duration,
}

impl<C> Entry<C> {
    pub(crate) fn new(
        verified: Verified<C>,
        key: Arc<VerifyingKey>,
        generation: u64,
        refused_from: i64,
        now: i64,
    ) -> Self {
        let secs = refused_from.saturating_sub(now).clamp(1, 24 * 3600);
        Self {
            verified,
            key,
            generation,
            refused_from,
            ttl: Duration::from_secs(secs as u64),
        }
    }
}

/// How many bytes of the end of a token its cache key hashes: 48 bytes of signature.
const HASHED_TAIL: usize = 64;

/// The cache of verified tokens.
pub(crate) struct TokenCache<C> {
    /// Keyed by [`TokenCache::key`], already a keyed hash: moka uses it as it is.
    entries: Cache<u64, Arc<Entry<C>>, BuildNoHashHasher<u64>>,
    hasher: ahash::RandomState,
}

struct UntilExpiry;

impl<C> Expiry<u64, Arc<Entry<C>>> for UntilExpiry {
    fn expire_after_create(&self, _: &u64, entry: &Arc<Entry<C>>, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
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
    fn key(&self, token: &str) -> u64 {
        let tail = &token.as_bytes()[token.len().saturating_sub(HASHED_TAIL)..];
        self.hasher.hash_one((token.len(), tail))
    }

    /// The entry for exactly this token, if cached.
    pub(crate) fn get(&self, token: &str) -> Option<Arc<Entry<C>>> {
        self.lookup(self.key(token), token)
    }

    /// The entry under `hash`, only if it holds exactly `token`: a colliding token misses.
    fn lookup(&self, hash: u64, token: &str) -> Option<Arc<Entry<C>>> {
        let entry = self.entries.get(&hash)?;
        (entry.verified.token() == token).then_some(entry)
    }

    pub(crate) fn insert(&self, entry: Entry<C>) {
        let key = self.key(entry.verified.token());
        self.entries.insert(key, Arc::new(entry));
    }

    /// Drops the entry of this token (once it is found expired or its key gone).
    pub(crate) fn remove(&self, token: &str) {
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
    use crate::jwks::KeySet;
    use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
    use aws_lc_rs::signature::KeyPair as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

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
        let verified = Verified::for_tests((), "a.b.c", 0, 100);
        cache.insert(Entry::new(verified, test_key(), 0, 100, 0));
        let hash = cache.key("a.b.c");
        assert!(cache.lookup(hash, "a.b.c").is_some());
        // A forged token that lands on the same hash must miss.
        assert!(cache.lookup(hash, "a.b.d").is_none());
        assert!(cache.get("a.b.d").is_none());
    }

    /// A token made to share the hashed tail (and the length) of a cached one has its key, and
    /// still misses: the whole token is compared.
    #[test]
    fn a_token_sharing_the_hashed_tail_misses() {
        let cache: TokenCache<()> = TokenCache::new(10);
        let tail = "s".repeat(HASHED_TAIL);
        let genuine = format!("h.p1.{tail}");
        let imitation = format!("h.p2.{tail}");
        cache.insert(Entry::new(
            Verified::for_tests((), &genuine, 0, 100),
            test_key(),
            0,
            100,
            0,
        ));
        assert_eq!(cache.key(&genuine), cache.key(&imitation));
        assert!(cache.get(&genuine).is_some());
        assert!(cache.get(&imitation).is_none());
        // A different length is another key.
        assert_ne!(cache.key(&genuine), cache.key(&format!("h.p.{tail}")));
    }
}
