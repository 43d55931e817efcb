//! The configured pools, and how a token's pool is selected: by its exact `iss`, among the
//! configured issuers only, before its key is looked up.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use futures_util::future::join_all;
use serde::Deserialize;

use super::checks::ClaimChecks;
use crate::error::{AuthError, InvalidToken};
use crate::jwks::KeyCache;
use crate::jws::parse_object;

/// One pool: the checks of its claims and its keys.
pub(super) struct Pool {
    pub(super) claims: ClaimChecks,
    pub(super) keys: KeyCache,
}

/// The pools of one configuration, never empty.
pub(super) struct Pools {
    list: Box<[Pool]>,
    /// Each accepted issuer to its pool's index; empty with one pool, which needs no lookup.
    by_issuer: HashMap<Box<str>, usize, ahash::RandomState>,
}

/// The one claim read before the signature, to select the pool.
#[derive(Deserialize)]
struct Issuer<'a> {
    #[serde(borrow, default)]
    iss: Option<Cow<'a, str>>,
}

impl Pools {
    /// `list` must not be empty, and no issuer may belong to two pools (the configuration
    /// checked both).
    pub(super) fn new(list: Vec<Pool>) -> Self {
        assert!(!list.is_empty(), "a configuration has at least one pool");
        let by_issuer = if list.len() == 1 {
            HashMap::default()
        } else {
            list.iter()
                .enumerate()
                .flat_map(|(index, pool)| {
                    pool.claims
                        .issuers
                        .iter()
                        .map(move |issuer| (issuer.as_str().into(), index))
                })
                .collect()
        };
        Self {
            list: list.into_boxed_slice(),
            by_issuer,
        }
    }

    /// The pool at `index`, an index [`select`](Self::select) answered.
    pub(super) fn get(&self, index: usize) -> &Pool {
        &self.list[index]
    }

    /// How many pools there are (at least one).
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    /// With several pools, the index of the pool whose issuer the (unverified, decoded)
    /// payload names; a payload naming no configured issuer is refused (`WrongIssuer`) before
    /// any key is looked up or fetched. (With one pool there is nothing to select: the caller
    /// takes pool 0 without reading the payload, and its issuer is checked after the
    /// signature, as with several.)
    pub(super) fn select(&self, payload: &[u8]) -> Result<usize, AuthError> {
        let Issuer { iss } = parse_object(payload)?;
        iss.and_then(|iss| self.by_issuer.get(&*iss).copied())
            .ok_or(AuthError::InvalidToken(InvalidToken::WrongIssuer))
    }

    /// Whether every pool has at least one key cached.
    pub(super) fn all_have_keys(&self) -> bool {
        self.list.iter().all(|pool| pool.keys.has_keys())
    }

    /// Fetches every pool's keys at once; the number of keys cached in all, or
    /// `KeysUnavailable` when a pool has none.
    pub(super) async fn refresh_all(&self) -> Result<usize, AuthError> {
        let counts = join_all(self.list.iter().map(|pool| pool.keys.refresh())).await;
        counts.into_iter().sum()
    }
}

impl fmt::Debug for Pools {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|pool| {
                (
                    &pool.claims.issuers,
                    pool.claims.token_use,
                    &pool.claims.client_ids,
                    &pool.keys,
                )
            }))
            .finish()
    }
}
