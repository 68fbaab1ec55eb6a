//! The JSON shapes of protocol messages, shared by `nanoctl --output json` and the control
//! plane's `/_admin` so both say the same thing the same way.

use serde_json::{Value, json};

use crate::v1::{AppSpec, AppStatus, Isolate, Limits, Node};

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

/// An app spec's settings as the config contract's keys of `apps[]` (`limits`, `fetch`, `env`,
/// `context_reset`): the one conversion from the protocol to the config, used by the control
/// plane to check a deploy and by a node to serve it. Only what was given: a 0 limit or an unset
/// field means the default and is left out.
pub fn config_settings(spec: &AppSpec) -> serde_json::Map<String, Value> {
    let mut settings = serde_json::Map::new();
    settings.insert(
        "limits".into(),
        Value::Object(config_limits(&spec.limits.unwrap_or_default())),
    );
    let fetch = spec.fetch.unwrap_or_default();
    let mut fetch_keys = serde_json::Map::new();
    if let Some(allow) = fetch.allow_private_networks {
        fetch_keys.insert("allow_private_networks".into(), allow.into());
    }
    if let Some(max) = fetch.max_subrequests {
        fetch_keys.insert("max_subrequests".into(), max.into());
    }
    if let Some(max) = fetch.max_response_bytes {
        fetch_keys.insert("max_response_bytes".into(), max.into());
    }
    if !fetch_keys.is_empty() {
        settings.insert("fetch".into(), Value::Object(fetch_keys));
    }
    let ws = spec.websockets.unwrap_or_default();
    let ws_keys: serde_json::Map<String, Value> = [
        ("max_message_bytes", ws.max_message_bytes),
        ("max_sockets", ws.max_sockets),
        ("idle_timeout_secs", ws.idle_timeout_secs),
        ("max_session_secs", ws.max_session_secs),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((key.to_owned(), value?.into())))
    .collect();
    if !ws_keys.is_empty() {
        settings.insert("websockets".into(), Value::Object(ws_keys));
    }
    settings.insert(
        "env".into(),
        json!(
            spec.env
                .iter()
                .collect::<std::collections::BTreeMap<_, _>>()
        ),
    );
    if let Some(reset) = spec.context_reset {
        settings.insert("context_reset".into(), reset.into());
    }
    settings
}

/// `apps[].limits` of the config contract for these limits: only the ones given (0 means the
/// default, so it is left out).
fn config_limits(limits: &Limits) -> serde_json::Map<String, Value> {
    [
        ("workers", limits.workers),
        ("memory_mb", limits.memory_mb),
        ("timeout_secs", limits.timeout_secs),
        ("cpu_ms", limits.cpu_ms),
        ("startup_ms", limits.startup_ms),
        ("queue_per_worker", limits.queue_per_worker),
        ("idle_timeout_secs", limits.idle_timeout_secs),
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

    #[test]
    fn every_setting_of_a_spec_becomes_its_config_key() {
        let spec = AppSpec {
            hostname: "a.test".into(),
            limits: Some(Limits {
                workers: 1,
                memory_mb: 64,
                timeout_secs: 5,
                cpu_ms: 100,
                startup_ms: 300,
                queue_per_worker: 8,
                idle_timeout_secs: 30,
            }),
            env: [("K".to_owned(), "v".to_owned())].into(),
            context_reset: Some(false),
            name: "a".into(),
            fetch: Some(crate::v1::FetchSettings {
                allow_private_networks: Some(true),
                max_subrequests: Some(0),
                max_response_bytes: Some(1024),
            }),
            websockets: Some(crate::v1::WebSocketSettings {
                max_message_bytes: Some(4096),
                max_sockets: Some(0),
                idle_timeout_secs: None,
                max_session_secs: Some(60),
            }),
        };
        assert_eq!(
            Value::Object(config_settings(&spec)),
            json!({
                "limits": { "workers": 1, "memory_mb": 64, "timeout_secs": 5, "cpu_ms": 100,
                            "startup_ms": 300, "queue_per_worker": 8, "idle_timeout_secs": 30 },
                "fetch": { "allow_private_networks": true, "max_subrequests": 0, "max_response_bytes": 1024 },
                "websockets": { "max_message_bytes": 4096, "max_sockets": 0, "max_session_secs": 60 },
                "env": { "K": "v" },
                "context_reset": false,
            })
        );
        assert_eq!(
            Value::Object(config_settings(&AppSpec::default())),
            json!({ "limits": {}, "env": {} })
        );
    }
}
