//! The node-wide memory budget (`node.memory_mb`): it counts what the isolates of all apps cost
//! (their footprints), the app snapshots in memory (each once) and what ended workers leave. Past it, snapshots no worker
//! reads leave memory first (the cache folder keeps them), then idle isolates are evicted
//! least-recently-used first, those without state (context reset on) before those with state;
//! their workers end and start again on the app's next request. Also the joining of ended
//! worker threads, which walks the same pools.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::job::{IsolateState, WorkerStats};
use crate::metrics::METRICS;
use crate::router::Routing;

/// How often the budget is checked, besides each time a worker starts an isolate.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);

/// The least time between two checks (a burst of starting workers is looked at together).
const CHECK_AT_MOST_EVERY: Duration = Duration::from_millis(20);

/// One isolate as the evictor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub memory: u64,
    pub idle: bool,
    pub stateful: bool,
    pub last_used_ms: u64,
}

/// Indexes of the isolates to evict so that the total falls within `limit`, in eviction order.
pub fn choose(candidates: &[Candidate], limit: u64) -> Vec<usize> {
    let mut total: u64 = candidates.iter().map(|c| c.memory).sum();
    if total <= limit {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..candidates.len())
        .filter(|&i| candidates[i].idle)
        .collect();
    order.sort_by_key(|&i| (candidates[i].stateful, candidates[i].last_used_ms));
    let mut chosen = Vec::new();
    for i in order {
        if total <= limit {
            break;
        }
        total = total.saturating_sub(candidates[i].memory);
        chosen.push(i);
    }
    chosen
}

/// What a worker that ended (reaped, evicted or recycled) leaves until its app is removed: its
/// stats and its closed slots, and what the allocator keeps of it. Measured: 500 apps answered
/// once and all reaped hold 4.5 MB more in use than before any request (glibc's
/// `malloc_stats`; bench/RESULTS.md, session 9), about 9 KB each.
pub const ENDED_WORKER_BYTES: u64 = 9 * 1024;

/// What the budget counts: every live isolate's footprint, each app snapshot in memory once
/// (the one a worker reads is shared with the app's other workers and the snapshot cache), and
/// what ended workers leave ([`ENDED_WORKER_BYTES`] each).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counted {
    pub isolates: u64,
    pub snapshots: u64,
    pub ended: u64,
}

impl Counted {
    pub fn total(&self) -> u64 {
        self.isolates + self.snapshots + self.ended
    }
}

/// `workers`: each live worker's footprint and snapshot (identity, bytes); `cached`: the
/// snapshots the cache keeps in memory. Returns what the budget counts of them (not yet what
/// ended workers leave), and each worker's share of it (its footprint and its share of the snapshot it reads).
pub fn count(workers: &[(u64, usize, u64)], cached: &[(usize, usize)]) -> (Counted, Vec<u64>) {
    let mut snapshots: std::collections::HashMap<usize, (u64, u64)> = Default::default();
    for &(_, identity, bytes) in workers {
        snapshots.entry(identity).or_insert((bytes, 0)).1 += 1;
    }
    for &(identity, bytes) in cached {
        snapshots.entry(identity).or_insert((bytes as u64, 0));
    }
    let counted = Counted {
        isolates: workers.iter().map(|w| w.0).sum(),
        snapshots: snapshots.values().map(|(bytes, _)| bytes).sum(),
        ended: 0,
    };
    let shares = workers
        .iter()
        .map(|&(footprint, identity, _)| {
            let (bytes, readers) = snapshots[&identity];
            footprint + bytes / readers.max(1)
        })
        .collect();
    (counted, shares)
}

