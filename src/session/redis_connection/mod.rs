//! The connection every Redis-backed store of the crate shares: one server or a Redis Cluster,
//! Lua scripts run as `EVALSHA` (with `EVAL` when the node answers `NOSCRIPT`), and the optional
//! `WAIT` for replicas after each write.
//!
//! # One server or a cluster
//!
//! [`connect`] opens the URL it is given and asks the server `INFO cluster`: a node that says
//! `cluster_enabled:1` (a node of a Redis Cluster, or the configuration endpoint of a managed
//! one, which resolves to a node) makes the store use redis-rs's cluster client with that URL
//! as its seed, so one address is enough. [`connect_cluster`] takes several seeds and always
//! uses the cluster client. The cluster client learns the slot map from the seeds, sends each
//! command to the primary owning its key's slot, follows `MOVED` (and refreshes the map) and
//! `ASK` (with `ASKING`), and retries a few times, quickly, on `TRYAGAIN`, `CLUSTERDOWN` and
//! lost connections. Each script touches keys of one slot only, so it stays one round trip.
//!
//! # A single server that is down
//!
//! On one server, redis-rs's connection manager keeps the connection and, after a failure,
//! makes one new connection attempt, which the requests that come meanwhile wait for (a
//! dropped idle connection costs them a round trip, not an error). When that attempt fails,
//! the server is taken for down: requests fail at once with [`StoreErrorKind::Unavailable`]
//! (a refused connection on loopback is known in microseconds), never waiting for a reconnect,
//! while one background task tries again, one attempt at a time,
//! [`FIRST_RETRY`](single::FIRST_RETRY) after the failure and then with the pause doubling up
//! to [`LAST_RETRY`](single::LAST_RETRY); its first success (a new connection that answers
//! `PING`) lets requests through again. A server that is up but slow is
//! not taken for down: its answers are cut by the caller's timeout, as before.
//! [`RedisConnection::reach`] (for explicit calls such as a revocation) asks the task for an
//! attempt right away and waits for it. The cluster client has reconnects of its own (below).
//!
//! # Scripts on many nodes
//!
//! The scripts are loaded at connect time on every node (`SCRIPT LOAD` goes to all of them on a
//! cluster, replicas included, so a promoted replica knows them). A node that answers `NOSCRIPT`
//! anyway (restarted, `SCRIPT FLUSH`, a node added later) gets the call again as `EVAL` with the
//! script's text, which runs it and caches it on that node: the fallback is routed like the call
//! itself, to the node owning the key.
//!
//! # WAIT
//!
//! With [`ReplicaWait`] set, every call that writes is sent as a pipeline of the command and
//! `WAIT numreplicas timeout`, on the connection (hence the node) that ran the command, so the
//! `WAIT` covers that write. A write acknowledged by fewer replicas than asked within the timeout
//! is reported as [`StoreErrorKind::Unavailable`]: it is on the primary, but a failover before
//! it reaches a replica may lose it.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Script, ServerErrorKind, ToRedisArgs, Value,
};

use super::{StoreError, StoreErrorKind};

mod cluster;
mod connect;
mod single;

use cluster::Cluster;
pub(crate) use connect::{connect, connect_cluster};
use single::Single;

/// How long a connection attempt to one node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one node may take to answer (the verifier's store timeout is normally much shorter).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A Lua script and its text, for the `EVAL` fallback on `NOSCRIPT`.
pub(crate) struct Lua {
    code: String,
    script: Script,
}

impl Lua {
    pub(crate) fn new(code: String) -> Self {
        let script = Script::new(&code);
        Self { code, script }
    }

    /// A call of this script on `keys` (all in one cluster slot).
    pub(crate) fn call<K: ToRedisArgs>(&self, keys: &[K]) -> Call<'_> {
        Call {
            lua: self,
            keys: keys.iter().flat_map(ToRedisArgs::to_redis_args).collect(),
            args: Vec::new(),
        }
    }
}

/// A prepared script call: keys and arguments.
pub(crate) struct Call<'a> {
    lua: &'a Lua,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl Call<'_> {
    /// Adds an argument (`ARGV`).
    #[must_use]
    pub(crate) fn arg(mut self, arg: impl ToRedisArgs) -> Self {
        self.args.extend(arg.to_redis_args());
        self
    }

    /// `EVALSHA sha ...`, or `EVAL code ...` when `with_code`.
    fn cmd(&self, with_code: bool) -> Cmd {
        let mut cmd = if with_code {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(&self.lua.code);
            cmd
        } else {
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(self.lua.script.get_hash());
            cmd
        };
        cmd.arg(self.keys.len()).arg(&self.keys).arg(&self.args);
        cmd
    }
}

