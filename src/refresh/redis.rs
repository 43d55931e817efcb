//! [`RedisRefreshStore`]: server-held sessions in Redis, with the refresh lock as a lease under a
//! fencing token, one round trip per operation.
//!
//! # Storage
//!
//! Two keys per session, both under the same hash tag so that they live in one Redis Cluster
//! slot and one script may touch both:
//!
//! - the record, a hash at `{prefix}{<id>}` (the default prefix is
//!   [`RedisRefreshStore::DEFAULT_PREFIX`]) with the fields `version`, `expires_at`,
//!   `access_expires_at` and `fence` (decimal integers) and `sealed` (the sealed tokens, raw
//!   bytes). `fence` is the newest fence issued for the session;
//! - the lock, a string at `{prefix}{<id>}:lock` holding the holder's fence, with Redis's own
//!   expiry (`PX`) as the lease.
//!
//! The hash tag is what lies between the first `{` of a key and the next `}`, unless that is
//! empty: then Redis hashes the whole key. With a prefix that holds no `{`, the tag is the
//! session id (lower case hex digits, from the session cookie). With one that does, it is still
//! the same for both keys, because the lock key is the record key plus a suffix and the record
//! key's tag closes within it, except when it is empty: a prefix whose first `{` is followed by
//! `}` (as in `app:{}:`) would have each whole key hashed, the record and its lock in different
//! slots, and every script refused by a cluster (`CROSSSLOT`), so
//! [`RedisRefreshStore::with_prefix`] refuses it. A prefix with a tag of its own (`{app}:`)
//! works, but makes that tag every session's: all of them in one slot, on one node.
//!
//! The record's integers are written in Rust's decimal form and compared by the scripts as Lua
//! numbers (doubles), which is exact within ±2^53; `now`, `expires_at`, `access_expires_at` and
//! `version` outside that range are refused as [`StoreErrorKind::InvalidInput`] before any round
//! trip (unix times and fences are far inside). A record hash with a field missing or not in that
//! form, or a key of another type, is reported as [`StoreErrorKind::Corrupt`] and left untouched.
//!
//! # Expiry
//!
//! Whether a session has expired is decided from the stored `expires_at` and the `now` the caller
//! passes, as for [`MemoryRefreshStore`](super::MemoryRefreshStore). Every write also sets the
//! hash's native expiry to `expires_at` (`EXPIREAT`), so Redis reclaims ended sessions by itself.
//! The lease runs on Redis's clock (`PX`), so servers with skewed clocks agree on it.
//!
//! # Round trips
//!
//! [`lock`](RefreshStore::lock), [`save`](RefreshStore::save),
//! [`unlock`](RefreshStore::unlock) and [`create`](RefreshStore::create) are one `EVALSHA` each,
//! atomic in Redis (the scripts are loaded at [`RedisRefreshStore::connect`], on every node of a
//! cluster; on a `NOSCRIPT` answer, after a restart or `SCRIPT FLUSH`, the call is sent again as
//! `EVAL` with the script's text).
//! [`load`](RefreshStore::load) is one `HMGET`, [`delete`](RefreshStore::delete) one `DEL` of both
//! keys.
//!
//! # Errors
//!
//! As for the session window's `RedisStore`: a server that cannot be reached is
//! [`StoreErrorKind::Unavailable`], an answer slower than the connection's response timeout (5 s)
//! is [`StoreErrorKind::Timeout`], and an unexpected answer is [`StoreErrorKind::Corrupt`]. A
//! single server that is down costs a call no wait: once a connection attempt has failed, calls
//! fail at once while the connection is re-established in the background, and succeed again
//! within about 250 ms of the server being back (see
//! [`RedisStore`](crate::session::RedisStore#a-server-that-is-down)).

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Value;

use super::store::{LockOutcome, RefreshStore, SaveOutcome, SessionRecord};
use crate::session::redis_connection::{self, Call, Lua, RedisConnection, ReplicaWait};
use crate::session::{StoreError, StoreErrorKind, StoreFuture};

/// The largest magnitude of the integers the scripts compare: Lua numbers are doubles, exact for
/// integers up to 2^53.
const MAX_EXACT: i64 = (1 << 53) - 1;

/// The longest lease: a century, in milliseconds. A longer one is cut to it.
const MAX_LEASE_MS: u128 = 100 * 365 * 24 * 3600 * 1000;

