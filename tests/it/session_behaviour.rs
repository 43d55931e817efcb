//! One behavioural suite for every session store, written once and run against each backend.
//!
//! Every check is an `async fn` taking an `Arc<dyn SessionStore>`; the [`suite!`] macro turns
//! each into a `#[tokio::test]` per backend:
//!
//! - `memory`: [`MemoryStore`], always;
//! - `redis`: [`RedisStore`] on `REDIS_URL` (default `redis://127.0.0.1:6379`), with the
//!   `redis` feature; every test uses its own key prefix;
//! - `redis_cluster`: `RedisStore` on a local Redis Cluster of three primaries the tests start
//!   themselves, with the `redis` feature;
//! - `postgres`: `PostgresStore` on `DATABASE_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/test`), with the `postgres` feature; every test uses its
//!   own table.
//!
//! Real servers only: nothing is mocked. Times are seconds since the epoch near the real clock,
//! moved forward by passing a later `now` (the stores decide expiry from `now`, not from their
//! own clock).

use crate::support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use support::{now, unique};
use tower_cognito::session::{
    MemoryStore, SessionEntry, SessionStore, SessionVerdict, StoreErrorKind, WindowLimits,
    MAX_WINDOW,
};

use SessionVerdict::{Accepted, Revoked, Superseded};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

type Store = Arc<dyn SessionStore>;
type Opened = Pin<Box<dyn Future<Output = Store> + Send>>;

fn limits(size: usize, ttl_secs: i64) -> WindowLimits {
    WindowLimits::new(size, ttl_secs)
}

/// Current and previous, ten minutes.
const L2: WindowLimits = WindowLimits::new(2, 600);

async fn check(
    store: &Store,
    key: &str,
    iat: i64,
    now: i64,
    limits: WindowLimits,
) -> SessionVerdict {
    store
        .check_and_advance(key, iat, now, limits)
        .await
        .unwrap_or_else(|e| panic!("check_and_advance({key:?}, {iat}, {now}) failed: {e}"))
}

/// Runs the checks in order at `now`; returns the verdicts.
async fn checks(
    store: &Store,
    key: &str,
    iats: &[i64],
    now: i64,
    limits: WindowLimits,
) -> Vec<SessionVerdict> {
    let mut verdicts = Vec::with_capacity(iats.len());
    for &iat in iats {
        verdicts.push(check(store, key, iat, now, limits).await);
    }
    verdicts
}

async fn revoke(store: &Store, key: &str, now: i64, limits: WindowLimits) {
    store
        .revoke(key, now, limits)
        .await
        .unwrap_or_else(|e| panic!("revoke({key:?}, {now}) failed: {e}"));
}

async fn entry(store: &Store, key: &str, now: i64) -> Option<SessionEntry> {
    store
        .entry(key, now)
        .await
        .unwrap_or_else(|e| panic!("entry({key:?}, {now}) failed: {e}"))
}

fn live(iats: &[i64], expires_at: i64) -> Option<SessionEntry> {
    Some(SessionEntry::new(iats.to_vec(), false, expires_at))
}

// ---------------------------------------------------------------------------------------------
// The suite: every check takes a store and nothing else
// ---------------------------------------------------------------------------------------------

mod checks {
    use super::*;

    /// A key never seen has no entry, and its first token is accepted.
    pub async fn fresh_key_is_absent_then_accepted(store: Store) {
        let (key, t) = (unique("fresh"), now());
        assert_eq!(entry(&store, &key, t).await, None);
        assert_eq!(check(&store, &key, t - 100, t, L2).await, Accepted);
        assert_eq!(entry(&store, &key, t).await, live(&[t - 100], t + 600));
    }

    /// The window of two: current and previous; the chain two refreshes old is superseded.
    pub async fn current_and_previous(store: Store) {
        let (key, t) = (unique("cap"), now());
        let b = t - 3600;
        let verdicts = checks(
            &store,
            &key,
            &[
                b + 100,
                b + 200,
                b + 100,
                b + 300,
                b + 100,
                b + 200,
                b + 300,
            ],
            t,
            L2,
        )
        .await;
        assert_eq!(
            verdicts,
            [Accepted, Accepted, Accepted, Accepted, Superseded, Accepted, Accepted]
        );
        assert_eq!(
            entry(&store, &key, t).await,
            live(&[b + 200, b + 300], t + 600)
        );
    }

    /// The same `iat` any number of times is accepted and kept once.
    pub async fn repeated_iat_is_kept_once(store: Store) {
        let (key, t) = (unique("repeat"), now());
        let verdicts = checks(&store, &key, &[t - 5; 5], t, L2).await;
        assert_eq!(verdicts, [Accepted; 5]);
        assert_eq!(entry(&store, &key, t).await, live(&[t - 5], t + 600));
        // A second value, then both again: still two values, both accepted.
        let verdicts = checks(&store, &key, &[t - 4, t - 5, t - 4, t - 5], t, L2).await;
        assert_eq!(verdicts, [Accepted; 4]);
        assert_eq!(entry(&store, &key, t).await, live(&[t - 5, t - 4], t + 600));
    }

