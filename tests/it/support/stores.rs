//! Session stores on the shared test servers (`support::stores`, with the `redis` or `postgres`
//! feature).
//!
//! - Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`): every test uses a key prefix of
//!   its own ([`redis_prefix`], [`unique_redis_prefix`]) and deletes its keys at the end
//!   ([`delete_redis_keys`]).
//! - PostgreSQL at `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`): every
//!   test uses a table of its own ([`postgres_table`], [`unique_postgres_table`]) and drops it
//!   at the end ([`drop_table`]).

#[cfg(feature = "postgres")]
use super::certs::ServerCert;
#[cfg(feature = "postgres")]
use tower_cognito::session::PostgresStore;
#[cfg(feature = "redis")]
use tower_cognito::session::RedisStore;

use super::unique;

// ---------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------

/// `REDIS_URL`, default `redis://127.0.0.1:6379`.
#[cfg(feature = "redis")]
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The key prefix of the test namespace `ns`: `tower-cognito-test:{ns}:`.
#[cfg(feature = "redis")]
pub fn redis_prefix(ns: &str) -> String {
    format!("tower-cognito-test:{ns}:")
}

/// A key prefix no other test (of this run, a parallel run or an earlier one) uses.
#[cfg(feature = "redis")]
pub fn unique_redis_prefix(what: &str) -> String {
    redis_prefix(&unique(what))
}

/// A [`RedisStore`] on `REDIS_URL` whose keys all start with `prefix`.
#[cfg(feature = "redis")]
pub async fn redis_store(prefix: &str) -> RedisStore {
    let url = redis_url();
    RedisStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url} (REDIS_URL): {e}"))
        .with_prefix(prefix)
}

/// A plain connection to `REDIS_URL`, for what the store does not do.
#[cfg(feature = "redis")]
pub async fn redis_connection() -> ::redis::aio::MultiplexedConnection {
    let url = redis_url();
    ::redis::Client::open(url.as_str())
        .unwrap_or_else(|e| panic!("redis client for {url}: {e}"))
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connect to {url} (REDIS_URL): {e}"))
}

