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
//! while one background task tries again, one attempt at a time, [`FIRST_RETRY`] after the
//! failure and then with the pause doubling up to [`LAST_RETRY`]; its first success (a new
//! connection that answers `PING`) lets requests through again. A server that is up but slow is
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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{
    Client, Cmd, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, Script,
    ServerErrorKind, ToRedisArgs, Value,
};

use super::{StoreError, StoreErrorKind};

/// How long a connection attempt to one node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one node may take to answer (the verifier's store timeout is normally much shorter).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The pause before the first background reconnect attempt to a single server that is down;
/// it doubles after each failed attempt, up to [`LAST_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(20);

/// The longest pause between two reconnect attempts: a server that comes back is found within
/// this (plus one connection).
const LAST_RETRY: Duration = Duration::from_millis(250);

/// How long one reconnect attempt (a connection and a `PING`) may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Connection attempts at connect time, with [`FIRST_RETRY`] doubling between them.
const CONNECT_ATTEMPTS: u32 = 3;

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
            Conn::Single(c) => {
                let single = c.clone();
                Box::pin(async move {
                    let answer = single.manager().req_packed_command(cmd).await;
                    single.answered(&answer);
                    answer
                })
            }
            Conn::Cluster(c) => {
                let cluster = c.clone();
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
            Conn::Single(c) => {
                let single = c.clone();
                Box::pin(async move {
                    let answer = single
                        .manager()
                        .req_packed_commands(pipeline, offset, count)
                        .await;
                    single.answered(&answer);
                    answer
                })
            }
            Conn::Cluster(c) => {
                let cluster = c.clone();
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

/// One Redis server: redis-rs's connection manager, and whether the server is down.
///
/// The manager is made with no retries of its own: after a connection failure it makes ONE new
/// attempt, which the requests that come meanwhile wait for. A failure that points at the
/// connection ([`Single::answered`]) starts the reconnect task ([`reconnect`]), which first
/// waits for that attempt; when it fails, the server is down: requests are answered at once
/// ([`RedisConnection::ready`]) and only the task connects, one attempt at a time with a
/// growing pause, each with a new manager, until one answers `PING`.
struct Single {
    client: Client,
    config: ConnectionManagerConfig,
    /// The manager requests use; replaced by the one that reconnected.
    manager: ArcSwap<ConnectionManager>,
    /// An attempt to reach the server failed and none succeeded since. Only the reconnect
    /// task sets it, and it runs as long as this is set.
    down: AtomicBool,
    /// The reconnect task runs (there is one at most).
    reconnecting: AtomicBool,
    /// The reconnect task's attempts, started and finished (what [`Single::reach`] waits on).
    attempts: tokio::sync::watch::Sender<Attempts>,
    /// Asks the reconnect task for an attempt now instead of after its pause.
    wake: tokio::sync::Notify,
    /// Why the last attempt failed (redis-rs's message: never a password).
    last_error: ArcSwapOption<String>,
    /// `host:port/db`.
    server: Arc<str>,
}

/// How many reconnect attempts were started and finished.
#[derive(Debug, Clone, Copy, Default)]
struct Attempts {
    started: u64,
    finished: u64,
}

impl Single {
    fn manager(&self) -> ConnectionManager {
        ConnectionManager::clone(&self.manager.load())
    }

    /// The error of a request made while the server is down.
    fn down_error(&self) -> StoreError {
        let last = self.last_error.load_full();
        let last = last.as_deref().map_or("", String::as_str);
        StoreError::new(
            StoreErrorKind::Unavailable,
            format!(
                "{}: not reachable ({last}); reconnecting in the background",
                self.server
            ),
        )
    }

    /// Looks at a request's answer: an error that says the connection is lost, or could not be
    /// made, starts the reconnect task (unless it runs). A timeout does not: a slow server is
    /// not a lost one, and the caller's timeout deals with it.
    fn answered<T>(self: &Arc<Self>, answer: &Result<T, RedisError>) {
        let Err(error) = answer else {
            return;
        };
        if error.is_timeout() || !(error.is_unrecoverable_error() || error.is_io_error()) {
            return;
        }
        if self.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(reconnect(Arc::downgrade(self)));
            }
            Err(_) => self.reconnecting.store(false, Ordering::Release),
        }
    }

    /// For an explicit call: when the server is down, asks the reconnect task for an attempt
    /// now, and waits until an attempt started after this call ended. `Ok` once the server
    /// answers again.
    async fn reach(&self) -> Result<(), StoreError> {
        if !self.down.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut attempts = self.attempts.subscribe();
        let target = attempts.borrow_and_update().started + 1;
        self.wake.notify_one();
        loop {
            if !self.down.load(Ordering::Acquire) {
                return Ok(());
            }
            if attempts.borrow_and_update().finished >= target {
                return Err(self.down_error());
            }
            if attempts.changed().await.is_err() {
                return Err(self.down_error());
            }
        }
    }

    /// The first attempt: `PING` through the current manager, which waits for the connection
    /// attempt that the failure started.
    async fn ping_current(&self) -> Result<(), String> {
        ping(&mut self.manager()).await
    }

    /// A later attempt: a new manager (one connection attempt), used from now on if it
    /// answers `PING`.
    async fn replace(&self) -> Result<(), String> {
        let attempt = async {
            let mut manager =
                ConnectionManager::new_with_config(self.client.clone(), self.config.clone())
                    .await
                    .map_err(|e| e.to_string())?;
            ping(&mut manager).await?;
            Ok::<_, String>(manager)
        };
        let manager = tokio::time::timeout(ATTEMPT_TIMEOUT, attempt)
            .await
            .map_err(|_| "connection attempt timed out".to_owned())??;
        self.manager.store(Arc::new(manager));
        Ok(())
    }
}

