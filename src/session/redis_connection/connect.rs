//! Connecting: one server or a cluster (found out from the server), with the scripts loaded.

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::{Client, ErrorKind, IntoConnectionInfo};

use super::single::{CONNECT_ATTEMPTS, FIRST_RETRY};
use super::*;

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
    let mut conn = Conn::Single(Arc::new(Single::new(client, config, conn, server.clone())));
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
pub(super) async fn cluster_enabled(conn: &mut ConnectionManager) -> Result<bool, StoreError> {
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

pub(super) async fn load(conn: &mut Conn, scripts: &[&Lua]) -> Result<(), StoreError> {
    for lua in scripts {
        lua.script.load_async(conn).await.map_err(unavailable)?;
    }
    Ok(())
}
