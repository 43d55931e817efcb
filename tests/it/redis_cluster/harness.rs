//! A Redis Cluster of the test's own, on spare loopback ports below 22000 (each node's cluster
//! bus listens on its port + 10000), in a directory of its own under the system temp dir.
//!
//! Synchronous (std, and redis-rs's blocking client for the admin commands), so that one cluster
//! can be shared by the tests of a binary whatever runtime each test runs on; call it from async
//! code through `spawn_blocking` when it may take long.
//!
//! Every `redis-server` runs under a small `sh` that holds the read end of a pipe from this
//! process: when this process ends, however it ends, the pipe closes and `sh` kills its server by
//! its pid. So a cluster kept in a `static` (never dropped) still goes with the test binary, and
//! a cluster that is dropped is killed at once, node by node, by pid. Directories (and servers)
//! left behind by a process that no longer exists are removed at the next start.
//!
//! Used by `tests/it/redis_cluster` and `benches/redis_cluster.rs`.

#![allow(dead_code)] // the bench uses part of it

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The directory name prefix of every cluster of this harness.
const DIR_PREFIX: &str = "tower-cognito-cluster-";

/// How long a cluster may take to form, or to heal after a failover.
const PATIENCE: Duration = Duration::from_secs(60);

/// One `redis-server` of the cluster.
struct Node {
    port: u16,
    /// The redis-server's pid (not the wrapper's).
    pid: u32,
    /// The wrapper `sh`, and the pipe whose closing makes it kill the server.
    wrapper: Option<(Child, ChildStdin)>,
}

/// A Redis Cluster of `primaries` primaries with `replicas` replicas each, all on 127.0.0.1.
/// Killed node by node (by pid), and its directory removed, on drop.
pub struct OwnCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
    node_timeout_ms: u64,
}

impl OwnCluster {
    /// Starts the nodes, joins them with `redis-cli --cluster create`, and waits until every
    /// node says `cluster_state:ok` and every replica is in sync. `node_timeout_ms` is
    /// `cluster-node-timeout`: how long a primary may be unreachable before its replica takes
    /// over. Panics (after stopping what it started) when it cannot.
    pub fn start(primaries: usize, replicas: usize, node_timeout_ms: u64) -> OwnCluster {
        remove_leftovers();
        let count = primaries * (1 + replicas);
        let mut last = String::new();
        for _ in 0..10 {
            let mut cluster = OwnCluster {
                dir: own_dir(),
                nodes: Vec::new(),
                node_timeout_ms,
            };
            let ports = spare_ports(count);
            match cluster.spawn_all(&ports, node_timeout_ms) {
                Ok(()) => {}
                Err(e) => {
                    last = e;
                    continue;
                }
            }
            cluster.create(replicas);
            cluster.wait_healthy(count);
            return cluster;
        }
        panic!("cannot start a Redis Cluster: {last}");
    }

    fn spawn_all(&mut self, ports: &[u16], node_timeout_ms: u64) -> Result<(), String> {
        for &port in ports {
            let node = spawn_node(&self.dir, port, node_timeout_ms)?;
            self.nodes.push(node);
            self.write_pids()?;
        }
        Ok(())
    }

    /// Records the servers' pids, for the leftover cleanup of a later run.
    fn write_pids(&self) -> Result<(), String> {
        let pids: String = self.nodes.iter().map(|n| format!("{}\n", n.pid)).collect();
        std::fs::write(self.dir.join("pids"), pids).map_err(|e| e.to_string())
    }