/// The record's fields, in the order every command and script reads them.
const FIELDS: [&str; 5] = [
    "version",
    "expires_at",
    "access_expires_at",
    "sealed",
    "fence",
];

/// Shared by the `lock` and `save` scripts, first: reads the record at `KEYS[1]` into `f` as
/// `FIELDS` (all strings), answering 0 when there is none and -1 when it is not a record this
/// crate wrote (a key of another type, a field missing, an integer not in Rust's decimal form or
/// beyond ±2^53, a negative version or fence). `exp` is its `expires_at` as a number.
const LUA_READ: &str = r#"
local f = redis.pcall('HMGET', KEYS[1], 'version', 'expires_at', 'access_expires_at', 'sealed', 'fence')
if f.err then return -1 end
if not (f[1] or f[2] or f[3] or f[4] or f[5]) then return 0 end
if not (f[1] and f[2] and f[3] and f[4] and f[5]) then return -1 end
local function int(s)
  local n = tonumber(s)
  if n == nil or n ~= math.floor(n) or math.abs(n) > 9007199254740991 then return nil end
  if string.format('%d', n) ~= s then return nil end
  return n
end
local version, exp, access, fence = int(f[1]), int(f[2]), int(f[3]), int(f[5])
if not (version and exp and access and fence) or version < 0 or fence < 0 then return -1 end
"#;

/// `lock`. KEYS: record, lock. ARGV: now, lease (ms). Answers 0 missing (or expired), 1 busy,
/// -1 corrupt, or `{fence, version, expires_at, access_expires_at, sealed, took_over}` when
/// acquired (the new fence, the record as stored, and 1 when an earlier holder's lease ended
/// without a save or an unlock: the record's `holder` field, set here and cleared by those,
/// was still set).
const LUA_LOCK: &str = r#"
if exp <= tonumber(ARGV[1]) then return 0 end
if fence >= 9007199254740991 then return -1 end
local held = redis.pcall('GET', KEYS[2])
if type(held) == 'table' then return -1 end
if held then return 1 end
local issued = string.format('%d', fence + 1)
if not redis.call('SET', KEYS[2], issued, 'NX', 'PX', ARGV[2]) then return 1 end
local took_over = 0
if redis.call('HEXISTS', KEYS[1], 'holder') == 1 then took_over = 1 end
redis.call('HSET', KEYS[1], 'fence', issued, 'holder', issued)
return {issued, f[1], f[2], f[3], f[4], took_over}
"#;

/// `save`. KEYS: record, lock. ARGV: now, fence, version, expires_at, access_expires_at, sealed.
/// Answers 0 missing (or expired), 1 saved, 2 fenced (a save under this or a newer fence came
/// first), -1 corrupt. The lock, and the `holder` mark, are released only when they are this
/// fence's.
const LUA_SAVE: &str = r#"
if exp <= tonumber(ARGV[1]) then return 0 end
if version >= tonumber(ARGV[2]) then return 2 end
redis.call('HSET', KEYS[1], 'version', ARGV[3], 'expires_at', ARGV[4],
  'access_expires_at', ARGV[5], 'sealed', ARGV[6])
redis.call('EXPIREAT', KEYS[1], ARGV[4])
if redis.call('HGET', KEYS[1], 'holder') == ARGV[2] then redis.call('HDEL', KEYS[1], 'holder') end
if redis.pcall('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return 1
"#;

/// `create`. KEYS: record, lock. ARGV: version, expires_at, access_expires_at, sealed. Replaces
/// whatever is there, lock included; the newest fence starts at the record's version.
const LUA_CREATE: &str = r#"
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'expires_at', ARGV[2],
  'access_expires_at', ARGV[3], 'sealed', ARGV[4], 'fence', ARGV[1])
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return 0
"#;

/// `unlock`. KEYS: record, lock. ARGV: fence. Deletes the lock (and the `holder` mark) only if
/// it holds `fence`.
const LUA_UNLOCK: &str = r#"
if redis.pcall('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  if redis.pcall('HGET', KEYS[1], 'holder') == ARGV[1] then redis.call('HDEL', KEYS[1], 'holder') end
end
return 0
"#;

struct Scripts {
    lock: Lua,
    save: Lua,
    create: Lua,
    unlock: Lua,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    lock: Lua::new(format!("{LUA_READ}{LUA_LOCK}")),
    save: Lua::new(format!("{LUA_READ}{LUA_SAVE}")),
    create: Lua::new(LUA_CREATE.to_owned()),
    unlock: Lua::new(LUA_UNLOCK.to_owned()),
});