    /// An older token arriving late enters a window that is not full, in order; once the window
    /// is full, a value between the two enters and pushes the oldest out.
    pub async fn late_older_token_is_ordered(store: Store) {
        let (key, t) = (unique("late"), now());
        let b = t - 3600;
        assert_eq!(
            checks(&store, &key, &[b + 200, b + 100], t, L2).await,
            [Accepted, Accepted]
        );
        assert_eq!(
            entry(&store, &key, t).await,
            live(&[b + 100, b + 200], t + 600)
        );
        assert_eq!(check(&store, &key, b + 50, t, L2).await, Superseded);
        assert_eq!(check(&store, &key, b + 150, t, L2).await, Accepted);
        assert_eq!(
            entry(&store, &key, t).await,
            live(&[b + 150, b + 200], t + 600)
        );
        assert_eq!(check(&store, &key, b + 100, t, L2).await, Superseded);
        // Equal to the oldest kept: accepted, nothing changes.
        assert_eq!(check(&store, &key, b + 150, t, L2).await, Accepted);
        assert_eq!(
            entry(&store, &key, t).await,
            live(&[b + 150, b + 200], t + 600)
        );
    }

    /// Every window size from 1 to MAX_WINDOW keeps exactly the N newest distinct values.
    pub async fn every_window_size(store: Store) {
        let t = now();
        let b = t - 3600;
        for size in 1..=MAX_WINDOW {
            let key = unique(&format!("size{size}"));
            let l = limits(size, 600);
            let iats: Vec<i64> = (1..=size as i64 + 2).map(|i| b + 10 * i).collect();
            assert_eq!(
                checks(&store, &key, &iats, t, l).await,
                vec![Accepted; iats.len()],
                "size {size}"
            );
            let kept = &iats[iats.len() - size..];
            assert_eq!(
                entry(&store, &key, t).await,
                live(kept, t + 600),
                "size {size}"
            );
            // The oldest kept: accepted. One below it, and everything older: superseded.
            assert_eq!(
                check(&store, &key, kept[0], t, l).await,
                Accepted,
                "size {size}"
            );
            for old in [kept[0] - 1, iats[0], b] {
                assert_eq!(
                    check(&store, &key, old, t, l).await,
                    Superseded,
                    "size {size}"
                );
            }
            assert_eq!(
                entry(&store, &key, t).await,
                live(kept, t + 600),
                "size {size}"
            );
            // Every value kept is accepted, in any order.
            for &iat in kept.iter().rev() {
                assert_eq!(
                    check(&store, &key, iat, t, l).await,
                    Accepted,
                    "size {size}"
                );
            }
            // A new newest value pushes the oldest out.
            let newest = b + 1000;
            assert_eq!(
                check(&store, &key, newest, t, l).await,
                Accepted,
                "size {size}"
            );
            let mut expected = kept[1..].to_vec();
            expected.push(newest);
            assert_eq!(
                entry(&store, &key, t).await,
                live(&expected, t + 600),
                "size {size}"
            );
            if size > 1 {
                assert_eq!(
                    check(&store, &key, kept[0], t, l).await,
                    Superseded,
                    "size {size}"
                );
            }
        }
    }

    /// A window of one: only the newest token is accepted.
    pub async fn window_of_one(store: Store) {
        let (key, t) = (unique("one"), now());
        let l = limits(1, 600);
        assert_eq!(
            checks(
                &store,
                &key,
                &[t - 9, t - 9, t - 8, t - 9, t - 8, t - 7, t - 8],
                t,
                l
            )
            .await,
            [Accepted, Accepted, Accepted, Superseded, Accepted, Accepted, Superseded]
        );
        assert_eq!(entry(&store, &key, t).await, live(&[t - 7], t + 600));
        // Later: a superseded token changes nothing, not even the expiry; the kept one
        // extends it.
        assert_eq!(check(&store, &key, t - 8, t + 60, l).await, Superseded);
        assert_eq!(entry(&store, &key, t + 60).await, live(&[t - 7], t + 600));
        assert_eq!(check(&store, &key, t - 7, t + 60, l).await, Accepted);
        assert_eq!(entry(&store, &key, t + 60).await, live(&[t - 7], t + 660));
    }

    /// A window of three filled out of order: a late older token enters while there is room,
    /// one between the kept values enters and pushes the oldest out, an older one is superseded.
    pub async fn larger_window_orders_late_tokens(store: Store) {
        let (key, t) = (unique("larger"), now());
        let b = t - 3600;
        let l = limits(3, 10);
        assert_eq!(
            checks(&store, &key, &[b + 5, b + 1, b + 9, b + 7, b + 3], t, l).await,
            [Accepted, Accepted, Accepted, Accepted, Superseded]
        );
        assert_eq!(
            entry(&store, &key, t).await,
            live(&[b + 5, b + 7, b + 9], t + 10)
        );
    }

    /// A revoked session refuses every token, old, current or newer, until its TTL ends.
    pub async fn revoke_refuses_every_token(store: Store) {
        let (key, t) = (unique("revoke"), now());
        let b = t - 3600;
        checks(&store, &key, &[b + 100, b + 200], t, L2).await;
        revoke(&store, &key, t + 10, L2).await;
        for iat in [b + 100, b + 200, b + 300, b, t] {
            assert_eq!(
                check(&store, &key, iat, t + 20, L2).await,
                Revoked,
                "iat {iat}"
            );
        }
        let e = entry(&store, &key, t + 20).await.expect("revoked entry");
        assert!(e.revoked);
        assert_eq!(e.expires_at, t + 10 + 600);
        // The revocation keeps the live window.
        assert_eq!(e.iats, [b + 100, b + 200]);
        // Revoking again is harmless and extends the revocation.
        revoke(&store, &key, t + 30, L2).await;
        let e = entry(&store, &key, t + 30).await.expect("revoked entry");
        assert!(e.revoked);
        assert_eq!(e.expires_at, t + 30 + 600);
        assert_eq!(e.iats, [b + 100, b + 200]);
        assert_eq!(check(&store, &key, b + 400, t + 40, L2).await, Revoked);
    }

