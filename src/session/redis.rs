//! [`RedisStore`]: session windows in Redis, shared by every server and checked with one Lua
//! script per request.
//!
//! # Storage
//!
//! One Redis string per session, at `prefix + session key` (the default prefix is
//! [`RedisStore::DEFAULT_PREFIX`]). Every script touches only that key, passed as `KEYS[1]`, so
//! on a Redis Cluster it runs on the primary owning that key's slot, in one round trip. The
//! value is
//!
//! ```text
//! expires_at|revoked|iat1,iat2,...
//! ```
//!
//! - `expires_at`: when the entry expires, in seconds since the Unix epoch, as a decimal `i64`;
//! - `revoked`: `1` or `0`;
//! - the distinct `iat` values kept, oldest first, as decimal `i64`s separated by commas (empty
//!   for a session revoked before any token was seen).
//!
//! For example `1767225600|0|1764633500,1764637100`. Numbers are written in Rust's decimal form
//! and written back by the scripts exactly as stored. The scripts compare them as Lua numbers
//! (doubles), which is exact for every `iat` and `now` within ±2^53 — unix times are far inside;
//! others are refused as [`StoreErrorKind::InvalidInput`] before any round trip. Comparing digit
//! strings instead would be exact for every `i64`, but made the script about three times slower
//! for values that never occur. A value that does not have this shape (or a key of another type)
//! is reported as [`StoreErrorKind::Corrupt`] and left untouched.
//!
//! # Expiry
//!
//! Verdicts are decided from the stored `expires_at` compared with the `now` the verifier passes
//! (from its [`Clock`](crate::Clock)), exactly as [`MemoryStore`](super::MemoryStore) does: an
//! entry with `expires_at <= now` counts as absent. Every write also sets Redis's own expiry to
//! the session TTL counted from the write (`SET ... EX ttl`), so that Redis reclaims abandoned
//! sessions; it never removes an entry before its TTL has passed in real time. A check that
//! would write back the very value stored (a known `iat` checked again within the second of
//! the last write, the common case for a busy session) writes nothing: the stored expiry and the
//! native one, set by that write in the same second, already cover it. A TTL longer than
//! about 136 years (`2^32` seconds) is not given a native expiry at all.
//!
//! # One server or a cluster
//!
//! [`RedisStore::connect`] asks the server `INFO cluster`: on a Redis Cluster node (or a managed
//! cluster's configuration endpoint) it switches to the cluster client with that URL as seed,
//! which learns the slot map, sends each script to the primary owning its key and follows `MOVED`
//! and `ASK`; [`RedisStore::connect_cluster`] takes several seeds. See
//! [`wait_for_replicas`](RedisStore::wait_for_replicas) for what a failover can lose.
//!
//! # Round trips
//!
//! [`check_and_advance`](SessionStore::check_and_advance) and [`revoke`](SessionStore::revoke)
//! are one `EVALSHA` each (the scripts are loaded at connect time, on every node of a cluster;
//! should a node forget them, for example after a restart or `SCRIPT FLUSH`, the answer
//! `NOSCRIPT` makes the store send the call again as `EVAL` with the script's text, to the same
//! node, which caches it). [`entry`](SessionStore::entry) is one `GET`. A script
//! runs atomically in Redis, so concurrent checks of one session, from any number of servers,
//! are applied one after another.
//!
//! # Errors
//!
//! A server that cannot be reached or fails to answer is [`StoreErrorKind::Unavailable`], an
//! answer slower than the connection's own response timeout (5 s; the verifier's store timeout
//! is normally much shorter) is [`StoreErrorKind::Timeout`], and an unexpected answer is
//! [`StoreErrorKind::Corrupt`].
//!
//! A single server that is down fails calls at once while the connection is re-established in
//! the background: see "A server that is down" on [`RedisStore`].

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Value;