/// Every script, as the connection loads them.
fn scripts() -> [&'static Lua; 4] {
    [
        &SCRIPTS.lock,
        &SCRIPTS.save,
        &SCRIPTS.create,
        &SCRIPTS.unlock,
    ]
}

/// Server-held sessions in Redis, shared by every server, with one refresh lock per session.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use tower_cognito::refresh::{RedisRefreshStore, RefreshStore};
///
/// let store = RedisRefreshStore::connect("redis://127.0.0.1:6379")
///     .await?
///     .with_prefix("myapp:bff:")?;
/// let store: Arc<dyn RefreshStore> = Arc::new(store);
/// # Ok(()) }
/// ```
///
/// The lock is a lease with a fencing token: [`lock`](RefreshStore::lock) is one Lua script that
/// checks the session, sets the lock key with `NX PX lease` and issues the next fence;
/// [`save`](RefreshStore::save) is one script that stores the record unless a holder under a
/// newer fence saved first, and releases the lock if it is the caller's. A holder that dies blocks its session for at most
/// the lease (Redis expires the lock key), and one that comes back late is refused.
///
/// Each session is a hash at `{prefix}{<id>}` (fields `version`, `expires_at`,
/// `access_expires_at`, `fence`, `sealed`) and a lock at `{prefix}{<id>}:lock`: one hash tag, one
/// Redis Cluster slot. Cloning is cheap and shares the connection, which reconnects by itself.
#[derive(Clone)]
pub struct RedisRefreshStore {
    /// Also `host:port/db` or the cluster's seeds, for `Debug`: never the password.
    conn: RedisConnection,
    prefix: Arc<str>,
}

impl RedisRefreshStore {
    /// The key prefix used unless [`with_prefix`](Self::with_prefix) sets another.
    pub const DEFAULT_PREFIX: &'static str = "tower-cognito:bff:";