    /// Revoking a session never seen refuses its first token too.
    pub async fn revoke_unknown_session(store: Store) {
        let (key, t) = (unique("revoke_unknown"), now());
        revoke(&store, &key, t, L2).await;
        let e = entry(&store, &key, t).await.expect("revoked entry");
        assert_eq!((e.revoked, e.expires_at), (true, t + 600));
        assert!(e.iats.is_empty(), "{e:?}");
        assert_eq!(check(&store, &key, t - 1, t, L2).await, Revoked);
        assert_eq!(check(&store, &key, t, t + 1, L2).await, Revoked);
        // A session whose entry expired is as unknown: revoked with an empty window.
        let expired = unique("revoke_expired");
        let l = limits(2, 100);
        assert_eq!(check(&store, &expired, t - 10, t, l).await, Accepted);
        revoke(&store, &expired, t + 100, l).await;
        assert_eq!(
            entry(&store, &expired, t + 100).await,
            Some(SessionEntry::new(Vec::new(), true, t + 200))
        );
    }

    /// A revocation lasts the TTL from the revocation, then the session is as if never seen.
    pub async fn revocation_ends_with_ttl(store: Store) {
        let (key, t) = (unique("revoke_ttl"), now());
        let l = limits(2, 100);
        checks(&store, &key, &[t - 20, t - 10], t, l).await;
        revoke(&store, &key, t, l).await;
        assert_eq!(check(&store, &key, t - 10, t + 99, l).await, Revoked);
        assert!(entry(&store, &key, t + 99).await.is_some_and(|e| e.revoked));
        assert_eq!(entry(&store, &key, t + 100).await, None);
        // After it: a fresh window. Even the chain superseded before the revocation is back.
        assert_eq!(check(&store, &key, t - 30, t + 100, l).await, Accepted);
        assert_eq!(entry(&store, &key, t + 100).await, live(&[t - 30], t + 200));
    }

    /// An entry expires TTL after its last change; an expired entry is as if never seen.
    pub async fn entry_expires_with_ttl(store: Store) {
        let (key, t) = (unique("expiry"), now());
        let l = limits(2, 100);
        let verdicts = checks(&store, &key, &[t - 30, t - 20, t - 10], t, l).await;
        assert_eq!(verdicts, [Accepted; 3]);
        assert_eq!(
            entry(&store, &key, t + 99).await,
            live(&[t - 20, t - 10], t + 100)
        );
        assert_eq!(entry(&store, &key, t + 100).await, None);
        assert_eq!(entry(&store, &key, t + 5000).await, None);
        // Within the TTL the oldest chain is superseded; from the TTL on it starts a new window.
        assert_eq!(check(&store, &key, t - 30, t + 99, l).await, Superseded);
        assert_eq!(check(&store, &key, t - 30, t + 100, l).await, Accepted);
        assert_eq!(entry(&store, &key, t + 100).await, live(&[t - 30], t + 200));
    }

    /// Every accepted token extends the entry's life, even when its `iat` is already kept; the
    /// TTL is the one passed with that call.
    pub async fn accepted_tokens_extend_life(store: Store) {
        let (key, t) = (unique("extend"), now());
        let l = limits(2, 100);
        assert_eq!(check(&store, &key, t - 1, t, l).await, Accepted);
        assert_eq!(check(&store, &key, t - 1, t + 60, l).await, Accepted);
        assert_eq!(entry(&store, &key, t + 120).await, live(&[t - 1], t + 160));
        // A longer TTL on the next call counts from that call.
        assert_eq!(
            check(&store, &key, t - 1, t + 70, limits(2, 1000)).await,
            Accepted
        );
        assert_eq!(
            entry(&store, &key, t + 1000).await,
            live(&[t - 1], t + 1070)
        );
        // And a shorter one shortens it.
        assert_eq!(
            check(&store, &key, t - 1, t + 80, limits(2, 10)).await,
            Accepted
        );
        assert_eq!(entry(&store, &key, t + 89).await, live(&[t - 1], t + 90));
        assert_eq!(entry(&store, &key, t + 90).await, None);
    }

    /// Superseded and revoked answers change nothing: not the window, not its life.
    pub async fn refusals_change_nothing(store: Store) {
        let (key, t) = (unique("refusals"), now());
        let l = limits(2, 100);
        checks(&store, &key, &[t - 20, t - 10], t, l).await;
        assert_eq!(check(&store, &key, t - 30, t + 50, l).await, Superseded);
        assert_eq!(
            entry(&store, &key, t + 50).await,
            live(&[t - 20, t - 10], t + 100)
        );
        revoke(&store, &key, t + 60, l).await;
        let revoked = Some(SessionEntry::new(vec![t - 20, t - 10], true, t + 160));
        assert_eq!(entry(&store, &key, t + 60).await, revoked);
        for (iat, at) in [(t, t + 70), (t - 10, t + 99), (t - 30, t + 159)] {
            assert_eq!(check(&store, &key, iat, at, l).await, Revoked, "iat {iat}");
            assert_eq!(entry(&store, &key, at).await, revoked, "after iat {iat}");
        }
    }

