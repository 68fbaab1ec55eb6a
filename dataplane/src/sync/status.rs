//! What a node reports to the control plane: each app's state (serving, stale, failed, pending,
//! removing) and its live isolates.

use nano_proto::v1::{AppStatus, Isolate, NodeStatus};

use super::IsolateStats;
use super::member::Member;

impl Member {
    /// What this node serves, for the control plane.
    pub(super) fn status(&self, isolates: &IsolateStats) -> NodeStatus {
        let mut apps = Vec::new();
        let hosts: std::collections::BTreeSet<&String> = self
            .desired
            .keys()
            .chain(self.last_good.apps.keys())
            .collect();
        for host in hosts {
            let serving = self.last_good.apps.get(host);
            let wanted = self.desired.get(host);
            // An error belongs to the version that failed: a newer wanted one is pending until
            // the reconciler has tried it.
            let error = self
                .app_errors
                .get(host)
                .filter(|(version, _)| wanted.is_some_and(|w| w.version == *version));
            let state = match (serving, wanted, error) {
                (_, _, Some(_)) if serving.is_some() => "stale",
                (_, _, Some(_)) => "failed",
                (Some(s), Some(w), None) if s.version == w.version => "serving",
                (Some(_), None, None) => "removing",
                _ => "pending",
            };
            apps.push(AppStatus {
                hostname: host.clone(),
                version: serving.map_or(0, |a| a.version),
                sliver_id: serving.map(|a| a.sliver_id.clone()).unwrap_or_default(),
                state: state.into(),
                wanted_version: wanted.map_or(0, |a| a.version),
                error: error.map(|(_, e)| e.clone()).unwrap_or_default(),
            });
        }
        let isolates = isolates()
            .into_iter()
            .filter(|s| s.is_live())
            .map(|s| {
                let load =
                    |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
                Isolate {
                    node_id: self.options.node_id.clone(),
                    hostname: s.hostname.to_string(),
                    isolate: s.isolate_id(),
                    state: s.state().label().into(),
                    heap_used_bytes: load(&s.heap_used),
                    heap_limit_bytes: load(&s.heap_limit),
                    pressure: crate::limits::memory::Pressure::from_number(
                        s.pressure.load(std::sync::atomic::Ordering::Relaxed),
                    )
                    .label()
                    .into(),
                    requests: load(&s.requests),
                    last_used_ms: load(&s.last_used_ms) as i64,
                }
            })
            .collect();
        let (failed_revision, error) = self.failure.clone().unwrap_or_default();
        NodeStatus {
            node_id: self.options.node_id.clone(),
            revision: self.last_good.revision,
            apps,
            isolates,
            version: env!("CARGO_PKG_VERSION").into(),
            failed_revision,
            error,
            drained: self.last_good.drained,
        }
    }
}
