//! The JSON shapes of protocol messages, shared by `nanoctl --output json` and the control
//! plane's `/_admin` so both say the same thing the same way.

use serde_json::{Value, json};

use crate::v1::{AppStatus, Isolate, Limits, Node};

pub fn isolate(i: &Isolate) -> Value {
    json!({
        "node_id": i.node_id,
        "hostname": i.hostname,
        "isolate": i.isolate,
        "state": i.state,
        "heap_used_bytes": i.heap_used_bytes,
        "heap_limit_bytes": i.heap_limit_bytes,
        "pressure": i.pressure,
        "requests": i.requests,
        "last_used_ms": i.last_used_ms,
    })
}

pub fn app_status(a: &AppStatus) -> Value {
    json!({
        "hostname": a.hostname,
        "version": a.version,
        "wanted_version": a.wanted_version,
        "sliver_id": a.sliver_id,
        "state": a.state,
        "error": a.error,
    })
}

pub fn node(n: &Node) -> Value {
    json!({
        "node_id": n.node_id,
        "connected": n.connected,
        "revision": n.revision,
        "last_seen_ms": n.last_seen_ms,
        "address": n.address,
        "version": n.version,
        "isolates": n.isolates,
        "drained": n.drained,
        "apps": n.apps.iter().map(app_status).collect::<Vec<_>>(),
    })
}

/// `apps[].limits` of the config contract for these limits: only the ones given (0 means the
/// default, so it is left out).
pub fn config_limits(limits: &Limits) -> serde_json::Map<String, Value> {
    [
        ("workers", limits.workers),
        ("memory_mb", limits.memory_mb),
        ("timeout_secs", limits.timeout_secs),
        ("cpu_ms", limits.cpu_ms),
    ]
    .into_iter()
    .filter(|(_, value)| *value != 0)
    .map(|(key, value)| (key.to_owned(), value.into()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limits_mean_the_default_and_are_left_out() {
        let limits = Limits {
            workers: 2,
            cpu_ms: 0,
            ..Default::default()
        };
        assert_eq!(
            Value::Object(config_limits(&limits)),
            json!({ "workers": 2 })
        );
        assert!(config_limits(&Limits::default()).is_empty());
    }
}