    /// Starts the killed node on `port` again, with its cluster configuration file: it rejoins
    /// (a primary that was failed over comes back as a replica). Waits until the whole cluster
    /// is healthy again, replicas in sync.
    pub fn restart(&mut self, port: u16) {
        let index = self
            .nodes
            .iter()
            .position(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"));
        assert!(
            self.nodes[index].wrapper.is_none(),
            "node {port} is running"
        );
        self.nodes[index] = spawn_node(&self.dir, port, self.node_timeout_ms)
            .unwrap_or_else(|e| panic!("restart node {port}: {e}"));
        self.write_pids().expect("write pids");
        self.wait_healthy(self.nodes.len());
    }

    fn create(&self, replicas: usize) {
        let mut cmd = Command::new("redis-cli");
        cmd.arg("--cluster").arg("create");
        for node in &self.nodes {
            cmd.arg(format!("127.0.0.1:{}", node.port));
        }
        cmd.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        let output = cmd
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Waits until every running node says `cluster_state:ok`, knows `count` nodes, sees every
    /// slot served, and every replica's link to its primary is up.
    fn wait_healthy(&self, count: usize) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let healthy = self.running_ports().iter().all(|&port| {
                let info: String = match command(port, &["CLUSTER", "INFO"]) {
                    Ok(info) => info,
                    Err(_) => return false,
                };
                let ok = info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && info.contains(&format!("cluster_known_nodes:{count}\r"));
                let replication: String =
                    command(port, &["INFO", "replication"]).unwrap_or_default();
                let synced = !replication.contains("role:slave")
                    || replication.contains("master_link_status:up");
                ok && synced
            });
            if healthy {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster on {:?} is not healthy after {PATIENCE:?}",
                self.ports()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every node's port.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The ports of the nodes not killed.
    pub fn running_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.wrapper.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(port: u16) -> String {
        format!("redis://127.0.0.1:{port}")
    }

    /// Every node's URL, as seeds.
    pub fn urls(&self) -> Vec<String> {
        self.ports().into_iter().map(Self::url).collect()
    }

    /// The topology as a running node sees it.
    pub fn topology(&self) -> Topology {
        let mut last = String::new();
        for port in self.running_ports() {
            match command::<String>(port, &["CLUSTER", "NODES"]) {
                Ok(text) => return Topology::parse(&text),
                Err(e) => last = e.to_string(),
            }
        }
        panic!("no node answers CLUSTER NODES: {last}");
    }

    /// SIGKILL to the node on `port`, by its pid; waits until it is gone.
    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"));
        node.stop();
    }

    /// Waits until a running node serves every slot again with `cluster_state:ok` and none of
    /// the slots is on a killed node (after a failover).
    pub fn wait_failed_over(&self) -> Topology {
        let running = self.running_ports();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let done = running.iter().all(|&port| {
                let info: String = command(port, &["CLUSTER", "INFO"]).unwrap_or_default();
                let nodes: String = command(port, &["CLUSTER", "NODES"]).unwrap_or_default();
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && Topology::parse(&nodes)
                        .primaries()
                        .iter()
                        .all(|p| running.contains(p))
            });
            if done {
                return self.topology();
            }
            assert!(Instant::now() < deadline, "no failover within {PATIENCE:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Moves `slot` from the primary on `from` to the primary on `to` as `redis-cli --cluster
    /// reshard` does: `SETSLOT IMPORTING` on the target, `MIGRATING` on the source, then the
    /// keys one `MIGRATE` at a time with `pause` between them (the slot stays half moved, so
    /// clients meet `ASK` all along), then `SETSLOT NODE` everywhere. Answers how many keys
    /// moved.
    pub fn migrate_slot(&self, slot: u16, from: u16, to: u16, pause: Duration) -> usize {
        let from_id: String = command(from, &["CLUSTER", "MYID"]).expect("MYID");
        let to_id: String = command(to, &["CLUSTER", "MYID"]).expect("MYID");
        let slot_s = slot.to_string();
        let () = command(to, &["CLUSTER", "SETSLOT", &slot_s, "IMPORTING", &from_id])
            .expect("SETSLOT IMPORTING");
        let () = command(from, &["CLUSTER", "SETSLOT", &slot_s, "MIGRATING", &to_id])
            .expect("SETSLOT MIGRATING");
        let to_port = to.to_string();
        let mut moved = 0;
        loop {
            let keys: Vec<String> =
                command(from, &["CLUSTER", "GETKEYSINSLOT", &slot_s, "1"]).expect("GETKEYSINSLOT");
            let Some(key) = keys.first() else { break };
            let answer: String = command(
                from,
                &[
                    "MIGRATE",
                    "127.0.0.1",
                    &to_port,
                    "",
                    "0",
                    "5000",
                    "KEYS",
                    key,
                ],
            )
            .expect("MIGRATE");
            assert!(
                answer == "OK" || answer == "NOKEY",
                "MIGRATE answered {answer}"
            );
            moved += 1;
            std::thread::sleep(pause);
        }
        for port in [to, from] {
            let () = command(port, &["CLUSTER", "SETSLOT", &slot_s, "NODE", &to_id])
                .expect("SETSLOT NODE");
        }
        for port in self.topology().primaries() {
            if port != to && port != from {
                let () = command(port, &["CLUSTER", "SETSLOT", &slot_s, "NODE", &to_id])
                    .expect("SETSLOT NODE");
            }
        }
        moved
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Node {
    /// SIGKILL to the server by its pid, then the wrapper is let go (and reaped).
    fn stop(&mut self) {
        if let Some((mut wrapper, stdin)) = self.wrapper.take() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            drop(stdin);
            let _ = wrapper.wait();
            // The server is gone once its pid is (the wrapper reaped it).
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{}", self.pid)).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Starts `redis-server` on `port` under its wrapper and waits until it answers `PING`.
fn spawn_node(dir: &Path, port: u16, node_timeout_ms: u64) -> Result<Node, String> {
    let p = port.to_string();
    let dir_s = dir.display().to_string();
    let conf = dir.join(format!("nodes-{port}.conf")).display().to_string();
    let log = dir.join(format!("redis-{port}.log")).display().to_string();
    // `sh` starts the server in the background, prints its pid, and kills it by that pid when
    // its stdin (our pipe) closes.
    let script = r#"redis-server "$@" >/dev/null 2>&1 </dev/null &
pid=$!
echo "$pid"
read _ignored
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exit 0"#;
    let mut wrapper = Command::new("sh")
        .args(["-c", script, "sh"])
        .args(["--port", &p, "--bind", "127.0.0.1", "--daemonize", "no"])
        .args(["--cluster-enabled", "yes", "--cluster-config-file", &conf])
        .args(["--cluster-node-timeout", &node_timeout_ms.to_string()])
        .args([
            "--dir",
            &dir_s,
            "--logfile",
            &log,
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--protected-mode", "no", "--enable-debug-command", "local"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn sh for redis-server: {e}"))?;
    let stdin = wrapper.stdin.take().expect("piped stdin");
    let stdout = wrapper.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("read the pid of redis-server: {e}"))?;
    let pid: u32 = line
        .trim()
        .parse()
        .map_err(|_| format!("no pid from the wrapper: {line:?}"))?;
    let mut node = Node {
        port,
        pid,
        wrapper: Some((wrapper, stdin)),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if command::<String>(port, &["PING"]).is_ok_and(|pong| pong == "PONG") {
            return Ok(node);
        }
        if !Path::new(&format!("/proc/{pid}")).exists() || Instant::now() > deadline {
            node.stop();
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(3).collect();
            return Err(format!(
                "redis-server on port {port} did not start: {tail:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One admin command to the node on `port`, on a fresh blocking connection (1 s timeouts).
pub fn command<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> redis::RedisResult<T> {
    let client = redis::Client::open(OwnCluster::url(port))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(1))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(&mut conn)
}

/// `count` consecutive ports in 12000..21000 such that each port and its bus port (+10000) are
/// free on 127.0.0.1 right now, starting at a base drawn from the clock and the pid.
fn spare_ports(count: usize) -> Vec<u16> {
    static DRAW: AtomicU64 = AtomicU64::new(0);
    let count = u16::try_from(count).expect("node count");
    for _ in 0..200 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let seed = u64::from(nanos)
            ^ (u64::from(std::process::id()) << 20)
            ^ DRAW.fetch_add(0x9e37_79b9, Ordering::Relaxed);
        let base = 12000 + (seed % u64::from(9000 - count)) as u16;
        let ports: Vec<u16> = (base..base + count).collect();
        let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if ports.iter().all(|&p| free(p) && free(p + 10000)) {
            return ports;
        }
    }
    panic!("no {count} free consecutive ports (and bus ports) in 12000..21000");
}

/// A fresh directory for one cluster, named after this process.
fn own_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "{DIR_PREFIX}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Clusters left by processes that no longer run (killed before their wrappers could act):
/// their servers are killed by the pids recorded, when those pids still are redis-servers, and
/// their directories removed.
fn remove_leftovers() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(DIR_PREFIX) else {
            continue;
        };
        let Some(owner) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        let pids = std::fs::read_to_string(entry.path().join("pids")).unwrap_or_default();
        for pid in pids.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("redis-server") {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

/// The cluster as `CLUSTER NODES` describes it.
#[derive(Debug, Clone)]
pub struct Topology {
    nodes: Vec<NodeInfo>,
}

#[derive(Debug, Clone)]
struct NodeInfo {
    port: u16,
    primary: bool,
    failed: bool,
    /// The primary's id, for a replica.
    primary_id: Option<String>,
    id: String,
    slots: Vec<(u16, u16)>,
}

impl Topology {
    fn parse(text: &str) -> Topology {
        let nodes = text
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.len() < 8 {
                    return None;
                }
                let addr = fields[1].split('@').next()?;
                let port: u16 = addr.rsplit(':').next()?.parse().ok()?;
                let flags = fields[2];
                let slots = fields[8..]
                    .iter()
                    .filter(|s| !s.starts_with('['))
                    .filter_map(|s| match s.split_once('-') {
                        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                        None => s.parse().ok().map(|a| (a, a)),
                    })
                    .collect();
                Some(NodeInfo {
                    port,
                    primary: flags.contains("master"),
                    failed: flags.contains("fail"),
                    primary_id: (fields[3] != "-").then(|| fields[3].to_owned()),
                    id: fields[0].to_owned(),
                    slots,
                })
            })
            .collect();
        Topology { nodes }
    }

    /// The ports of the primaries that serve slots and are not failed.
    pub fn primaries(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .nodes
            .iter()
            .filter(|n| n.primary && !n.failed && !n.slots.is_empty())
            .map(|n| n.port)
            .collect();
        ports.sort_unstable();
        ports
    }

    /// The port of the primary serving `slot`.
    pub fn primary_of(&self, slot: u16) -> u16 {
        self.nodes
            .iter()
            .find(|n| {
                n.primary && !n.failed && n.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
            })
            .map(|n| n.port)
            .unwrap_or_else(|| panic!("no primary serves slot {slot}: {self:?}"))
    }

    /// The ports of the replicas of the primary on `port`.
    pub fn replicas_of(&self, port: u16) -> Vec<u16> {
        let Some(primary) = self.nodes.iter().find(|n| n.port == port) else {
            return Vec::new();
        };
        self.nodes
            .iter()
            .filter(|n| n.primary_id.as_deref() == Some(primary.id.as_str()))
            .map(|n| n.port)
            .collect()
    }

    /// The ports of the replicas.
    pub fn replicas(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| !n.primary && !n.failed)
            .map(|n| n.port)
            .collect()
    }
}

/// Redis Cluster's key slot: CRC16/XMODEM of the hash tag (the first non-empty `{...}`), or of
/// the whole key, modulo 16384.
pub fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|&b| b == b'{').and_then(|open| {
        let close = bytes[open + 1..].iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &bytes[open + 1..open + 1 + close])
    });
    let mut crc: u16 = 0;
    for &byte in tagged.unwrap_or(bytes) {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}
