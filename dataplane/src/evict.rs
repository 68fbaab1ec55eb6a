//! The node-wide memory budget (`node.memory_mb`): when the isolates of all apps together cost
//! more, idle isolates are evicted least-recently-used first, those without state (context
//! reset on) before those with state; their workers end and start again on the app's next
//! request. Also the joining of ended worker threads, which walks the same pools.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::job::{IsolateState, WorkerStats};
use crate::router::Routing;

/// How often the budget is checked.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);

/// One isolate as the evictor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub memory: u64,
    pub idle: bool,
    pub stateful: bool,
    pub last_used_ms: u64,
}

/// Indexes of the isolates to evict so that `total` (at least what the candidates count) falls
/// within `limit`, in eviction order.
pub fn choose(candidates: &[Candidate], total: u64, limit: u64) -> Vec<usize> {
    let mut total = total.max(candidates.iter().map(|c| c.memory).sum());
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

/// The process's resident memory now, in bytes (0 if unknown).
fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// Checks the budget until `stop` fires. What isolates cost is the larger of their counted
/// footprints and the process's RSS above its base, the RSS last seen with no isolate live (so
/// memory the allocators and V8 keep after workers end counts too, and is reused before more
/// is taken).
pub async fn enforce(routing: Arc<Routing>, limit_bytes: u64, stop: CancellationToken) {
    let mut base = rss_bytes();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = stop.cancelled() => return,
        }
        let router = routing.load_full();
        let mut workers: Vec<(&Arc<crate::router::Route>, usize, Arc<WorkerStats>)> = Vec::new();
        for route in router.routes() {
            for stats in route.pool.stats() {
                if stats.is_live() {
                    workers.push((route, stats.worker, stats));
                }
            }
        }
        let rss = rss_bytes();
        if workers.is_empty() {
            base = rss;
        }
        let attributable = rss.saturating_sub(base);
        let candidates: Vec<Candidate> = workers
            .iter()
            .map(|(_, _, stats)| Candidate {
                memory: stats.footprint.load(Ordering::Relaxed),
                idle: stats.state() == IsolateState::Idle
                    && stats.load.load(Ordering::Acquire) == 0,
                stateful: stats.stateful,
                last_used_ms: stats.last_used_ms.load(Ordering::Relaxed),
            })
            .collect();
        for i in choose(&candidates, attributable, limit_bytes) {
            let (route, index, stats) = &workers[i];
            tracing::info!(
                hostname = %stats.hostname, isolate = %stats.isolate_id(),
                memory_bytes = candidates[i].memory, limit_bytes, rss_above_base_bytes = attributable,
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
    fn within_budget_nothing_is_evicted() {
        assert!(choose(&[c(10, true, false, 1), c(10, true, false, 2)], 0, 20).is_empty());
    }

    #[test]
    fn least_recently_used_stateless_idle_isolates_go_first() {
        let candidates = [
            c(10, true, true, 1),   // stateful: last resort
            c(10, true, false, 5),  // stateless, newer
            c(10, false, false, 0), // busy: never
            c(10, true, false, 3),  // stateless, older: first
        ];
        assert_eq!(choose(&candidates, 0, 25), vec![3, 1]);
        assert_eq!(
            choose(&candidates, 0, 5),
            vec![3, 1, 0],
            "busy isolates are never evicted"
        );
    }

    #[test]
    fn memory_counted_by_rss_evicts_more_than_the_footprints_alone() {
        // Footprints fit in 25, but the process holds 45 above its base: evict until the
        // larger figure, minus what the evicted isolates counted, fits.
        let candidates = [c(10, true, false, 1), c(10, true, false, 2)];
        assert_eq!(choose(&candidates, 20, 25), Vec::<usize>::new());
        assert_eq!(choose(&candidates, 45, 25), vec![0, 1]);
        assert_eq!(choose(&candidates, 32, 25), vec![0]);
    }
}