    /// Connects to the Redis server at `url` (`redis://[user:password@]host[:port][/db]` or
    /// `redis+unix:///path`) and loads the scripts. On a Redis Cluster node, uses the whole
    /// cluster with `url` as its seed, as
    /// [`RedisStore::connect`](crate::session::RedisStore::connect) does.
    ///
    /// Fails with [`StoreErrorKind::InvalidInput`] when `url` is not a Redis URL and with
    /// [`StoreErrorKind::Unavailable`] when the server cannot be reached (after a few quick
    /// retries) or refuses the connection or the scripts. Must be called within a Tokio runtime.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let conn = redis_connection::connect(url, &scripts()).await?;
        Ok(Self::with_connection(conn))
    }

    /// Connects to the Redis Cluster that the `nodes` (URLs as for [`connect`](Self::connect),
    /// database 0) belong to, as
    /// [`RedisStore::connect_cluster`](crate::session::RedisStore::connect_cluster) does.
    pub async fn connect_cluster<I>(nodes: I) -> Result<Self, StoreError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let nodes: Vec<I::Item> = nodes.into_iter().collect();
        let conn = redis_connection::connect_cluster(&nodes, &scripts()).await?;
        Ok(Self::with_connection(conn))
    }

    fn with_connection(conn: RedisConnection) -> Self {
        Self {
            conn,
            prefix: Arc::from(Self::DEFAULT_PREFIX),
        }
    }

    /// After each write (a lock taken, a save, a create, an unlock, a delete), waits until
    /// `replicas` replicas acknowledged it (`WAIT replicas timeout`, in the same round trip);
    /// off by default, and `0` turns it off.
    ///
    /// Redis replicates asynchronously: after a failover the new primary may lack the last
    /// writes, for example a lock and its fence (another server could then take the lock, and a
    /// fence be issued twice) or the newest saved tokens (the session falls back to the ones
    /// before, whose refresh token Cognito may already have rotated away). With this set, such
    /// a write is answered only once `replicas` replicas hold it; when fewer acknowledge within
    /// `timeout`, the call fails with [`StoreErrorKind::Unavailable`]. Choose `timeout` below
    /// the request's patience; see [`RedisStore::wait_for_replicas`](crate::session::RedisStore::wait_for_replicas)
    /// for what `WAIT` does and does not promise.
    #[must_use]
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.conn.set_wait(ReplicaWait::new(replicas, timeout));
        self
    }

    /// Stores the sessions under keys starting with `prefix` instead of
    /// [`DEFAULT_PREFIX`](Self::DEFAULT_PREFIX).
    ///
    /// A session's two keys share a hash tag, which keeps them in one Redis Cluster slot: the
    /// session id, `{<id>}`, when `prefix` holds no `{`. Leave braces out of it: a `{name}` in
    /// it becomes the tag of every session (all of them in one slot, on one node), and an empty
    /// one would split each session's keys across slots. Fails with
    /// [`StoreErrorKind::InvalidInput`] for such a prefix: one whose first `{` is followed by
    /// `}`, as in `app:{}:`.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Result<Self, StoreError> {
        let prefix = prefix.into();
        check_prefix(&prefix)?;
        self.prefix = Arc::from(prefix);
        Ok(self)
    }

    /// The prefix of every key this store writes.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn keys(&self, id: &str) -> (String, String) {
        session_keys(&self.prefix, id)
    }

    async fn load_record(&self, id: &str, now: i64) -> Result<Option<SessionRecord>, StoreError> {
        let (record, _) = self.keys(id);
        let answer = self
            .conn
            .read(redis::cmd("HMGET").arg(record).arg(&FIELDS[..]))
            .await?;
        let Value::Array(fields) = answer else {
            return Err(unexpected(&answer));
        };
        if fields.iter().all(|v| matches!(v, Value::Nil)) {
            return Ok(None);
        }
        let mut fields = fields.into_iter();
        let record = parse_record(&mut fields)?;
        // The fence is read too, so that a record the scripts would refuse is refused here.
        parse_u64(fields.next().as_ref())?;
        Ok((record.expires_at > now).then_some(record))
    }

    async fn create_record(&self, id: &str, record: &SessionRecord) -> Result<(), StoreError> {
        check_record(record)?;
        let (record_key, lock_key) = self.keys(id);
        let create = with_record(SCRIPTS.create.call(&[record_key, lock_key]), record);
        let answer = self.conn.eval(&create, |_| true).await?;
        match answer {
            Value::Int(0) => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn lock_record(
        &self,
        id: &str,
        lease: Duration,
        now: i64,
    ) -> Result<LockOutcome, StoreError> {
        check_exact(&[now])?;
        let (record_key, lock_key) = self.keys(id);
        let lock = SCRIPTS
            .lock
            .call(&[record_key, lock_key])
            .arg(now.to_string())
            .arg(lease_ms(lease).to_string());
        // Only an acquired lock writes.
        let answer = self
            .conn
            .eval(&lock, |answer| matches!(answer, Value::Array(_)))
            .await?;
        match answer {
            Value::Int(0) => Ok(LockOutcome::Missing),
            Value::Int(1) => Ok(LockOutcome::Busy),
            Value::Array(fields) => {
                let mut fields = fields.into_iter();
                let fence = parse_u64(fields.next().as_ref())?;
                let record = parse_record(&mut fields)?;
                let took_over = match fields.next() {
                    Some(Value::Int(0)) => false,
                    Some(Value::Int(1)) => true,
                    other => return Err(unexpected(&other.unwrap_or(Value::Nil))),
                };
                Ok(LockOutcome::Acquired {
                    fence,
                    record,
                    took_over,
                })
            }
            other => Err(unexpected(&other)),
        }
    }

    async fn save_record(
        &self,
        id: &str,
        record: &SessionRecord,
        fence: u64,
        now: i64,
    ) -> Result<SaveOutcome, StoreError> {
        check_exact(&[now, i64::try_from(fence).unwrap_or(i64::MAX)])?;
        check_record(record)?;
        let (record_key, lock_key) = self.keys(id);
        let save = SCRIPTS
            .save
            .call(&[record_key, lock_key])
            .arg(now.to_string())
            .arg(fence.to_string());
        let save = with_record(save, record);
        // Only a save that happened writes.
        let answer = self
            .conn
            .eval(&save, |answer| *answer == Value::Int(1))
            .await?;
        match answer {
            Value::Int(0) => Ok(SaveOutcome::Missing),
            Value::Int(1) => Ok(SaveOutcome::Saved),
            Value::Int(2) => Ok(SaveOutcome::Fenced),
            other => Err(unexpected(&other)),
        }
    }

    async fn unlock_record(&self, id: &str, fence: u64) -> Result<(), StoreError> {
        let (record_key, lock_key) = self.keys(id);
        let unlock = SCRIPTS
            .unlock
            .call(&[record_key, lock_key])
            .arg(fence.to_string());
        let answer = self.conn.eval(&unlock, |_| true).await?;
        match answer {
            Value::Int(0) => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn delete_record(&self, id: &str) -> Result<(), StoreError> {
        // A sign-out: tried even while the server is taken for down, as a revocation is.
        self.conn.reach().await?;
        let (record_key, lock_key) = self.keys(id);
        let mut del = redis::cmd("DEL");
        del.arg(record_key).arg(lock_key);
        match self.conn.write(del).await? {
            Value::Int(_) => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

impl RefreshStore for RedisRefreshStore {
    fn load<'a>(&'a self, id: &'a str, now: i64) -> StoreFuture<'a, Option<SessionRecord>> {
        Box::pin(self.load_record(id, now))
    }

    fn create<'a>(
        &'a self,
        id: &'a str,
        record: &'a SessionRecord,
        _now: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.create_record(id, record))
    }

    fn lock<'a>(&'a self, id: &'a str, lease: Duration, now: i64) -> StoreFuture<'a, LockOutcome> {
        Box::pin(self.lock_record(id, lease, now))
    }

    fn save<'a>(
        &'a self,
        id: &'a str,
        record: &'a SessionRecord,
        fence: u64,
        now: i64,
    ) -> StoreFuture<'a, SaveOutcome> {
        Box::pin(self.save_record(id, record, fence, now))
    }

    fn unlock<'a>(&'a self, id: &'a str, fence: u64) -> StoreFuture<'a, ()> {
        Box::pin(self.unlock_record(id, fence))
    }

    fn delete<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(self.delete_record(id))
    }
}

impl fmt::Debug for RedisRefreshStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRefreshStore")
            .field("server", &format_args!("{}", self.conn))
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The record key `{prefix}{<id>}` and the lock key `{prefix}{<id>}:lock`.
/// The record's fields as the `create` and `save` scripts take them, after their other
/// arguments: version, expires_at, access_expires_at, sealed.
fn with_record<'a>(call: Call<'a>, record: &SessionRecord) -> Call<'a> {
    call.arg(record.version.to_string())
        .arg(record.expires_at.to_string())
        .arg(record.access_expires_at.to_string())
        .arg(&record.sealed[..])
}