use super::redis_connection::{self, Lua, RedisConnection, ReplicaWait};
use super::{
    check_limits, SessionEntry, SessionStore, SessionVerdict, StoreError, StoreErrorKind,
    StoreFuture, WindowLimits, MAX_WINDOW,
};

/// Session TTLs above this many seconds get no native Redis expiry (Redis refuses expiry times
/// that overflow its millisecond clock; 2^32 s is about 136 years).
const MAX_NATIVE_TTL_SECS: i64 = 1 << 32;

/// The largest magnitude of `iat` and `now` the scripts accept: Lua numbers are doubles, exact
/// for integers up to 2^53. Unix times are far below it; outside it is `InvalidInput`.
const MAX_EXACT: i64 = (1 << 53) - 1;

/// Shared by both scripts, before their own part: reads `KEYS[1]` as of `now` (a number the
/// script has set). Numbers are compared as Lua numbers (exact within [`MAX_EXACT`]); the stored
/// strings are written back as they were, never re-formatted.
///
/// Straight-line code, not functions: a script's local functions are new closures on every
/// call, and with `gmatch` they took about a fifth of the script's time in Redis.
const LUA_READ: &str = r#"
-- The window as of now: strs and nums, the iats kept (oldest first) as stored and as numbers;
-- len, their count; revoked; stored_exp, the stored expiry (nil when absent or expired). An
-- absent or expired entry reads as an empty, unrevoked window. A value this crate did not
-- write answers -1. Numbers are in Rust's decimal form (no leading zero, no "-0"), so equal
-- numbers are equal strings.
local strs, nums, len, revoked, stored_exp = {}, {}, 0, false, nil
local raw = redis.pcall('GET', KEYS[1])
if raw then
  if type(raw) ~= 'string' then return -1 end
  local e, rev, list = string.match(raw, '^(%-?%d+)|([01])|([%-%d,]*)$')
  if e == nil then return -1 end
  local b1, b2 = string.byte(e, 1, 2)
  if b1 == 45 then b1 = b2 end
  if b1 == 48 and e ~= '0' then return -1 end
  if list ~= '' then
    local pos = 1
    repeat
      -- One element per comma, empty ones included (and refused: tonumber('') is nil).
      local comma = string.find(list, ',', pos, true)
      local v = string.sub(list, pos, (comma or 0) - 1)
      local n = tonumber(v)
      if n == nil or len >= 8 or (len > 0 and nums[len] >= n) then return -1 end
      b1, b2 = string.byte(v, 1, 2)
      if b1 == 45 then b1 = b2 end
      if b1 == 48 and v ~= '0' then return -1 end
      len = len + 1
      strs[len], nums[len] = v, n
      pos = (comma or 0) + 1
    until comma == nil
  end
  if tonumber(e) > now then
    revoked, stored_exp = rev == '1', e
  else
    strs, nums, len = {}, {}, 0
  end
end
"#;

/// Shared by both scripts, after their own part: stores `value` with the native TTL
/// `native_ttl` (`'0'`: none).
const LUA_SAVE: &str = r#"
if native_ttl == '0' then
  redis.call('SET', KEYS[1], value)
else
  redis.call('SET', KEYS[1], value, 'EX', native_ttl)
end
return 0
"#;

/// `check_and_advance`. ARGV: iat, now, expires_at (now + ttl), window size, native TTL.
/// Returns 0 accepted, 1 superseded, 2 revoked, -1 corrupt.
const LUA_CHECK_ARGS: &str = r#"
local iat_s, exp, native_ttl = ARGV[1], ARGV[3], ARGV[5]
local iat, now, size = tonumber(iat_s), tonumber(ARGV[2]), tonumber(ARGV[4])
"#;

/// The decision of `check_and_advance` on the window read, and the `value` it stores.
const LUA_CHECK: &str = r#"
if revoked then return 2 end
if len >= size and iat < nums[len - size + 1] then return 1 end
-- A new iat enters in order and the size newest are kept; a known one changes only the expiry.
local out, first, placed = strs, 1, false
for i = 1, len do
  if iat == nums[i] then placed = true break end