/// Deletes every key under `prefix` (some tests use TTLs of a century or more).
#[cfg(feature = "redis")]
pub async fn delete_redis_keys(prefix: &str) {
    let mut conn = redis_connection().await;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        if !keys.is_empty() {
            let () = ::redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .expect("DEL");
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

/// `DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`.
#[cfg(feature = "postgres")]
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The table of the test namespace `ns`: `tc_{ns}` in lower case, at most 48 bytes.
#[cfg(feature = "postgres")]
pub fn postgres_table(ns: &str) -> String {
    let mut name = format!("tc_{}", ns.to_ascii_lowercase());
    name.truncate(48);
    name
}

/// A table no other test (of this run, a parallel run or an earlier one) uses.
#[cfg(feature = "postgres")]
pub fn unique_postgres_table(what: &str) -> String {
    postgres_table(&unique(what))
}

/// A [`PostgresStore`] on `DATABASE_URL` using `table` (its schema is not created).
#[cfg(feature = "postgres")]
pub async fn postgres_store(table: &str) -> PostgresStore {
    let url = database_url();
    PostgresStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url} (DATABASE_URL): {e}"))
        .with_table(table)
        .expect("table name")
}

/// [`postgres_store`] with its schema created.
#[cfg(feature = "postgres")]
pub async fn postgres_store_with_schema(table: &str) -> PostgresStore {
    let store = postgres_store(table).await;
    store.create_schema().await.expect("create schema");
    store
}

/// A plain connection to `DATABASE_URL`, for what the store does not do (dropping tables,
/// locking them, writing bad rows). Needs a tokio runtime: the connection runs in a task.
#[cfg(feature = "postgres")]
pub async fn postgres_client() -> tokio_postgres::Client {
    let url = database_url();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url} (DATABASE_URL): {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Drops `table` if it exists.
#[cfg(feature = "postgres")]
pub async fn drop_table(table: &str) {
    postgres_client()
        .await
        .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
        .await
        .expect("drop table");
}

// ---------------------------------------------------------------------------
// Servers of the test's own, on spare ports (tests/it/store_outages.rs, benches/load.rs)
// ---------------------------------------------------------------------------
//
// The shared servers on 6379 and 5432 are never stopped: a test that kills its store starts one
// of these. Each is a guard: dropping it (also when the test panics) kills the server and
// removes its directory.

/// A spare TCP port on 127.0.0.1 (bound, then released: someone else may take it before it is
/// used, so the servers below retry with another one).
pub fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A fresh directory of this test under the system temp dir.
fn own_dir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tower-cognito-{}", unique(what)));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Whether something on `127.0.0.1:port` answers `PING` with `+PONG` within a second (a Redis
/// that is still loading its data answers `-LOADING`: not yet).
pub async fn redis_pong(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut buf = [0u8; 7];
        stream.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(&buf == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(1), attempt).await,
        Ok(Ok(true))
    )
}

/// A `redis-server` of the test's own on a spare loopback port, with a directory of its own.
/// [`start_persistent`](Self::start_persistent) persists every write before answering it
/// (`--appendonly yes --appendfsync always`), so a restart on the same port and directory must
/// bring back every acknowledged write; [`start_volatile`](Self::start_volatile) keeps nothing
/// and allows `DEBUG` (for `DEBUG SLEEP`). [`kill`](Self::kill) is SIGKILL (no shutdown, no
/// final save). Killed, and its directory removed, on drop.
#[cfg(feature = "redis")]
pub struct OwnRedis {
    port: u16,
    dir: std::path::PathBuf,
    persistent: bool,
    child: Option<std::process::Child>,
}

#[cfg(feature = "redis")]
impl OwnRedis {
    /// Starts a persistent `redis-server` on a spare port and waits until it answers.
    pub async fn start_persistent() -> OwnRedis {
        Self::start(true).await
    }

    /// Starts a `redis-server` that keeps nothing and allows `DEBUG`, on a spare port.
    pub async fn start_volatile() -> OwnRedis {
        Self::start(false).await
    }

    async fn start(persistent: bool) -> OwnRedis {
        let mut server = OwnRedis {
            port: 0,
            dir: own_dir("redis"),
            persistent,
            child: None,
        };
        let mut last = String::new();
        // The spare port may be taken before redis-server binds it: retry with another.
        for _ in 0..5 {
            server.port = spare_port();
            match server.spawn().await {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("cannot start redis-server: {last}");
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its data directory (the append-only files), the same across restarts.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The size in bytes of the append-only files written so far.
    pub fn aof_bytes(&self) -> u64 {
        fn size(path: &std::path::Path) -> u64 {
            match std::fs::metadata(path) {
                Ok(m) if m.is_dir() => std::fs::read_dir(path)
                    .map(|entries| entries.flatten().map(|e| size(&e.path())).sum())
                    .unwrap_or(0),
                Ok(m) if path.extension().is_some_and(|x| x == "aof") => m.len(),
                _ => 0,
            }
        }
        size(&self.dir)
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let dir = self.dir.display().to_string();
        let log = self.dir.join("redis.log").display().to_string();
        let mut child = std::process::Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--daemonize", "no"])
            .args(["--dir", &dir, "--logfile", &log, "--save", ""])
            .args(if self.persistent {
                ["--appendonly", "yes", "--appendfsync", "always"]
            } else {
                // DEBUG SLEEP is how tests make this server slow.
                ["--appendonly", "no", "--enable-debug-command", "local"]
            })
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn redis-server: {e}"))?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(3).collect();
                return Err(format!(
                    "redis-server on port {port} exited ({status}): {tail:?}"
                ));
            }
            if redis_pong(self.port).await {
                self.child = Some(child);
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("redis-server on port {port} does not answer"));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: the clients get no goodbye and nothing is saved beyond what is already in the
    /// append-only file. Waits for the process to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs, then starts it again on the same port with the same data
    /// directory, and waits until it answers (its data loaded).
    pub async fn restart(&mut self) {
        self.kill();
        let mut last = String::new();
        for _ in 0..50 {
            match self.spawn().await {
                Ok(()) => return,
                Err(e) => last = e,
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("cannot restart redis-server on port {}: {last}", self.port);
    }
}

#[cfg(feature = "redis")]
impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL cluster of the test's own: `initdb` into a fresh directory, a server on a spare
/// loopback port (socket directory inside it), trust authentication for `postgres`.
/// [`stop_immediate`](Self::stop_immediate) is `pg_ctl stop -m immediate` (the postmaster and
/// every backend killed at once, crash recovery at the next start). Stopped, and its directory
/// removed, on drop.
///
/// `initdb` refuses to run as root: as root the commands run as the `postgres` OS user
/// (`su postgres`), which must own the directory. The binaries are looked up in `PG_BIN`, then
/// `PATH`, then the newest `/usr/lib/postgresql/*/bin`.
#[cfg(feature = "postgres")]
pub struct OwnPostgres {
    port: u16,
    root: std::path::PathBuf,
    bin: std::path::PathBuf,
    running: bool,
}

#[cfg(feature = "postgres")]
impl OwnPostgres {
    /// Creates the cluster and starts it; panics (after cleaning up) when it cannot.
    pub async fn start() -> OwnPostgres {
        Self::start_with(None).await
    }

    /// [`start`](Self::start), with TLS only: `ssl = on` with `server`'s certificate and key,
    /// and a `pg_hba.conf` of one line, `hostssl all all 127.0.0.1/32 trust`, so a plaintext
    /// connection is refused by the server.
    pub async fn start_tls(server: ServerCert) -> OwnPostgres {
        Self::start_with(Some(server)).await
    }

    async fn start_with(tls: Option<ServerCert>) -> OwnPostgres {
        tokio::task::spawn_blocking(move || {
            let mut cluster = OwnPostgres {
                port: 0,
                root: own_dir("pg"),
                bin: pg_bin_dir(),
                running: false,
            };
            if as_root() {
                cluster.run(
                    "chown",
                    &["postgres:postgres", &cluster.root.display().to_string()],
                );
            }
            let data = cluster.data();
            cluster.pg_run(&format!(
                "{}/initdb -D {data} -A trust -U postgres -E UTF8 --no-sync",
                cluster.bin.display()
            ));
            if let Some(server) = tls {
                cluster.configure_tls(&server);
            }
            let mut last = String::new();
            for _ in 0..5 {
                cluster.port = spare_port();
                match cluster.try_start() {
                    Ok(()) => return cluster,
                    Err(e) => last = e,
                }
            }
            panic!("cannot start PostgreSQL: {last}");
        })
        .await
        .expect("start PostgreSQL")
    }

    /// Writes the certificate and key into the data directory (owned by the server's user,
    /// the key `0600`: PostgreSQL refuses a key others can read), turns TLS on and admits only
    /// `hostssl` connections from 127.0.0.1.
    fn configure_tls(&self, server: &ServerCert) {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let data = std::path::Path::new(&self.root).join("data");
        let write = |name: &str, contents: &str, mode: u32| {
            let path = data.join(name);
            std::fs::write(&path, contents)
                .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
            if as_root() {
                self.run("chown", &["postgres:postgres", &path.display().to_string()]);
            }
        };
        write("server.crt", &server.cert_pem, 0o644);
        write("server.key", &server.key_pem, 0o600);
        write("pg_hba.conf", "hostssl all all 127.0.0.1/32 trust\n", 0o600);
        let conf = data.join("postgresql.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut f| {
                f.write_all(
                    b"\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
                )
            })
            .unwrap_or_else(|e| panic!("append to {}: {e}", conf.display()));
    }

    /// A connection string for `PostgresStore::connect` (database `postgres`, user `postgres`).
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=2",
            self.port
        )
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server was started and not stopped since.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// `pg_ctl stop -m immediate`: every process killed at once, nothing flushed beyond what
    /// committed transactions already wrote to the WAL.
    pub async fn stop_immediate(&mut self) {
        let mut this = std::mem::replace(self, OwnPostgres::placeholder());
        *self = tokio::task::spawn_blocking(move || {
            this.stop_now();
            this
        })
        .await
        .expect("stop PostgreSQL");
    }

    /// Starts the server again on the same port and data directory (crash recovery included),
    /// and waits until it accepts connections.
    pub async fn start_again(&mut self) {
        let mut this = std::mem::replace(self, OwnPostgres::placeholder());
        *self = tokio::task::spawn_blocking(move || {
            let mut last = String::new();
            for _ in 0..50 {
                match this.try_start() {
                    Ok(()) => return this,
                    Err(e) => last = e,
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            panic!("cannot restart PostgreSQL on port {}: {last}", this.port);
        })
        .await
        .expect("restart PostgreSQL");
    }

    /// Stops the server (immediately), puts `server`'s certificate and key in place of the
    /// current ones, and starts it again on the same port and data directory.
    pub async fn restart_with_cert(&mut self, server: ServerCert) {
        self.stop_immediate().await;
        let this = std::mem::replace(self, OwnPostgres::placeholder());
        *self = tokio::task::spawn_blocking(move || {
            this.configure_tls(&server);
            this
        })
        .await
        .expect("replace the certificate");
        self.start_again().await;
    }

    /// An empty value to stand in while the real one is moved into a blocking task: owns no
    /// directory and no server, so dropping it does nothing.
    fn placeholder() -> OwnPostgres {
        OwnPostgres {
            port: 0,
            root: std::path::PathBuf::new(),
            bin: std::path::PathBuf::new(),
            running: false,
        }
    }

    fn data(&self) -> String {
        self.root.join("data").display().to_string()
    }

    fn try_start(&mut self) -> Result<(), String> {
        let command = format!(
            "{}/pg_ctl -D {} -l {}/server.log -w -t 30 -o '-p {} -k {} -c listen_addresses=127.0.0.1' start",
            self.bin.display(),
            self.data(),
            self.root.display(),
            self.port,
            self.root.display(),
        );
        let output = self
            .pg_command(&command)
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            self.running = true;
            Ok(())
        } else {
            let log = std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(3).collect();
            Err(format!(
                "pg_ctl start on port {}: {}{} {tail:?}",
                self.port,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn stop_now(&mut self) {
        if self.running {
            let command = format!(
                "{}/pg_ctl -D {} -m immediate -w -t 30 stop",
                self.bin.display(),
                self.data()
            );
            let _ = self.pg_command(&command).output();
            self.running = false;
        }
    }

    /// `command` run by `sh`, as `postgres` when we are root.
    fn pg_command(&self, command: &str) -> std::process::Command {
        let mut cmd = if as_root() {
            let mut cmd = std::process::Command::new("su");
            cmd.args(["-s", "/bin/sh", "postgres", "-c", command]);
            cmd
        } else {
            let mut cmd = std::process::Command::new("sh");
            cmd.args(["-c", command]);
            cmd
        };
        cmd.current_dir("/").stdin(std::process::Stdio::null());
        cmd
    }

    fn pg_run(&self, command: &str) {
        let output = self
            .pg_command(command)
            .output()
            .unwrap_or_else(|e| panic!("run {command}: {e}"));
        assert!(
            output.status.success(),
            "{command}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn run(&self, program: &str, args: &[&str]) {
        let status = std::process::Command::new(program)
            .args(args)
            .status()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(status.success(), "{program} {args:?}: {status}");
    }
}

#[cfg(feature = "postgres")]
impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if self.root.as_os_str().is_empty() {
            return;
        }
        self.stop_now();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Whether this process runs as root (then PostgreSQL's tools run as `postgres`).
#[cfg(feature = "postgres")]
fn as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The directory of `initdb` and `pg_ctl`: `PG_BIN`, else `PATH`, else the newest
/// `/usr/lib/postgresql/*/bin`.
#[cfg(feature = "postgres")]
fn pg_bin_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return dir.into();
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    });
    if let Some(dir) = on_path {
        // Through a symlink (/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb), the
        // real directory: initdb looks for `postgres` next to itself.
        return std::fs::canonicalize(dir.join("initdb"))
            .ok()
            .and_then(|p| p.parent().map(std::path::Path::to_path_buf))
            .unwrap_or(dir);
    }
    let mut versions: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let version = e.file_name().to_str()?.parse().ok()?;
                    Some((version, e.path().join("bin")))
                })
                .filter(|(_, bin)| bin.join("initdb").is_file())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("initdb and pg_ctl: set PG_BIN, or put them on PATH")
}