    /// Sessions are independent, whatever their keys look like (prefixes of each other, case,
    /// separators, glob and SQL metacharacters, non-ASCII).
    pub async fn keys_are_independent(store: Store) {
        let t = now();
        let base = unique("indep");
        let suffixes = [
            "",
            ":",
            ":a",
            ":A",
            ":a:b",
            ":a*",
            ":?[x]",
            ":'; DROP TABLE sessions; --",
            ":%_\\",
            ":line\nbreak",
            ":tab\tand space",
            ":ünïcødé 🙂",
            ":|1|,",
        ];
        let keys: Vec<String> = suffixes.iter().map(|s| format!("{base}{s}")).collect();
        // Each key gets its own window: key i holds iats (t - 100 + i, t - 50 + i).
        for (i, key) in keys.iter().enumerate() {
            let i = i as i64;
            assert_eq!(
                checks(&store, key, &[t - 100 + i, t - 50 + i], t, L2).await,
                [Accepted, Accepted],
                "{key:?}"
            );
        }
        // Revoke one in the middle, supersede another.
        revoke(&store, &keys[3], t, L2).await;
        assert_eq!(check(&store, &keys[4], t - 10, t, L2).await, Accepted);
        for (i, key) in keys.iter().enumerate() {
            let n = i as i64;
            let e = entry(&store, key, t)
                .await
                .unwrap_or_else(|| panic!("{key:?} lost"));
            match i {
                3 => assert!(e.revoked, "{key:?}: {e:?}"),
                4 => assert_eq!(e, live(&[t - 50 + n, t - 10], t + 600).unwrap(), "{key:?}"),
                _ => assert_eq!(
                    e,
                    live(&[t - 100 + n, t - 50 + n], t + 600).unwrap(),
                    "{key:?}"
                ),
            }
        }
        for (i, key) in keys.iter().enumerate() {
            let n = i as i64;
            let expected = match i {
                3 => Revoked,
                4 => Superseded,
                _ => Accepted,
            };
            assert_eq!(
                check(&store, key, t - 100 + n, t, L2).await,
                expected,
                "{key:?}"
            );
        }
        // A key no test wrote is still absent.
        assert_eq!(entry(&store, &format!("{base}:never"), t).await, None);
    }

    /// Window sizes out of range and TTLs below one second are refused, and nothing is written.
    pub async fn invalid_limits_are_refused(store: Store) {
        let (key, t) = (unique("invalid"), now());
        for bad in [
            limits(0, 600),
            limits(MAX_WINDOW + 1, 600),
            limits(usize::MAX, 600),
            limits(2, 0),
            limits(2, -600),
            limits(2, i64::MIN),
        ] {
            let err = store
                .check_and_advance(&key, t, t, bad)
                .await
                .expect_err(&format!("check with {bad:?}"));
            assert_eq!(err.kind(), StoreErrorKind::InvalidInput, "{bad:?}: {err}");
            let err = store
                .revoke(&key, t, bad)
                .await
                .expect_err(&format!("revoke with {bad:?}"));
            assert_eq!(err.kind(), StoreErrorKind::InvalidInput, "{bad:?}: {err}");
        }
        assert_eq!(entry(&store, &key, t).await, None);
    }

    /// The longest TTLs the configuration allows (up to `i64::MAX` seconds) still work.
    pub async fn huge_ttls_work(store: Store) {
        let t = now();
        let century = 100 * 365 * 24 * 3600;
        for ttl in [
            century,
            1 << 32,
            (1 << 32) + 1,
            i64::MAX / 2,
            i64::MAX - t,
            i64::MAX,
        ] {
            let key = unique("huge_ttl");
            let l = limits(2, ttl);
            assert_eq!(
                check(&store, &key, t - 1, t, l).await,
                Accepted,
                "ttl {ttl}"
            );
            assert_eq!(check(&store, &key, t, t, l).await, Accepted, "ttl {ttl}");
            let e = entry(&store, &key, t + century - 1)
                .await
                .unwrap_or_else(|| panic!("ttl {ttl}: entry gone"));
            assert_eq!(e.iats, [t - 1, t], "ttl {ttl}");
            assert!(!e.revoked);
            assert_eq!(e.expires_at, t.saturating_add(ttl), "ttl {ttl}");
            revoke(&store, &key, t, l).await;
            assert_eq!(check(&store, &key, t, t + 1, l).await, Revoked, "ttl {ttl}");
        }
    }