/// `PING` within [`ATTEMPT_TIMEOUT`].
async fn ping(manager: &mut ConnectionManager) -> Result<(), String> {
    match tokio::time::timeout(
        ATTEMPT_TIMEOUT,
        redis::cmd("PING").query_async::<Value>(manager),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("PING timed out".to_owned()),
    }
}

/// The reconnect task of a single server: runs until an attempt succeeds (or the store is
/// dropped). The first attempt waits for the manager's own; each failed one marks the server
/// down and pauses ([`FIRST_RETRY`], doubling up to [`LAST_RETRY`]) unless woken.
async fn reconnect(single: Weak<Single>) {
    /// Should the task end without an answer (its runtime shut down), requests go back to the
    /// manager, and the next failure starts a new task.
    struct Reset(Option<Weak<Single>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            if let Some(single) = self.0.take().and_then(|s| s.upgrade()) {
                single.reconnecting.store(false, Ordering::Release);
                single.down.store(false, Ordering::Release);
            }
        }
    }
    let mut reset = Reset(Some(single.clone()));
    let mut pause = FIRST_RETRY;
    let mut first = true;
    loop {
        let Some(single) = single.upgrade() else {
            return;
        };
        single.attempts.send_modify(|a| a.started += 1);
        let result = if first {
            single.ping_current().await
        } else {
            single.replace().await
        };
        first = false;
        match result {
            Ok(()) => {
                single.reconnecting.store(false, Ordering::Release);
                let was_down = single.down.swap(false, Ordering::AcqRel);
                single.attempts.send_modify(|a| a.finished += 1);
                if was_down {
                    tracing::info!(server = %single.server, "Redis answers again: reconnected");
                }
                reset.0 = None;
                return;
            }
            Err(error) => {
                single.last_error.store(Some(Arc::new(error.clone())));
                if single.down.swap(true, Ordering::AcqRel) {
                    tracing::debug!(server = %single.server, %error, "Redis reconnect attempt failed");
                } else {
                    tracing::warn!(
                        server = %single.server,
                        %error,
                        "Redis unreachable: requests fail at once while it reconnects in the background"
                    );
                }
                single.attempts.send_modify(|a| a.finished += 1);
            }
        }
        let _ = tokio::time::timeout(pause, single.wake.notified()).await;
        pause = (pause * 2).min(LAST_RETRY);
    }
}