fn session_keys(prefix: &str, id: &str) -> (String, String) {
    let record = format!("{prefix}{{{id}}}");
    let lock = format!("{record}:lock");
    (record, lock)
}

/// Refuses a prefix under which a session's two keys would not share a hash tag: one whose
/// first `{` is followed by `}` (an empty tag makes Redis hash each whole key; see the module
/// docs).
fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    let empty_tag = prefix
        .find('{')
        .is_some_and(|open| prefix[open + 1..].starts_with('}'));
    if empty_tag {
        Err(StoreError::new(
            StoreErrorKind::InvalidInput,
            "the key prefix of the Redis refresh store holds an empty hash tag `{}`: a session's \
             record and lock would fall into different cluster slots",
        ))
    } else {
        Ok(())
    }
}

/// The lease in whole milliseconds, rounded up (Redis refuses `PX 0`) and cut to a century.
fn lease_ms(lease: Duration) -> u128 {
    lease.as_nanos().div_ceil(1_000_000).clamp(1, MAX_LEASE_MS)
}

/// Refuses integers the scripts could not compare exactly.
fn check_exact(values: &[i64]) -> Result<(), StoreError> {
    if values.iter().all(|v| v.unsigned_abs() <= MAX_EXACT as u64) {
        Ok(())
    } else {
        Err(StoreError::new(
            StoreErrorKind::InvalidInput,
            "times and versions must be within ±2^53 for the Redis store",
        ))
    }
}

/// Refuses a record the scripts could not read back.
fn check_record(record: &SessionRecord) -> Result<(), StoreError> {
    let version = i64::try_from(record.version).unwrap_or(i64::MAX);
    check_exact(&[version, record.expires_at, record.access_expires_at])
}

/// Reads `version, expires_at, access_expires_at, sealed` off `fields`.
fn parse_record(fields: &mut impl Iterator<Item = Value>) -> Result<SessionRecord, StoreError> {
    let version = parse_u64(fields.next().as_ref())?;
    let expires_at = parse_i64(fields.next().as_ref())?;
    let access_expires_at = parse_i64(fields.next().as_ref())?;
    let Some(Value::BulkString(sealed)) = fields.next() else {
        return Err(malformed());
    };
    Ok(SessionRecord::new(
        version,
        expires_at,
        access_expires_at,
        sealed,
    ))
}

