//! How listings print: aligned tables for people, JSON for scripts (`--output json`).

use nano_proto::v1::{App, GetAppResponse, Isolate, ListNodesResponse, TailLine};
use serde_json::{Value, json};

use crate::Output;

pub fn app_json(app: &App) -> Value {
    let spec = app.spec.clone().unwrap_or_default();
    let limits = spec.limits.unwrap_or_default();
    let fetch = spec.fetch.unwrap_or_default();
    let websockets = spec.websockets.unwrap_or_default();
    let or_default = |v: u32| if v == 0 { Value::Null } else { v.into() };
    json!({
        "hostname": spec.hostname,
        "name": spec.name,
        "version": app.version,
        "sliver_id": app.sliver_id,
        "sliver_bytes": app.sliver_bytes,
        "entry": app.entry,
        "deployed_at_ms": app.deployed_at_ms,
        "limits": {
            "workers": or_default(limits.workers),
            "memory_mb": or_default(limits.memory_mb),
            "timeout_secs": or_default(limits.timeout_secs),
            "cpu_ms": or_default(limits.cpu_ms),
            "startup_ms": or_default(limits.startup_ms),
            "queue_per_worker": or_default(limits.queue_per_worker),
            "idle_timeout_secs": or_default(limits.idle_timeout_secs),
        },
        "fetch": {
            "allow_private_networks": fetch.allow_private_networks,
            "max_subrequests": fetch.max_subrequests,
            "max_response_bytes": fetch.max_response_bytes,
        },
        "websockets": {
            "max_message_bytes": websockets.max_message_bytes,
            "max_sockets": websockets.max_sockets,
            "idle_timeout_secs": websockets.idle_timeout_secs,
            "max_session_secs": websockets.max_session_secs,
        },
        "env_keys": spec.env.keys().collect::<std::collections::BTreeSet<_>>(),
        "context_reset": spec.context_reset,
    })
}

fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<String>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