end
-- A known iat at the stored expiry (a check in the same second) would write back the very
-- value stored: write nothing.
if placed and exp == stored_exp then return 0 end
if not placed then
  out = {}
  for i = 1, len do
    if not placed and iat < nums[i] then
      out[#out + 1] = iat_s
      placed = true
    end
    out[#out + 1] = strs[i]
  end
  if not placed then out[#out + 1] = iat_s end
  first = math.max(#out - size, 0) + 1
end
local value = exp .. '|0|' .. table.concat(out, ',', first, #out)
"#;

/// `revoke`. ARGV: now, expires_at (now + ttl), native TTL. Returns 0 done, -1 corrupt.
const LUA_REVOKE_ARGS: &str = r#"
local now, native_ttl = tonumber(ARGV[1]), ARGV[3]
"#;

/// The revoked window, as the `value` to store.
const LUA_REVOKE: &str = r#"
local value = ARGV[2] .. '|1|' .. table.concat(strs, ',')
"#;

/// Refuses `iat` and `now` the scripts could not compare exactly.
fn check_exact(values: &[i64]) -> Result<(), StoreError> {
    if values.iter().all(|v| v.unsigned_abs() <= MAX_EXACT as u64) {
        Ok(())
    } else {
        Err(StoreError::new(
            StoreErrorKind::InvalidInput,
            "iat and now must be within ±2^53 for the Redis store",
        ))
    }
}

struct Scripts {
    check: Lua,
    revoke: Lua,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    check: Lua::new(format!("{LUA_CHECK_ARGS}{LUA_READ}{LUA_CHECK}{LUA_SAVE}")),
    revoke: Lua::new(format!("{LUA_REVOKE_ARGS}{LUA_READ}{LUA_REVOKE}{LUA_SAVE}")),
});

/// Session windows in Redis: shared by every server, one atomic Lua script per check.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use tower_cognito::session::{RedisStore, SessionConfig};
///
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?.with_prefix("myapp:session:");
/// let sessions = SessionConfig::new(Arc::new(store));
/// # Ok(()) }
/// ```
///
/// Each check is one `EVALSHA` of a Lua script, atomic in Redis, so concurrent requests of one
/// session (from any number of servers) are applied one after another; should Redis forget the
/// script (restart, `SCRIPT FLUSH`), the call is sent again as `EVAL` on the `NOSCRIPT` answer.
/// The connection reconnects by itself after a failure; requests made while Redis is unreachable
/// fail with [`StoreErrorKind::Unavailable`], at once, without waiting for the reconnect (see
/// [below](#a-server-that-is-down)). Cloning is cheap and shares the connection.
///
/// Pointed at a Redis Cluster node, it uses the cluster (see [`connect`](Self::connect) and
/// [`connect_cluster`](Self::connect_cluster)).
///
/// # Storage
///
/// One string per session, at `prefix + session key` (so it also works on Redis Cluster):
/// `expires_at|revoked|iat1,iat2,...`, for example `1767225600|0|1764633500,1764637100`
/// (`expires_at` in seconds since the Unix epoch, `revoked` `0` or `1`, the `iat` values kept,
/// oldest first). The scripts compare these numbers as Lua numbers, exact for `iat` and `now`
/// within ±2^53 (unix times are far inside; others are refused as
/// [`StoreErrorKind::InvalidInput`]), and write the stored digits back unchanged.
/// Expiry is decided from `expires_at` and the `now` the verifier passes; Redis's own expiry
/// (the session TTL from each write) only reclaims abandoned sessions. A key holding anything
/// else is reported as [`StoreErrorKind::Corrupt`] and left untouched.
///
/// # A server that is down
///
/// A request never waits for a reconnect loop. After the connection to a single server is lost,
/// one connection attempt is made, which the requests of that moment wait for (a refused
/// connection is known at once, one nobody answers after the 1 s connect timeout, cut earlier
/// by the store timeout; a dropped idle connection to a live server costs them a round trip).
/// Once an attempt has failed, the server is taken for down: every call fails at once
/// with [`StoreErrorKind::Unavailable`], without touching the network, while one background
/// task reconnects, one attempt at a time, 20 ms after the failure and then with the pause
/// doubling up to 250 ms. Its first success (a new connection that answers `PING`) lets calls
/// through again, so the store is back within about 250 ms of the server. The exception is
/// [`revoke`](SessionStore::revoke), an explicit call that should reach the store if it can:
/// while the server is taken for down, it asks for an attempt right away and waits for it
/// (under the caller's timeout). A server that is up but slow is not taken for down: each call
/// is cut by the verifier's store timeout, as before. On a Redis Cluster the cluster client's
/// own reconnects and retries apply instead (bounded by the store timeout).
///
/// The verifier's circuit breaker
/// ([`SessionConfig::circuit_breaker`](super::SessionConfig::circuit_breaker), on by default)
/// comes on top: after 3 failures in a row, checks are answered without calling the store at
/// all, until its probe ([`ping`](SessionStore::ping), which fails at once too while the server
/// is down) finds the store answering again. It guards checks only, not
/// [`Verifier::revoke_session`](crate::Verifier::revoke_session), which always calls `revoke`.
#[derive(Clone)]
pub struct RedisStore {
    /// Also `host:port/db` or the cluster's seeds, for `Debug`: never the password.
    conn: RedisConnection,
    prefix: Arc<str>,
}

impl RedisStore {
    /// The key prefix used unless [`with_prefix`](Self::with_prefix) sets another.
    pub const DEFAULT_PREFIX: &'static str = "tower-cognito:session:";

    /// Connects to the Redis server at `url` (`redis://[user:password@]host[:port][/db]` or
    /// `redis+unix:///path`; `rediss://` once a TLS feature of the `redis` crate is enabled) and
    /// loads the scripts.
    ///
    /// When the server is a Redis Cluster node (`INFO cluster` says `cluster_enabled:1`), the
    /// store uses the whole cluster with `url` as its seed: one node's address, or a managed
    /// cluster's configuration endpoint, is enough (database 0 only). A server that refuses
    /// `INFO` is taken for a single server.
    ///
    /// Fails with [`StoreErrorKind::InvalidInput`] when `url` is not a Redis URL and with
    /// [`StoreErrorKind::Unavailable`] when the server cannot be reached (after a few quick
    /// retries) or refuses the connection or the scripts. Must be called within a Tokio runtime.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let conn = redis_connection::connect(url, &[&SCRIPTS.check, &SCRIPTS.revoke]).await?;
        Ok(Self::with_connection(conn))
    }

    /// Connects to the Redis Cluster that the `nodes` (URLs as for [`connect`](Self::connect),
    /// database 0) belong to: any one that answers is enough, the others are tried when it does
    /// not. The scripts are loaded on every node.
    ///
    /// Fails with [`StoreErrorKind::InvalidInput`] when `nodes` is empty, a URL is not a Redis
    /// URL, names a database other than 0, or the nodes are not cluster nodes; with
    /// [`StoreErrorKind::Unavailable`] when no node can be reached.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_cognito::session::RedisStore;
    ///
    /// let store = RedisStore::connect_cluster([
    ///     "redis://10.0.0.1:6379",
    ///     "redis://10.0.0.2:6379",
    ///     "redis://10.0.0.3:6379",
    /// ])
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_cluster<I>(nodes: I) -> Result<Self, StoreError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let nodes: Vec<I::Item> = nodes.into_iter().collect();
        let conn =
            redis_connection::connect_cluster(&nodes, &[&SCRIPTS.check, &SCRIPTS.revoke]).await?;
        Ok(Self::with_connection(conn))
    }

    fn with_connection(conn: RedisConnection) -> Self {
        Self {
            conn,
            prefix: Arc::from(Self::DEFAULT_PREFIX),
        }
    }

    /// After each write, waits until `replicas` replicas acknowledged it (`WAIT replicas
    /// timeout`, in the same round trip as the script); off by default, and `0` turns it off.
    ///
    /// Redis replicates asynchronously: when a primary dies, its replica takes over with the
    /// writes that reached it, and the last windows written before the failure may be lost.
    /// A lost advance lets the previous token of that session in again until the next refresh
    /// (the window falls back one step); a lost [`revoke`](SessionStore::revoke) undoes the
    /// revocation. With this set, an acceptance or revocation is answered only once
    /// `replicas` replicas hold it; when fewer acknowledge within `timeout`, the call fails
    /// with [`StoreErrorKind::Unavailable`] (a 503: the write is on the primary, but not
    /// known to survive its loss). Refusals are answered as they are: they write nothing.
    /// `WAIT` narrows the window of loss but is not a consensus protocol: a replica that
    /// acknowledged can still lose the race to be promoted.
    ///
    /// Choose `timeout` below the verifier's store timeout. The cost is one replication round
    /// trip per write (measured in `benches/redis_cluster.rs`).
    #[must_use]
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.conn.set_wait(ReplicaWait::new(replicas, timeout));
        self
    }

    /// Stores the sessions under keys starting with `prefix` instead of
    /// [`DEFAULT_PREFIX`](Self::DEFAULT_PREFIX).
    ///
    /// Any prefix works, on a Redis Cluster too: every script touches one key only, so no two
    /// keys need to share a slot. But leave braces out of it on a cluster: a `{name}` in the
    /// prefix becomes the hash tag of every session key, which puts all sessions in one slot,
    /// on one node.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Arc::from(prefix.into());
        self
    }

    /// The prefix of every key this store writes.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn redis_key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        full
    }
}