/// An integer field as the scripts accept it: Rust's decimal form, within ±2^53.
fn parse_i64(value: Option<&Value>) -> Result<i64, StoreError> {
    let Some(Value::BulkString(raw)) = value else {
        return Err(malformed());
    };
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| {
            let n: i64 = s.parse().ok()?;
            (n.to_string() == s && n.unsigned_abs() <= MAX_EXACT as u64).then_some(n)
        })
        .ok_or_else(malformed)
}

/// A version or fence: [`parse_i64`], not negative.
fn parse_u64(value: Option<&Value>) -> Result<u64, StoreError> {
    u64::try_from(parse_i64(value)?).map_err(|_| malformed())
}

fn malformed() -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, "malformed session record")
}

fn unexpected(answer: &Value) -> StoreError {
    match answer {
        Value::Int(-1) => malformed(),
        other => StoreError::new(
            StoreErrorKind::Corrupt,
            format!("unexpected answer from Redis: {other:?}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn integers_in_rust_decimal_form_only() {
        for ok in [
            "0",
            "1",
            "-1",
            "1764633500",
            "9007199254740991",
            "-9007199254740991",
        ] {
            assert!(parse_i64(Some(&bulk(ok))).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "+1",
            "01",
            "-0",
            "1.0",
            "1e3",
            " 1",
            "0x10",
            "9007199254740992",
        ] {
            assert!(parse_i64(Some(&bulk(bad))).is_err(), "{bad}");
        }
        assert!(parse_i64(Some(&Value::Int(1))).is_err());
        assert!(parse_i64(None).is_err());
        assert!(parse_u64(Some(&bulk("-1"))).is_err());
    }

    #[test]
    fn leases_are_whole_milliseconds_at_least_one() {
        assert_eq!(lease_ms(Duration::ZERO), 1);
        assert_eq!(lease_ms(Duration::from_micros(1)), 1);
        assert_eq!(lease_ms(Duration::from_micros(1001)), 2);
        assert_eq!(lease_ms(Duration::from_secs(30)), 30_000);
        assert_eq!(lease_ms(Duration::MAX), MAX_LEASE_MS);
    }

    /// What Redis Cluster hashes of `key`: the part between the first `{` and the next `}`
    /// when that is not empty, else the whole key.
    fn hashed(key: &str) -> &str {
        key.find('{')
            .and_then(|open| {
                let rest = &key[open + 1..];
                rest.find('}')
                    .filter(|&close| close > 0)
                    .map(|close| &rest[..close])
            })
            .unwrap_or(key)
    }

    #[test]
    fn prefixes_with_an_empty_hash_tag_are_refused() {
        // Each of these, accepted, would split a session's keys across slots.
        for bad in ["{}", "app:{}:", "{}{x}:", "a}b{}"] {
            let (record, lock) = session_keys(bad, "ab12");
            assert_ne!(hashed(&record), hashed(&lock), "{bad}");
            let error = check_prefix(bad).expect_err(bad);
            assert_eq!(error.kind(), StoreErrorKind::InvalidInput, "{bad}");
            assert!(error.to_string().contains("empty hash tag"), "{error}");
        }
        // Without a `{`: the tag is the session id.
        for good in [
            "",
            "tower-cognito:bff:",
            "myapp:bff:",
            "a}b:",
            "a b:[x]:(y):<z>:",
            "ü:",
        ] {
            check_prefix(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            let (record, lock) = session_keys(good, "ab12");
            assert_eq!((hashed(&record), hashed(&lock)), ("ab12", "ab12"), "{good}");
        }
        // With one: one tag for both keys still, the prefix's own (every session in one slot)
        // or one that runs into the id.
        for (good, tag) in [
            ("{app}:", "app"),
            ("x:{app}:{}", "app"),
            ("{x:", "x:{ab12"),
            ("a{b}{", "b"),
        ] {
            check_prefix(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            let (record, lock) = session_keys(good, "ab12");
            assert_eq!((hashed(&record), hashed(&lock)), (tag, tag), "{good}");
        }
    }

    #[test]
    fn both_keys_carry_the_session_id_as_hash_tag() {
        assert_eq!(
            session_keys("tower-cognito:bff:", "ab12"),
            (
                "tower-cognito:bff:{ab12}".to_owned(),
                "tower-cognito:bff:{ab12}:lock".to_owned()
            )
        );
    }
}