/// The option to wait, after each write, until `replicas` replicas acknowledged it or `timeout`
/// passed (`WAIT replicas timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReplicaWait {
    replicas: u32,
    timeout_ms: u64,
}

impl ReplicaWait {
    /// `None` for zero replicas (nothing to wait for). The timeout is rounded up to whole
    /// milliseconds, at least one (`WAIT n 0` would block until the replicas answer) and at most
    /// a minute.
    pub(crate) fn new(replicas: u32, timeout: Duration) -> Option<Self> {
        let timeout_ms = timeout.as_nanos().div_ceil(1_000_000).clamp(1, 60_000) as u64;
        (replicas > 0).then_some(Self {
            replicas,
            timeout_ms,
        })
    }

    fn cmd(&self) -> Cmd {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(self.replicas).arg(self.timeout_ms);
        cmd
    }
}

/// One server (through a connection manager, failing fast while the server is down) or a
/// Redis Cluster (through the cluster client, which reconnects to each node and refreshes its
/// slot map).
#[derive(Clone)]
enum Conn {
    Single(Arc<Single>),
    Cluster(Arc<Cluster>),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            // Borrowed for the call, not cloned: the future lives no longer than `self`.
            Conn::Single(single) => {
                let single: &Arc<Single> = single;
                Box::pin(async move {
                    let answer = single.manager().req_packed_command(cmd).await;
                    single.answered(&answer);
                    answer
                })
            }
            Conn::Cluster(cluster) => {
                let cluster: &Arc<Cluster> = cluster;
                Box::pin(async move {
                    let watch = cluster.start();
                    let mut conn = ClusterConnection::clone(&cluster.conn.load());
                    let answer = conn.req_packed_command(cmd).await;
                    watch.answered();
                    answer
                })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(single) => {
                let single: &Arc<Single> = single;
                Box::pin(async move {
                    let answer = single
                        .manager()
                        .req_packed_commands(pipeline, offset, count)
                        .await;
                    single.answered(&answer);
                    answer
                })
            }
            Conn::Cluster(cluster) => {
                let cluster: &Arc<Cluster> = cluster;
                Box::pin(async move {
                    let watch = cluster.start();
                    let mut conn = ClusterConnection::clone(&cluster.conn.load());
                    let answer = conn.req_packed_commands(pipeline, offset, count).await;
                    watch.answered();
                    answer
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.manager.load().get_db(),
            Conn::Cluster(_) => 0,
        }
    }
}

/// The shared connection of a Redis-backed store. Cloning is cheap and shares it.
#[derive(Clone)]
pub(crate) struct RedisConnection {
    conn: Conn,
    wait: Option<ReplicaWait>,
    /// `host:port/db` of the server, or `cluster via host:port,...` (the seeds): never a password.
    server: Arc<str>,
}

impl RedisConnection {
    /// Waits for replicas after each write from now on (`None`: not).
    pub(crate) fn set_wait(&mut self, wait: Option<ReplicaWait>) {
        self.wait = wait;
    }

    /// `Err` at once while a single server is down (see the module docs).
    fn ready(&self) -> Result<(), StoreError> {
        match &self.conn {
            Conn::Single(single) if single.down.load(Ordering::Acquire) => Err(single.down_error()),
            _ => Ok(()),
        }
    }

    /// For an explicit call (a revocation) that should reach the server if it can: while a
    /// single server is down, asks for a connection attempt now and waits for it (the caller
    /// bounds the wait), instead of failing at once as requests do.
    pub(crate) async fn reach(&self) -> Result<(), StoreError> {
        match &self.conn {
            Conn::Single(single) => single.reach().await,
            Conn::Cluster(_) => Ok(()),
        }
    }

    /// Runs `call`. `wrote` tells, from the script's answer, whether it wrote (or may have
    /// written) something: with [`ReplicaWait`] set, such an answer stands only once enough
    /// replicas acknowledged it.
    pub(crate) async fn eval(
        &self,
        call: &Call<'_>,
        wrote: impl Fn(&Value) -> bool + Sync,
    ) -> Result<Value, StoreError> {
        self.ready()?;
        let answer = self.run(call.cmd(false), &wrote).await;
        match answer {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.run(call.cmd(true), &wrote).await
            }
            other => other,
        }
        .map_err(store_error)?
        .map_err(ShortAck::error)
    }

    /// Sends one command that reads.
    pub(crate) async fn read(&self, cmd: &Cmd) -> Result<Value, StoreError> {
        self.ready()?;
        cmd.query_async(&mut self.conn.clone())
            .await
            .map_err(store_error)
    }

    /// Sends one command that writes (so waits for replicas when asked to).
    #[cfg_attr(not(feature = "refresh"), allow(dead_code))]
    pub(crate) async fn write(&self, cmd: Cmd) -> Result<Value, StoreError> {
        self.ready()?;
        self.run(cmd, &|_: &Value| true)
            .await
            .map_err(store_error)?
            .map_err(ShortAck::error)
    }

    /// `cmd`, alone or followed by `WAIT`; the inner error is a write acknowledged by too few
    /// replicas.
    async fn run(
        &self,
        cmd: Cmd,
        wrote: &(dyn Fn(&Value) -> bool + Sync),
    ) -> Result<Result<Value, ShortAck>, RedisError> {
        let mut conn = self.conn.clone();
        let Some(wait) = self.wait else {
            return cmd.query_async(&mut conn).await.map(Ok);
        };
        let mut pipe = redis::pipe();
        pipe.add_command(cmd).add_command(wait.cmd());
        let (answer, acked): (Value, i64) = pipe.query_async(&mut conn).await?;
        if wrote(&answer) && acked < i64::from(wait.replicas) {
            Ok(Err(ShortAck { acked, wait }))
        } else {
            Ok(Ok(answer))
        }
    }
}

/// A write acknowledged by `acked` replicas only, fewer than `wait` asks for.
struct ShortAck {
    acked: i64,
    wait: ReplicaWait,
}

impl ShortAck {
    fn error(self) -> StoreError {
        StoreError::new(
            StoreErrorKind::Unavailable,
            format!(
                "the write reached {} of the {} replicas asked for within {} ms",
                self.acked, self.wait.replicas, self.wait.timeout_ms
            ),
        )
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.server)
    }
}