/// The cluster client and its current connection, replaced by a fresh one when it stalls.
///
/// redis-rs's cluster connection can stop answering altogether (seen here after a slot
/// migration under load: its slot refresh waits forever for a lock, and every request queues
/// behind it). A connection that has had requests waiting and answered nothing, not even an
/// error, for [`STALL`] is taken for stuck: a new one is made from the seeds in the background
/// (at most once per [`STALL`]), and the requests that come after use it.
struct Cluster {
    client: ClusterClient,
    conn: ArcSwap<ClusterConnection>,
    started: Instant,
    /// Requests sent and not yet answered (or given up by their caller).
    in_flight: AtomicUsize,
    /// Milliseconds since `started` of the last answer, or of the moment requests began to
    /// wait after none did.
    last_answer_ms: AtomicU64,
    /// Milliseconds since `started` of the last replacement begun.
    last_rebuild_ms: AtomicU64,
}

/// How long a cluster connection may leave requests unanswered before it is replaced.
const STALL: Duration = Duration::from_secs(1);

impl Cluster {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Counts a request in until the guard drops; replaces a stalled connection first.
    fn start(self: &Arc<Self>) -> InFlight {
        let now = self.now_ms();
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.last_answer_ms.store(now, Ordering::Release);
        } else if now.saturating_sub(self.last_answer_ms.load(Ordering::Acquire))
            > STALL.as_millis() as u64
        {
            self.rebuild(now);
        }
        InFlight {
            cluster: self.clone(),
        }
    }

    fn rebuild(self: &Arc<Self>, now: u64) {
        let last = self.last_rebuild_ms.load(Ordering::Acquire);
        if (last != 0 && now.saturating_sub(last) < STALL.as_millis() as u64)
            || self
                .last_rebuild_ms
                .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        tracing::warn!("the Redis Cluster connection stopped answering: making a new one");
        let cluster = self.clone();
        runtime.spawn(async move {
            match tokio::time::timeout(RESPONSE_TIMEOUT, cluster.client.get_async_connection())
                .await
            {
                Ok(Ok(conn)) => {
                    cluster.conn.store(Arc::new(conn));
                    cluster
                        .last_answer_ms
                        .store(cluster.now_ms(), Ordering::Release);
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot reconnect to the Redis Cluster"),
                Err(_) => tracing::warn!("cannot reconnect to the Redis Cluster: timed out"),
            }
        });
    }
}

/// One request of a [`Cluster`] connection, counted out on drop (also when its caller gives up
/// waiting: that is no answer).
struct InFlight {
    cluster: Arc<Cluster>,
}