/// Checks the budget until `stop` fires. Past it, first the snapshots no worker reads leave
/// memory (the cache folder keeps them), then idle isolates are evicted.
pub async fn enforce(
    routing: Arc<Routing>,
    preparer: Arc<crate::isolate::Preparer>,
    limit_bytes: u64,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = crate::job::ISOLATE_STARTED.notified() => {
                tokio::time::sleep(CHECK_AT_MOST_EVERY).await;
            }
            _ = stop.cancelled() => return,
        }
        let router = routing.load_full();
        let mut workers: Vec<(&Arc<crate::router::Route>, usize, Arc<WorkerStats>)> = Vec::new();
        let mut ended = 0;
        for route in router.routes() {
            for stats in route.pool.stats() {
                if stats.is_live() {
                    workers.push((route, stats.worker, stats));
                } else {
                    ended += 1;
                }
            }
        }
        let figures: Vec<(u64, usize, u64)> = workers
            .iter()
            .map(|(_, _, stats)| {
                (
                    stats.footprint.load(Ordering::Relaxed),
                    stats.snapshot_identity.load(Ordering::Relaxed),
                    stats.snapshot_bytes.load(Ordering::Relaxed),
                )
            })
            .collect();
        let (mut counted, shares) = count(&figures, &preparer.snapshots_in_memory());
        counted.ended = ended * ENDED_WORKER_BYTES;
        if counted.total() > limit_bytes {
            let over = counted.total() - limit_bytes;
            let freed = preparer.forget_unused_snapshots(over as usize) as u64;
            counted.snapshots = counted.snapshots.saturating_sub(freed);
        }
        METRICS
            .node_memory
            .with_label_values(&["isolates"])
            .set(counted.isolates as i64);
        METRICS
            .node_memory
            .with_label_values(&["snapshots"])
            .set(counted.snapshots as i64);
        METRICS
            .node_memory
            .with_label_values(&["ended_workers"])
            .set(counted.ended as i64);
        // Snapshots the cache still keeps beyond the workers' shares (none once it had to
        // drop them) and what ended workers left count against what the isolates may use.
        let shared: u64 = shares.iter().sum();
        let rest = counted.total().saturating_sub(shared);
        let candidates: Vec<Candidate> = workers
            .iter()
            .zip(&shares)
            .map(|((_, _, stats), &memory)| Candidate {
                memory,
                idle: stats.state() == IsolateState::Idle
                    && stats.load.load(Ordering::Acquire) == 0,
                stateful: stats.stateful,
                last_used_ms: stats.last_used_ms.load(Ordering::Relaxed),
            })
            .collect();
        for i in choose(&candidates, limit_bytes.saturating_sub(rest)) {
            let (route, index, stats) = &workers[i];
            tracing::info!(
                hostname = %stats.hostname, isolate = %stats.isolate_id(),
                memory_bytes = candidates[i].memory, limit_bytes,
                "node memory budget exceeded; evicting an idle isolate"
            );
            route.pool.evict(*index);
        }
    }
}

/// How often ended worker threads are joined.
const JOIN_EVERY: Duration = Duration::from_secs(1);

/// Joins ended worker threads of every app until `stop` fires.
pub async fn join_ended_workers(routing: Arc<Routing>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(JOIN_EVERY) => {}
            _ = stop.cancelled() => return,
        }
        for route in routing.load().routes() {
            route.pool.join_ended();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(memory: u64, idle: bool, stateful: bool, last_used_ms: u64) -> Candidate {
        Candidate {
            memory,
            idle,
            stateful,
            last_used_ms,
        }
    }

    #[test]
    fn each_snapshot_counts_once_and_its_readers_share_it() {
        // Two workers of one app read snapshot 1 (100 bytes), which the cache also keeps; one
        // worker reads snapshot 2 (40); the cache keeps snapshot 3 (70) that nobody reads.
        let workers = [(1000, 1, 100), (1000, 1, 100), (500, 2, 40)];
        let (counted, shares) = count(&workers, &[(1, 100), (3, 70)]);
        assert_eq!(
            counted,
            Counted {
                isolates: 2500,
                snapshots: 210,
                ended: 0,
            }
        );
        assert_eq!(shares, [1050, 1050, 540]);
    }

    #[test]
    fn within_budget_nothing_is_evicted() {
        assert!(choose(&[c(10, true, false, 1), c(10, true, false, 2)], 20).is_empty());
    }

    #[test]
    fn least_recently_used_stateless_idle_isolates_go_first() {
        let candidates = [
            c(10, true, true, 1),   // stateful: last resort
            c(10, true, false, 5),  // stateless, newer
            c(10, false, false, 0), // busy: never
            c(10, true, false, 3),  // stateless, older: first
        ];
        assert_eq!(choose(&candidates, 25), vec![3, 1]);
        assert_eq!(
            choose(&candidates, 5),
            vec![3, 1, 0],
            "busy isolates are never evicted"
        );
    }
}
