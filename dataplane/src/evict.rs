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

/// Checks the budget until `stop` fires.
pub async fn enforce(routing: Arc<Routing>, limit_bytes: u64, stop: CancellationToken) {
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
        for i in choose(&candidates, limit_bytes) {
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