impl fmt::Display for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.server)
    }
}

fn unavailable(e: RedisError) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, e)
}

/// Maps a Redis failure to a store error.
pub(crate) fn store_error(error: RedisError) -> StoreError {
    let kind = match error.kind() {
        ErrorKind::UnexpectedReturnType | ErrorKind::Parse => StoreErrorKind::Corrupt,
        _ if error.code() == Some("WRONGTYPE") => StoreErrorKind::Corrupt,
        _ if error.is_timeout() => StoreErrorKind::Timeout,
        _ => StoreErrorKind::Unavailable,
    };
    StoreError::new(kind, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_wait_bounds() {
        assert_eq!(ReplicaWait::new(0, Duration::from_secs(1)), None);
        let w = ReplicaWait::new(1, Duration::ZERO).unwrap();
        assert_eq!((w.replicas, w.timeout_ms), (1, 1));
        let w = ReplicaWait::new(2, Duration::from_micros(1500)).unwrap();
        assert_eq!((w.replicas, w.timeout_ms), (2, 2));
        let w = ReplicaWait::new(1, Duration::MAX).unwrap();
        assert_eq!(w.timeout_ms, 60_000);
    }

    #[test]
    fn calls_are_evalsha_then_eval() {
        let lua = Lua::new("return KEYS[1]".to_owned());
        let call = lua.call(&["k"]).arg("a").arg(7);
        let packed = |cmd: Cmd| String::from_utf8(cmd.get_packed_command()).unwrap();
        let sha = packed(call.cmd(false));
        assert!(sha.contains("EVALSHA") && sha.contains(lua.script.get_hash()));
        assert!(
            sha.ends_with("$1\r\n1\r\n$1\r\nk\r\n$1\r\na\r\n$1\r\n7\r\n"),
            "{sha:?}"
        );
        let eval = packed(call.cmd(true));
        assert!(eval.contains("\r\nEVAL\r\n") && eval.contains("return KEYS[1]"));
    }
}