fn when(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let secs = (now - ms).max(0) / 1000;
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

pub fn apps(apps: &[App], output: Output) {
    if output == Output::Json {
        println!(
            "{}",
            json!({ "apps": apps.iter().map(app_json).collect::<Vec<_>>() })
        );
        return;
    }
    table(
        &["HOSTNAME", "NAME", "VERSION", "SLIVER", "BYTES", "DEPLOYED"],
        apps.iter()
            .map(|a| {
                vec![
                    a.spec
                        .as_ref()
                        .map(|s| s.hostname.clone())
                        .unwrap_or_default(),
                    a.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
                    a.version.to_string(),
                    a.sliver_id.chars().take(12).collect(),
                    a.sliver_bytes.to_string(),
                    when(a.deployed_at_ms),
                ]
            })
            .collect(),
    );
}

pub fn app_detail(got: &GetAppResponse, output: Output) {
    let app = got.app.clone().unwrap_or_default();
    if output == Output::Json {
        println!(
            "{}",
            json!({
                "app": app_json(&app),
                "history": got.history.iter().map(app_json).collect::<Vec<_>>(),
            })
        );
        return;
    }
    let detail = app_json(&app);
    println!("hostname  {}", detail["hostname"].as_str().unwrap_or(""));
    println!("name      {}", detail["name"].as_str().unwrap_or(""));
    println!("version   {}", app.version);
    println!(
        "sliver    {} ({} bytes, entry {})",
        app.sliver_id, app.sliver_bytes, app.entry
    );
    println!("limits    {}", detail["limits"]);
    println!("fetch     {}", detail["fetch"]);
    println!("env keys  {}", detail["env_keys"]);
    println!("versions kept for rollback:");
    table(
        &["VERSION", "SLIVER", "DEPLOYED", ""],
        got.history
            .iter()
            .map(|h| {
                vec![
                    h.version.to_string(),
                    h.sliver_id.chars().take(12).collect(),
                    when(h.deployed_at_ms),
                    if h.version == app.version {
                        "current".into()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect(),
    );
}

pub fn nodes(nodes: &ListNodesResponse, output: Output) {
    if output == Output::Json {
        let list: Vec<Value> = nodes.nodes.iter().map(nano_proto::json::node).collect();
        println!("{}", json!({ "revision": nodes.revision, "nodes": list }));
        return;
    }
    table(
        &[
            "NODE",
            "STATUS",
            "REVISION",
            "APPS",
            "ISOLATES",
            "LAST SEEN",
            "PROBLEMS",
        ],
        nodes
            .nodes
            .iter()
            .map(|n| {
                let problems: Vec<String> = n
                    .apps
                    .iter()
                    .filter(|a| !a.error.is_empty())
                    .map(|a| format!("{} v{}: {}", a.hostname, a.wanted_version, a.error))
                    .collect();
                vec![
                    n.node_id.clone(),
                    match (n.connected, n.drained) {
                        (true, false) => "connected",
                        (true, true) => "connected, drained",
                        (false, _) => "disconnected",
                    }
                    .into(),
                    format!("{}/{}", n.revision, nodes.revision),
                    n.apps.len().to_string(),
                    n.isolates.to_string(),
                    when(n.last_seen_ms),
                    problems.join("; "),
                ]
            })
            .collect(),
    );
}

pub fn isolates(isolates: &[Isolate], output: Output) {
    if output == Output::Json {
        let list: Vec<Value> = isolates.iter().map(nano_proto::json::isolate).collect();
        println!("{}", json!({ "isolates": list }));
        return;
    }
    table(
        &[
            "NODE",
            "HOSTNAME",
            "ISOLATE",
            "STATE",
            "HEAP",
            "PRESSURE",
            "REQUESTS",
            "LAST USED",
        ],
        isolates
            .iter()
            .map(|i| {
                vec![
                    i.node_id.clone(),
                    i.hostname.clone(),
                    i.isolate.clone(),
                    i.state.clone(),
                    format!(
                        "{:.1}/{:.0} MiB",
                        i.heap_used_bytes as f64 / 1048576.0,
                        i.heap_limit_bytes as f64 / 1048576.0
                    ),
                    i.pressure.clone(),
                    i.requests.to_string(),
                    when(i.last_used_ms),
                ]
            })
            .collect(),
    );
}

/// The UTC time of day of `ms` since the Unix epoch, to the millisecond.
fn clock(ms: u64) -> String {
    let of_day = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3_600_000,
        of_day / 60_000 % 60,
        of_day / 1000 % 60,
        of_day % 1000
    )
}

/// One line of `nanoctl tail`: the event as JSON with its node (`--output json`), or a short
/// line per request, its console lines and exception under it.
pub fn tail_line(line: &TailLine, output: Output) {
    let event: Value = serde_json::from_str(&line.event_json).unwrap_or(Value::Null);
    if output == Output::Json {
        if line.dropped > 0 {
            println!(
                "{}",
                json!({ "node": line.node_id, "dropped": line.dropped })
            );
        }
        if let Value::Object(mut event) = event {
            event.insert("node".into(), line.node_id.clone().into());
            println!("{}", Value::Object(event));
        }
        return;
    }
    if line.dropped > 0 {
        let from = if line.node_id.is_empty() {
            String::new()
        } else {
            format!(" (node {})", line.node_id)
        };
        println!("... {} events dropped{from}", line.dropped);
    }
    if event.is_null() {
        return;
    }
    println!(
        "{} {} {} {} {} {} wall {:.1}ms cpu {:.1}ms",
        event["time_ms"].as_u64().map_or_else(String::new, clock),
        line.node_id,
        event["method"].as_str().unwrap_or(""),
        event["url"].as_str().unwrap_or(""),
        event["status"],
        event["outcome"].as_str().unwrap_or(""),
        event["wall_ms"].as_f64().unwrap_or(0.0),
        event["cpu_ms"].as_f64().unwrap_or(0.0),
    );
    for (name, value) in event["headers"].as_object().into_iter().flatten() {
        println!("    {name}: {}", value.as_str().unwrap_or(""));
    }
    for log in event["logs"].as_array().into_iter().flatten() {
        println!(
            "    {} {}",
            log["level"].as_str().unwrap_or(""),
            log["text"].as_str().unwrap_or("")
        );
    }
    if let Some(dropped) = event["logs_dropped"].as_u64() {
        println!("    ... {dropped} more console lines");
    }
    if let Some(stack) = event["exception"]["stack"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        for frame in stack.lines() {
            println!("    {frame}");
        }
    } else if let Some(message) = event["exception"]["message"].as_str() {
        println!("    {message}");
    }
}
