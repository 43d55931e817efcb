//! A Redis Cluster: the cluster client, and a fresh connection when the current one stalls.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;

use super::*;

/// The cluster client and its current connection, replaced by a fresh one when it stalls.
///
/// redis-rs's cluster connection can stop answering altogether (seen here after a slot
/// migration under load: its slot refresh waits forever for a lock, and every request queues
/// behind it). A connection that has had requests waiting and answered nothing, not even an
/// error, for [`STALL`] is taken for stuck: a new one is made from the seeds in the background
/// (at most once per [`STALL`]), and the requests that come after use it.
pub(super) struct Cluster {
    pub(super) client: ClusterClient,
    pub(super) conn: ArcSwap<ClusterConnection>,
    pub(super) started: Instant,
    /// Requests sent and not yet answered (or given up by their caller).
    pub(super) in_flight: AtomicUsize,
    /// Milliseconds since `started` of the last answer, or of the moment requests began to
    /// wait after none did.
    pub(super) last_answer_ms: AtomicU64,
    /// Milliseconds since `started` of the last replacement begun.
    pub(super) last_rebuild_ms: AtomicU64,
}

/// How long a cluster connection may leave requests unanswered before it is replaced.
pub(super) const STALL: Duration = Duration::from_secs(1);

impl Cluster {
    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Counts a request in until the guard drops; replaces a stalled connection first.
    pub(super) fn start(self: &Arc<Self>) -> InFlight {
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

    pub(super) fn rebuild(self: &Arc<Self>, now: u64) {
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
pub(super) struct InFlight {
    pub(super) cluster: Arc<Cluster>,
}

impl InFlight {
    /// The connection answered (a value or an error).
    pub(super) fn answered(self) {
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