impl SessionStore for RedisStore {
    fn check_and_advance<'a>(
        &'a self,
        key: &'a str,
        iat: i64,
        now: i64,
        limits: WindowLimits,
    ) -> StoreFuture<'a, SessionVerdict> {
        Box::pin(async move {
            check_limits(limits)?;
            check_exact(&[iat, now])?;
            let call = SCRIPTS
                .check
                .call(&[self.redis_key(key)])
                .arg(iat.to_string())
                .arg(now.to_string())
                .arg(limits.expires_at(now).to_string())
                .arg(limits.size.to_string())
                .arg(native_ttl(limits.ttl_secs));
            // Only an acceptance writes: a refusal stands without replicas.
            let answer = self
                .conn
                .eval(&call, |answer| *answer == Value::Int(0))
                .await?;
            match answer {
                Value::Int(0) => Ok(SessionVerdict::Accepted),
                Value::Int(1) => Ok(SessionVerdict::Superseded),
                Value::Int(2) => Ok(SessionVerdict::Revoked),
                other => Err(corrupt(&other)),
            }
        })
    }

    fn revoke<'a>(&'a self, key: &'a str, now: i64, limits: WindowLimits) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            check_limits(limits)?;
            check_exact(&[now])?;
            // An explicit call: tried even while the server is taken for down.
            self.conn.reach().await?;
            let call = SCRIPTS
                .revoke
                .call(&[self.redis_key(key)])
                .arg(now.to_string())
                .arg(limits.expires_at(now).to_string())
                .arg(native_ttl(limits.ttl_secs));
            let answer = self
                .conn
                .eval(&call, |answer| *answer == Value::Int(0))
                .await?;
            match answer {
                Value::Int(0) => Ok(()),
                other => Err(corrupt(&other)),
            }
        })
    }

    /// `PING`: the server (on a cluster, a node the client picks) answers.
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            match self.conn.read(&redis::cmd("PING")).await? {
                Value::SimpleString(pong) if pong == "PONG" => Ok(()),
                other => Err(corrupt(&other)),
            }
        })
    }

    fn entry<'a>(&'a self, key: &'a str, now: i64) -> StoreFuture<'a, Option<SessionEntry>> {
        Box::pin(async move {
            let answer = self
                .conn
                .read(redis::cmd("GET").arg(self.redis_key(key)))
                .await?;
            let raw = match &answer {
                Value::Nil => return Ok(None),
                Value::BulkString(raw) => raw,
                other => return Err(corrupt(other)),
            };
            let entry = parse_entry(raw).ok_or_else(|| {
                StoreError::new(StoreErrorKind::Corrupt, "malformed session entry")
            })?;
            Ok((entry.expires_at > now).then_some(entry))
        })
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &format_args!("{}", self.conn))
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The native expiry argument of the scripts: the TTL in seconds, or `0` for none.
fn native_ttl(ttl_secs: i64) -> String {
    if (1..=MAX_NATIVE_TTL_SECS).contains(&ttl_secs) {
        ttl_secs.to_string()
    } else {
        "0".to_owned()
    }
}