impl InFlight {
    /// The connection answered (a value or an error).
    fn answered(self) {
        self.cluster
            .last_answer_ms
            .store(self.cluster.now_ms(), Ordering::Release);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.cluster.in_flight.fetch_sub(1, Ordering::AcqRel);
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

/// Connects to `url` (an error of kind `InvalidInput` when it is not a Redis URL, `Unavailable`
/// when the server cannot be reached after a few quick retries), switches to the cluster client
/// when the server is a cluster node, and loads `scripts`, so the first calls need no fallback
/// and a server that refuses scripts is found at start.
pub(crate) async fn connect(url: &str, scripts: &[&Lua]) -> Result<RedisConnection, StoreError> {
    let client = Client::open(url).map_err(|e| StoreError::new(StoreErrorKind::InvalidInput, e))?;
    let info = client.get_connection_info();
    let server = format!("{}/{}", info.addr(), info.redis_settings().db());
    // No retries inside the manager: a reconnect is one attempt, and while the server is down
    // the reconnect task (not the requests) makes the next ones.
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let (db, addr) = (info.redis_settings().db(), info.addr().to_string());
    let mut pause = FIRST_RETRY;
    let mut attempt = 1;
    let opened = loop {
        match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
            Err(e) if e.is_io_error() && attempt < CONNECT_ATTEMPTS => {
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            other => break other,
        }
    };
    let mut conn = opened.map_err(|e| {
        let text = e.to_string();
        if text.contains("SELECT is not allowed in cluster mode") {
            StoreError::new(
                StoreErrorKind::InvalidInput,
                format!("{addr}: a Redis Cluster has database 0 only, not {db}"),
            )
        } else if text.contains("DB index is out of range") {
            // Also what a Valkey 9 cluster node answers (it may have several databases).
            StoreError::new(
                StoreErrorKind::InvalidInput,
                format!(
                    "{addr}: the server has no database {db} (a Redis Cluster has database 0 \
                     only)"
                ),
            )
        } else {
            unavailable(e)
        }
    })?;
    if cluster_enabled(&mut conn).await? {
        drop(conn);
        return connect_cluster(&[url], scripts).await;
    }
    let server: Arc<str> = Arc::from(server);
    let mut conn = Conn::Single(Arc::new(Single {
        client,
        config,
        manager: ArcSwap::from_pointee(conn),
        down: AtomicBool::new(false),
        reconnecting: AtomicBool::new(false),
        attempts: tokio::sync::watch::Sender::new(Attempts::default()),
        wake: tokio::sync::Notify::new(),
        last_error: ArcSwapOption::empty(),
        server: server.clone(),
    }));
    load(&mut conn, scripts).await?;
    Ok(RedisConnection {
        conn,
        wait: None,
        server,
    })
}

/// Connects to the Redis Cluster that any of `nodes` (URLs) belongs to, and loads `scripts` on
/// every node.
pub(crate) async fn connect_cluster<S: AsRef<str>>(
    nodes: &[S],
    scripts: &[&Lua],
) -> Result<RedisConnection, StoreError> {
    let invalid = |what: String| StoreError::new(StoreErrorKind::InvalidInput, what);
    let mut seeds = Vec::with_capacity(nodes.len());
    let mut addrs = Vec::with_capacity(nodes.len());
    for node in nodes {
        let info = node
            .as_ref()
            .into_connection_info()
            .map_err(|e| StoreError::new(StoreErrorKind::InvalidInput, e))?;
        if info.redis_settings().db() != 0 {
            return Err(invalid(format!(
                "{}: a Redis Cluster has database 0 only, not {}",
                info.addr(),
                info.redis_settings().db()
            )));
        }
        addrs.push(info.addr().to_string());
        seeds.push(info);
    }
    if seeds.is_empty() {
        return Err(invalid("no Redis Cluster node given".to_owned()));
    }
    let server = format!("cluster via {}", addrs.join(","));
    let client = ClusterClientBuilder::new(seeds)
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        // Redirections and TRYAGAIN count as retries too; the waits between them are short,
        // the verifier's store timeout bounds the whole.
        .retries(6)
        .min_retry_wait(10)
        .max_retry_wait(500)
        .build()
        .map_err(|e| StoreError::new(StoreErrorKind::InvalidInput, e))?;
    let conn = client.get_async_connection().await.map_err(|e| {
        if e.to_string().contains("cluster support disabled") {
            invalid(format!("{server}: not a Redis Cluster node ({e})"))
        } else {
            unavailable(e)
        }
    })?;
    let mut conn = Conn::Cluster(Arc::new(Cluster {
        client,
        conn: ArcSwap::from_pointee(conn),
        started: Instant::now(),
        in_flight: AtomicUsize::new(0),
        last_answer_ms: AtomicU64::new(0),
        last_rebuild_ms: AtomicU64::new(0),
    }));
    load(&mut conn, scripts).await?;
    Ok(RedisConnection {
        conn,
        wait: None,
        server: Arc::from(server),
    })
}

/// Whether the server says `cluster_enabled:1`. A server that refuses `INFO` (renamed, or not
/// allowed to this user) is taken for a single server.
async fn cluster_enabled(conn: &mut ConnectionManager) -> Result<bool, StoreError> {
    match redis::cmd("INFO")
        .arg("cluster")
        .query_async::<String>(conn)
        .await
    {
        Ok(info) => Ok(info.lines().any(|l| l.trim() == "cluster_enabled:1")),
        Err(e) if matches!(e.kind(), ErrorKind::Server(_)) => {
            tracing::debug!(error = %e, "INFO cluster refused: taking the Redis server for a single node");
            Ok(false)
        }
        Err(e) => Err(unavailable(e)),
    }
}

async fn load(conn: &mut Conn, scripts: &[&Lua]) -> Result<(), StoreError> {
    for lua in scripts {
        lua.script.load_async(conn).await.map_err(unavailable)?;
    }
    Ok(())
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