    /// `iat` values are compared exactly within ±(2^53 - 1); beyond, a store either stays exact
    /// or refuses them as invalid input without writing anything.
    pub async fn extreme_iats_are_exact(store: Store) {
        let t = now();
        let max = (1i64 << 53) - 1; // the largest integer every double neighbour can tell apart
        let big = max + 2; // the first integer a double cannot hold
        /// iats, verdicts, kept, and whether all are within ±(2^53 - 1).
        type Case<'a> = (&'a [i64], &'a [SessionVerdict], &'a [i64], bool);
        let cases: [Case<'_>; 5] = [
            (
                &[max, max - 1, max - 2],
                &[Accepted, Accepted, Superseded],
                &[max - 1, max],
                true,
            ),
            (
                &[-5, 0, -1, -10, 3],
                &[Accepted, Accepted, Accepted, Superseded, Accepted],
                &[0, 3],
                true,
            ),
            (
                &[big, big - 1, big + 1, big - 1],
                &[Accepted, Accepted, Accepted, Superseded],
                &[big, big + 1],
                false,
            ),
            (
                &[i64::MAX - 1, i64::MAX, i64::MAX - 2],
                &[Accepted, Accepted, Superseded],
                &[i64::MAX - 1, i64::MAX],
                false,
            ),
            (
                &[i64::MIN, i64::MIN + 1, -9, i64::MIN],
                &[Accepted, Accepted, Accepted, Superseded],
                &[i64::MIN + 1, -9],
                false,
            ),
        ];
        for (iats, verdicts, kept, within) in cases {
            let key = unique("extreme");
            if !within {
                // A backend may refuse values it cannot compare exactly (the Redis scripts use
                // doubles); then it must refuse before writing anything.
                match store.check_and_advance(&key, iats[0], t, L2).await {
                    Err(e) => {
                        assert_eq!(e.kind(), StoreErrorKind::InvalidInput, "{iats:?}: {e}");
                        assert_eq!(entry(&store, &key, t).await, None, "{iats:?}");
                        continue;
                    }
                    Ok(first) => {
                        assert_eq!(first, verdicts[0], "{iats:?}");
                        assert_eq!(
                            checks(&store, &key, &iats[1..], t, L2).await,
                            &verdicts[1..],
                            "{iats:?}"
                        );
                    }
                }
            } else {
                assert_eq!(
                    checks(&store, &key, iats, t, L2).await,
                    verdicts,
                    "{iats:?}"
                );
            }
            assert_eq!(
                entry(&store, &key, t).await,
                live(kept, t + 600),
                "{iats:?}"
            );
        }
    }

    /// Concurrent checks of one session are applied one after another: whatever the order,
    /// the N newest values are always accepted and are exactly what the window ends with.
    pub async fn concurrent_checks_are_atomic(store: Store) {
        let t = now();
        let mut tasks = tokio::task::JoinSet::new();
        let mut sessions = Vec::new();
        for size in [2usize, 3, 1] {
            let key = unique(&format!("concurrent{size}"));
            // 60 distinct values, sent in an interleaved order, all at once.
            let iats: Vec<i64> = (0..60).map(|i| t - 1000 + (i * 37 % 60)).collect();
            for &iat in &iats {
                let (store, key) = (store.clone(), key.clone());
                tasks.spawn(async move {
                    let verdict = store
                        .check_and_advance(&key, iat, t, limits(size, 600))
                        .await
                        .expect("concurrent check");
                    (key, iat, verdict)
                });
            }
            sessions.push((key, size, iats));
        }
        let mut results = Vec::new();
        while let Some(r) = tasks.join_next().await {
            results.push(r.expect("task"));
        }
        for (key, size, iats) in sessions {
            let mut sorted = iats.clone();
            sorted.sort_unstable();
            let newest = &sorted[sorted.len() - size..];
            for (k, iat, verdict) in &results {
                if *k != key {
                    continue;
                }
                assert_ne!(*verdict, Revoked);
                if newest.contains(iat) {
                    assert_eq!(
                        *verdict, Accepted,
                        "size {size}: iat {iat} is among the newest"
                    );
                }
            }
            assert_eq!(
                entry(&store, &key, t).await,
                live(newest, t + 600),
                "size {size}"
            );
        }
    }

    /// A revocation racing with checks: every check that starts after the revocation answered
    /// is refused.
    pub async fn concurrent_revoke(store: Store) {
        let (key, t) = (unique("concurrent_revoke"), now());
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..40 {
            let (store, key) = (store.clone(), key.clone());
            tasks.spawn(async move { store.check_and_advance(&key, t - 40 + i, t, L2).await });
        }
        revoke(&store, &key, t, L2).await;
        for i in 0..20 {
            assert_eq!(check(&store, &key, t - 20 + i, t, L2).await, Revoked);
        }
        while let Some(r) = tasks.join_next().await {
            let verdict = r.expect("task").expect("check");
            assert!(matches!(verdict, Accepted | Superseded | Revoked));
        }
        assert!(entry(&store, &key, t).await.is_some_and(|e| e.revoked));

        // Two values in a window of two, with a revocation among the checks: none can be
        // superseded, so every check is accepted or revoked.
        let key = unique("concurrent_revoke_two");
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..40 {
            let (store, key) = (store.clone(), key.clone());
            tasks.spawn(async move {
                if i == 20 {
                    store.revoke(&key, t, L2).await.expect("revoke");
                    None
                } else {
                    Some(
                        store
                            .check_and_advance(&key, t - 100 + i % 2, t, L2)
                            .await
                            .expect("check"),
                    )
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            let verdict = r.expect("task");
            assert!(
                matches!(verdict, None | Some(Accepted | Revoked)),
                "{verdict:?}"
            );
        }
        assert!(entry(&store, &key, t).await.is_some_and(|e| e.revoked));
        assert_eq!(check(&store, &key, t - 99, t, L2).await, Revoked);
    }
}

// ---------------------------------------------------------------------------------------------
// Restart: a window written through one store instance is seen by a fresh one
// ---------------------------------------------------------------------------------------------

#[cfg(any(feature = "redis", feature = "postgres"))]
/// Writes through the store `open(ns)` gives, drops it, and reads through a second one.
async fn survives_restart(open: impl Fn(String) -> Opened, ns: &str, other_ns: &str) {
    let t = now();
    let (kept, revoked) = (unique("restart_kept"), unique("restart_revoked"));
    {
        let first = open(ns.to_owned()).await;
        checks(&first, &kept, &[t - 30, t - 20, t - 10], t, L2).await;
        check(&first, &revoked, t - 5, t, L2).await;
        revoke(&first, &revoked, t, L2).await;
    }
    let second = open(ns.to_owned()).await;
    assert_eq!(
        entry(&second, &kept, t + 1).await,
        live(&[t - 20, t - 10], t + 600)
    );
    let e = entry(&second, &revoked, t + 1)
        .await
        .expect("revoked entry");
    assert_eq!((e.revoked, e.expires_at), (true, t + 600));
    assert_eq!(check(&second, &kept, t - 30, t + 1, L2).await, Superseded);
    assert_eq!(check(&second, &kept, t - 20, t + 1, L2).await, Accepted);
    assert_eq!(check(&second, &kept, t, t + 2, L2).await, Accepted);
    assert_eq!(check(&second, &revoked, t, t + 2, L2).await, Revoked);
    // Two instances at once see each other's writes.
    let third = open(ns.to_owned()).await;
    assert_eq!(
        entry(&third, &kept, t + 2).await,
        live(&[t - 10, t], t + 602)
    );
    assert_eq!(check(&third, &kept, t - 20, t + 2, L2).await, Superseded);
    // A store in another namespace (prefix, table) sees none of it.
    let elsewhere = open(other_ns.to_owned()).await;
    assert_eq!(entry(&elsewhere, &kept, t + 2).await, None);
    assert_eq!(entry(&elsewhere, &revoked, t + 2).await, None);
    assert_eq!(check(&elsewhere, &kept, t - 30, t + 2, L2).await, Accepted);
    assert_eq!(
        check(&elsewhere, &revoked, t - 30, t + 2, L2).await,
        Accepted
    );
}

// ---------------------------------------------------------------------------------------------
// Two instances: checks of one session through two servers at once
// ---------------------------------------------------------------------------------------------

/// Concurrent checks of one session through `stores` (two instances on one backend, as two
/// servers have, and a second handle on the first) are applied one after another, as through one
/// instance: no lost update, no first check of a new key refused.
async fn two_instances_apply_checks_one_after_another(stores: [Store; 3]) {
    let t = now();
    let b = t - 3600;
    let through = |i: usize| stores[i % 2 + usize::from(i % 7 == 0)].clone();

    // Two values over the instances into a window of two, on a new key, again and again: every
    // check accepted, both values kept.
    let l = limits(2, 100);
    for round in 0..20 {
        let key = unique(&format!("two_new{round}"));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..50 {
            let (store, key) = (through(i), key.clone());
            let iat = if i % 2 == 0 { b + 100 } else { b + 200 };
            tasks.spawn(async move { store.check_and_advance(&key, iat, t, l).await });
        }
        while let Some(r) = tasks.join_next().await {
            let verdict = r.expect("task").expect("check");
            assert_eq!(verdict, Accepted, "round {round}");
        }
        assert_eq!(
            entry(&stores[1], &key, t).await,
            live(&[b + 100, b + 200], t + 100),
            "round {round}"
        );
    }

    // Eight distinct values at once into a window of eight: a lost update would lose one.
    let l = limits(MAX_WINDOW, 100);
    let key = unique("two_eight");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let (store, key) = (through(i), key.clone());
        let iat = b + (i as i64 * 5) % 8;
        tasks.spawn(async move { store.check_and_advance(&key, iat, t, l).await });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.expect("task").expect("check"), Accepted);
    }
    let all: Vec<i64> = (b..b + 8).collect();
    assert_eq!(entry(&stores[0], &key, t).await, live(&all, t + 100));

    // Forty values at once into a window of eight: never revoked, the eight newest always
    // accepted, and exactly they are kept.
    for round in 0..5 {
        let key = unique(&format!("two_top{round}"));
        let mut tasks = tokio::task::JoinSet::new();
        for n in 1..=40_i64 {
            let (store, key) = (through(n as usize), key.clone());
            tasks.spawn(async move { (n, store.check_and_advance(&key, b + n, t, l).await) });
        }
        while let Some(r) = tasks.join_next().await {
            let (n, verdict) = r.expect("task");
            let verdict = verdict.expect("check");
            assert_ne!(verdict, Revoked, "round {round}");
            if n > 32 {
                assert_eq!(verdict, Accepted, "round {round}: iat +{n}");
            }
        }
        let newest: Vec<i64> = (b + 33..=b + 40).collect();
        assert_eq!(
            entry(&stores[0], &key, t).await,
            live(&newest, t + 100),
            "round {round}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------------

/// One `#[tokio::test]` per check for a backend; `$open` makes a store from a namespace.
macro_rules! suite {
    ($backend:ident, $open:path, [$($check:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let ns = unique(stringify!($check));
                    let store = $open(ns.clone()).await;
                    checks::$check(store).await;
                    cleanup(&ns).await;
                }
            )*
        }
    };
}

/// Calls `$callback!(args..., [every check])`: the one list of the suite's checks.
macro_rules! with_every_check {
    ($callback:ident!($($args:tt)*)) => {
        $callback!(
            $($args)*,
            [
                fresh_key_is_absent_then_accepted,
                current_and_previous,
                repeated_iat_is_kept_once,
                late_older_token_is_ordered,
                every_window_size,
                window_of_one,
                larger_window_orders_late_tokens,
                revoke_refuses_every_token,
                revoke_unknown_session,
                revocation_ends_with_ttl,
                entry_expires_with_ttl,
                accepted_tokens_extend_life,
                refusals_change_nothing,
                keys_are_independent,
                invalid_limits_are_refused,
                huge_ttls_work,
                extreme_iats_are_exact,
                concurrent_checks_are_atomic,
                concurrent_revoke,
            ]
        );
    };
}

macro_rules! all_checks {
    ($backend:ident, $open:path) => {
        with_every_check!(suite!($backend, $open));
    };
}

mod memory_backend {
    use super::*;

    /// A fresh memory store. Nothing survives a restart, so there is no restart test here.
    pub fn open(_ns: String) -> Opened {
        Box::pin(async { Arc::new(MemoryStore::new(10_000)) as Store })
    }

    pub async fn cleanup(_ns: &str) {}

    all_checks!(memory, open);

    /// One instance shared by clones: a window written through one clone is seen by another.
    #[tokio::test]
    async fn clones_share_windows() {
        let (key, t) = (unique("clone"), now());
        let a = MemoryStore::new(100);
        let b: Store = Arc::new(a.clone());
        let a: Store = Arc::new(a);
        checks(&a, &key, &[t - 3, t - 2, t - 1], t, L2).await;
        assert_eq!(entry(&b, &key, t).await, live(&[t - 2, t - 1], t + 600));
        assert_eq!(check(&b, &key, t - 3, t, L2).await, Superseded);
    }

    /// Clones of one store are its "instances".
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_checks_from_two_instances() {
        let a = MemoryStore::new(10_000);
        let first: Store = Arc::new(a.clone());
        two_instances_apply_checks_one_after_another([first.clone(), Arc::new(a), first]).await;
    }

    /// Two separate memory stores share nothing.
    #[tokio::test]
    async fn separate_instances_share_nothing() {
        let (key, t) = (unique("separate"), now());
        let a = open(String::new()).await;
        let b = open(String::new()).await;
        checks(&a, &key, &[t - 3, t - 2, t - 1], t, L2).await;
        assert_eq!(entry(&b, &key, t).await, None);
        assert_eq!(check(&b, &key, t - 3, t, L2).await, Accepted);
    }
}

#[cfg(feature = "redis")]
mod redis_backend {
    use super::*;
    use support::stores::{delete_redis_keys, redis_connection, redis_prefix, redis_store};

    /// A Redis store whose keys all start with `tower-cognito-test:{ns}:`.
    pub fn open(ns: String) -> Opened {
        Box::pin(async move { Arc::new(redis_store(&redis_prefix(&ns)).await) as Store })
    }

    /// Deletes the test's keys (some tests use TTLs of a century or more).
    pub async fn cleanup(ns: &str) {
        delete_redis_keys(&redis_prefix(ns)).await;
    }

    all_checks!(redis, open);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn survives_a_restart() {
        let (ns, other) = (unique("restart"), unique("restart_other"));
        survives_restart(open, &ns, &other).await;
        cleanup(&ns).await;
        cleanup(&other).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_checks_from_two_instances() {
        let ns = unique("two_instances");
        let first = open(ns.clone()).await;
        let second = open(ns.clone()).await;
        two_instances_apply_checks_one_after_another([first.clone(), second, first]).await;
        cleanup(&ns).await;
    }

    /// The prefix really is a prefix: the session key is stored under `prefix + key`, and
    /// nothing else is touched.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_live_under_the_prefix() {
        let ns = unique("prefix");
        let store = redis_store(&redis_prefix(&ns)).await;
        assert_eq!(store.prefix(), format!("tower-cognito-test:{ns}:"));
        let store: Store = Arc::new(store);
        let t = now();
        check(&store, "o:abc", t - 1, t, L2).await;
        let mut conn = redis_connection().await;
        let keys: Vec<String> = ::redis::cmd("KEYS")
            .arg(format!("tower-cognito-test:{ns}:*"))
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        assert_eq!(keys, [format!("tower-cognito-test:{ns}:o:abc")]);
        // Redis reclaims it by itself: a native expiry of about the TTL.
        let ttl: i64 = ::redis::cmd("TTL")
            .arg(&keys[0])
            .query_async(&mut conn)
            .await
            .expect("TTL");
        assert!((590..=600).contains(&ttl), "native ttl {ttl}");
        cleanup(&ns).await;
    }
}

/// The same suite on a Redis Cluster the tests start themselves (`redis_cluster::shared`), each
/// test's store connected through one node's URL (cluster mode detected) and its keys spread
/// over every slot.
#[cfg(feature = "redis")]
mod redis_cluster_backend {
    use super::*;
    use crate::redis_cluster::cluster_store;

    pub fn open(ns: String) -> Opened {
        Box::pin(async move { Arc::new(cluster_store(&ns).await) as Store })
    }

    /// Nothing to delete: the cluster is this test binary's own and ends with it.
    pub async fn cleanup(_ns: &str) {}

    all_checks!(redis_cluster, open);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn survives_a_restart() {
        let (ns, other) = (unique("restart"), unique("restart_other"));
        survives_restart(open, &ns, &other).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_checks_from_two_instances() {
        let ns = unique("two_instances");
        let first = open(ns.clone()).await;
        let second = open(ns.clone()).await;
        two_instances_apply_checks_one_after_another([first.clone(), second, first]).await;
        cleanup(&ns).await;
    }
}

#[cfg(feature = "postgres")]
mod postgres_backend {
    use super::*;
    use support::stores::{
        drop_table, postgres_client, postgres_store, postgres_store_with_schema, postgres_table,
    };

    /// A PostgreSQL store on its own table, created if needed.
    pub fn open(ns: String) -> Opened {
        Box::pin(async move {
            Arc::new(postgres_store_with_schema(&postgres_table(&ns)).await) as Store
        })
    }

    /// Drops the test's table (only reached when the test passed).
    pub async fn cleanup(ns: &str) {
        drop_table(&postgres_table(ns)).await;
    }

    all_checks!(postgres, open);

    /// Every check of the suite in one test, in turn, on a PostgreSQL server of the test's own
    /// that admits TLS connections only (`tests/it/postgres_connect.rs`), each check on a table
    /// of its own: one server for the whole suite rather than one per check.
    macro_rules! over_tls {
        ($name:ident, [$($check:ident),* $(,)?]) => {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let server = crate::postgres_connect::TlsServer::start().await;
                let url = server.url("localhost", "sslmode=require");
                let tls = server.trusting();
                $(
                    let store = tower_cognito::session::PostgresStore::connect_with_tls(&url, &tls)
                        .await
                        .expect("connect over TLS")
                        .with_table(&postgres_table(&unique(stringify!($check))))
                        .expect("table");
                    store.create_schema().await.expect("create schema over TLS");
                    checks::$check(Arc::new(store) as Store).await;
                )*
            }
        };
    }

    with_every_check!(over_tls!(every_check_over_tls));

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn survives_a_restart() {
        let (ns, other) = (unique("restart"), unique("restart_other"));
        survives_restart(open, &ns, &other).await;
        cleanup(&ns).await;
        cleanup(&other).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_checks_from_two_instances() {
        let ns = unique("two_instances");
        let first = open(ns.clone()).await;
        let second = open(ns.clone()).await;
        two_instances_apply_checks_one_after_another([first.clone(), second, first]).await;
        cleanup(&ns).await;
    }

    /// `create_schema` may run again (every server runs it at start-up).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_schema_is_idempotent() {
        let ns = unique("schema");
        let t = now();
        let store = open(ns.clone()).await;
        check(&store, "k", t - 1, t, L2).await;
        let again = postgres_store(&postgres_table(&ns)).await;
        again.create_schema().await.expect("create schema again");
        again
            .create_schema()
            .await
            .expect("create schema a third time");
        let again: Store = Arc::new(again);
        assert_eq!(entry(&again, "k", t).await, live(&[t - 1], t + 600));
        cleanup(&ns).await;
    }

    /// Several servers starting at once on a fresh database all run `create_schema` at the
    /// same moment: every one of them must succeed (the docs say it is safe to run at every
    /// start), and they all end up on the one table.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_schema_concurrently_from_many_servers() {
        for round in 0..5 {
            let ns = unique(&format!("schema_race{round}"));
            let mut stores = Vec::new();
            for _ in 0..6 {
                stores.push(postgres_store(&postgres_table(&ns)).await);
            }
            let mut tasks = tokio::task::JoinSet::new();
            for store in stores.clone() {
                tasks.spawn(async move { store.create_schema().await });
            }
            let mut failures = Vec::new();
            while let Some(result) = tasks.join_next().await {
                if let Err(e) = result.expect("task") {
                    failures.push(e.to_string());
                }
            }
            cleanup(&ns).await;
            assert!(
                failures.is_empty(),
                "round {round}: {} of 6 concurrent create_schema calls failed: {failures:#?}",
                failures.len()
            );
        }
    }

    /// `cleanup_expired(now)` deletes exactly the entries expired at `now`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cleanup_expired_removes_only_expired_entries() {
        let (ns, t) = (unique("cleanup"), now());
        let table = postgres_table(&ns);
        let store = Arc::new(postgres_store_with_schema(&table).await);
        let dyn_store: Store = store.clone();
        check(&dyn_store, "short", t - 1, t, limits(2, 10)).await;
        check(&dyn_store, "long", t - 1, t, limits(2, 1000)).await;
        revoke(&dyn_store, "revoked_short", t, limits(2, 10)).await;
        revoke(&dyn_store, "revoked_long", t, limits(2, 1000)).await;
        let removed = store.cleanup_expired(t + 10).await.expect("cleanup");
        assert_eq!(removed, 2);
        // Gone for good: counting rows with a fresh connection.
        let rows: i64 = postgres_client()
            .await
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(rows, 2);
        assert_eq!(
            entry(&dyn_store, "long", t + 10).await,
            live(&[t - 1], t + 1000)
        );
        assert!(entry(&dyn_store, "revoked_long", t + 10)
            .await
            .is_some_and(|e| e.revoked));
        assert_eq!(store.cleanup_expired(t + 10).await.expect("cleanup"), 0);
        cleanup(&ns).await;
    }
}