fn corrupt(answer: &Value) -> StoreError {
    let what = match answer {
        Value::Int(-1) => "malformed session entry".to_owned(),
        other => format!("unexpected answer from the script: {other:?}"),
    };
    StoreError::new(StoreErrorKind::Corrupt, what)
}

/// Parses a stored value (`expires_at|revoked|iat,...`), with the same checks as the scripts.
fn parse_entry(raw: &[u8]) -> Option<SessionEntry> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut parts = text.split('|');
    let (expires, revoked, list) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let expires_at = parse_int(expires)?;
    let revoked = match revoked {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    let mut iats: Vec<i64> = Vec::new();
    if !list.is_empty() {
        for value in list.split(',') {
            let iat = parse_int(value)?;
            if iats.len() >= MAX_WINDOW || iats.last().is_some_and(|&last| last >= iat) {
                return None;
            }
            iats.push(iat);
        }
    }
    Some(SessionEntry {
        iats,
        revoked,
        expires_at,
    })
}

/// An `i64` in canonical decimal form only (what the scripts can compare as digit strings).
fn parse_int(s: &str) -> Option<i64> {
    let value: i64 = s.parse().ok()?;
    (value.to_string() == s).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_scripts_write() {
        assert_eq!(
            parse_entry(b"1700000100|0|100,200"),
            Some(SessionEntry {
                iats: vec![100, 200],
                revoked: false,
                expires_at: 1_700_000_100,
            })
        );
        assert_eq!(
            parse_entry(b"-5|1|"),
            Some(SessionEntry {
                iats: vec![],
                revoked: true,
                expires_at: -5,
            })
        );
        let extremes = format!("{}|0|{},-1,0,{}", i64::MAX, i64::MIN, i64::MAX);
        assert_eq!(
            parse_entry(extremes.as_bytes()).unwrap().iats,
            [i64::MIN, -1, 0, i64::MAX]
        );
    }

    #[test]
    fn refuses_anything_else() {
        for raw in [
            &b""[..],
            b"100",
            b"100|0",
            b"100|2|",
            b"100|0|1,,2",
            b"100|0|2,1",
            b"100|0|1,1",
            b"100|0|1,",
            b"+100|0|1",
            b"0100|0|1",
            b"-0|0|1",
            b"100|0|1|",
            b"100|0|1,2,3,4,5,6,7,8,9",
            b"9223372036854775808|0|1",
            b"\xff|0|1",
        ] {
            assert_eq!(parse_entry(raw), None, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn native_ttl_is_bounded() {
        assert_eq!(native_ttl(60), "60");
        assert_eq!(
            native_ttl(MAX_NATIVE_TTL_SECS),
            MAX_NATIVE_TTL_SECS.to_string()
        );
        assert_eq!(native_ttl(MAX_NATIVE_TTL_SECS + 1), "0");
        assert_eq!(native_ttl(i64::MAX), "0");
    }
}
