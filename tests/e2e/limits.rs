//! Hostile apps: every limit ends the request cleanly, the process lives, and the next request to
//! the same app (same worker, one per app) and to another app is answered normally.

use nano_tests::{Nano, block_on};
use serde_json::{Value, json};

/// (fixture, status, x-nano-error) for `GET /bomb`; where two limits can legitimately win the
/// race (CPU or memory first, depending on the machine), both are listed.
const CASES: &[(&str, u16, &[&str])] = &[
    ("cpu-spin", 503, &["cpu-limit"]),
    ("cpu-bursts", 503, &["cpu-limit"]),
    ("await-loop", 503, &["cpu-limit"]),
    ("then-loop", 503, &["cpu-limit"]),
    ("regex-backtrack", 503, &["cpu-limit"]),
    ("never-settles", 504, &["timeout"]),
    ("buffer-push", 503, &["memory-limit"]),
    ("big-arraybuffer", 503, &["memory-limit"]),
    // Filled in JS by the runtime (natively it cannot be stopped and aborts V8).
    ("huge-array", 503, &["cpu-limit", "memory-limit"]),
    // Past V8's own bounds, or refused by the runtime up front: ordinary, catchable JS errors.
    ("string-growth", 500, &["handler-exception"]),
    ("json-bomb", 500, &["handler-exception"]),
    ("huge-repeat", 500, &["handler-exception"]),
    ("deep-recursion", 500, &["handler-exception"]),
    ("atomics-wait", 500, &["handler-exception"]),
];

fn hostile_node() -> Nano {
    let mut apps: Vec<Value> = CASES
        .iter()
        .map(|&(name, _, codes)| {
            // Only the wall-clock case gets a short wall clock: under the others a starved
            // machine could take a second of wall time for 50 ms of CPU and answer 504.
            let timeout_secs = if codes == ["timeout"] { 1 } else { 120 };
            json!({
                "hostname": format!("{name}.example"),
                "entrypoint": format!("{name}/app.js"),
                "limits": { "workers": 1, "cpu_ms": 50, "memory_mb": 64, "timeout_secs": timeout_secs }
            })
        })
        .collect();
    apps.push(json!({ "hostname": "calm.example", "entrypoint": "hello/app.js", "env": { "NAME": "calm" } }));
    apps.push(
        json!({ "hostname": "toplevel.example", "entrypoint": "top-level-loop/app.js",
                      "limits": { "startup_ms": 200 } }),
    );
    Nano::start(json!({ "apps": apps }))
}

#[test]
fn every_hostile_request_ends_cleanly_and_the_node_serves_on() {
    let nano = hostile_node();
    block_on(async {
        let mut wrong = Vec::new();
        for &(name, status, codes) in CASES {
            let host = format!("{name}.example");
            let reply = nano.get(&host, "/bomb").await;
            let code = reply.header("x-nano-error").unwrap_or_default().to_owned();
            if reply.status != status || !codes.contains(&code.as_str()) {
                wrong.push(format!(
                    "{name}: got {} {:?} {}",
                    reply.status,
                    reply.header("x-nano-error"),
                    reply.body.trim()
                ));
                continue;
            }
            if code.ends_with("-limit") || code == "timeout" {
                let body = reply.json();
                assert!(
                    body["limit"].is_string() && body["used"].is_string(),
                    "{name}: {body}"
                );
            }
            let again = nano.get(&host, "/").await;
            assert_eq!(
                (again.status, again.body.as_str()),
                (200, &*format!("ok {name}")),
                "{name} after the bomb"
            );
            let other = nano.get("calm.example", "/").await;
            assert_eq!(
                (other.status, other.body.as_str()),
                (200, "hello from calm"),
                "calm after {name}"
            );
        }
        assert!(
            wrong.is_empty(),
            "unexpected outcomes:\n{}",
            wrong.join("\n")
        );
    });
    let is_cpu_line = |l: &str| l.contains("request terminated") && l.contains("cpu-spin.example");
    let log = nano
        .log
        .wait_for("the CPU termination", |t| t.lines().any(is_cpu_line));
    let cpu = log.lines().find(|l| is_cpu_line(l)).unwrap();
    for field in ["limit=cpu", "path=/bomb", "limit_ms=50", "cpu_ms="] {
        assert!(cpu.contains(field), "{field} missing in {cpu}");
    }
}

#[test]
fn cpu_limit_reports_what_was_used() {
    let nano = hostile_node();
    block_on(async {
        let reply = nano.get("cpu-spin.example", "/bomb").await;
        let body = reply.json();
        assert_eq!(body["error"], "cpu-limit");
        assert_eq!(body["limit"], "50ms");
        let used: u64 = body["used"]
            .as_str()
            .unwrap()
            .trim_end_matches("ms")
            .parse()
            .unwrap();
        assert!(used >= 50, "the CPU used is at least the limit: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("limits.cpu_ms"),
            "{body}"
        );
    });
}

#[test]
fn an_endless_top_level_fails_the_app_not_the_node() {
    let nano = hostile_node();
    block_on(async {
        let reply = nano.get("toplevel.example", "/").await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.header("x-nano-error"), Some("app-unavailable"));
        assert!(
            reply.body.contains("start-up budget of 200 ms"),
            "{}",
            reply.body
        );
        // The child said whose fault it was by its exit code, not a crash or the node.
        nano.log.wait_for_count("kind=\"startup-budget\"", 1);
        let other = nano.get("calm.example", "/").await;
        assert_eq!(other.status, 200);
    });
}

#[test]
fn work_queued_by_a_killed_request_never_runs() {
    for reset in [true, false] {
        let nano = Nano::start(json!({ "apps": [
            { "hostname": "zombie.example", "entrypoint": "cpu-zombie/app.js", "context_reset": reset,
              "limits": { "workers": 1, "cpu_ms": 30 } }
        ]}));
        block_on(async {
            let reply = nano.get("zombie.example", "/bomb").await;
            assert_eq!(
                reply.header("x-nano-error"),
                Some("cpu-limit"),
                "reset={reset}"
            );
            // The same worker serves several more requests, draining its microtasks and timers.
            for _ in 0..5 {
                let reply = nano.get("zombie.example", "/").await;
                assert_eq!(
                    (reply.status, reply.body.as_str()),
                    (200, "ok cpu-zombie"),
                    "reset={reset}"
                );
            }
        });
        let log = nano
            .log
            .wait_for("the termination", |t| t.contains("request terminated"));
        assert!(
            !log.contains("ZOMBIE"),
            "reset={reset}: a killed request's work ran:\n{log}"
        );
    }
}

#[test]
fn many_terminations_in_a_row_keep_the_worker_serving() {
    let nano = Nano::start(json!({ "apps": [
        { "hostname": "spin.example", "entrypoint": "cpu-spin/app.js", "limits": { "workers": 1, "cpu_ms": 5 } }
    ]}));
    block_on(async {
        // More terminations than the worker quarantines before it replaces its isolate.
        for i in 0..40 {
            let reply = nano.get("spin.example", "/bomb").await;
            assert_eq!(reply.header("x-nano-error"), Some("cpu-limit"), "bomb {i}");
        }
        let reply = nano.get("spin.example", "/").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok cpu-spin"));
    });
    // The replacement can be logged just after the last answer (the worker recycles once it
    // is idle), so wait for it rather than read the log at once.
    nano.log.wait_for("the isolate recycled", |t| {
        t.contains("replacing the isolate")
    });
}

#[test]
fn an_isolate_left_over_95_percent_full_is_replaced() {
    let nano = Nano::start(json!({ "apps": [
        { "hostname": "full.example", "entrypoint": "near-limit/app.js", "context_reset": false,
          "limits": { "workers": 1, "memory_mb": 64, "cpu_ms": 5000 } }
    ]}));
    block_on(async {
        let reply = nano.get("full.example", "/fill").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "holding 62 MiB"));
        nano.log.wait_for("the replacement", |t| {
            t.contains("replacing the isolate") && t.contains("reason=memory")
        });
        // The fresh isolate starts empty.
        let reply = nano.get("full.example", "/").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "holding 0 MiB"));
    });
}

/// The 95% tier: an isolate left over 95% full after a request ends the requests still in flight
/// on it with 503 memory-limit at once (not at their wall clock) and starts afresh.
#[test]
fn an_isolate_over_95_percent_ends_the_requests_in_flight() {
    let nano = Nano::start(json!({ "apps": [
        { "hostname": "full.example", "entrypoint": "near-limit/app.js", "context_reset": false,
          "limits": { "workers": 1, "memory_mb": 64, "cpu_ms": 5000, "timeout_secs": 600 } }
    ]}));
    block_on(async {
        let waiter = {
            let nano_addr = nano.addr;
            nano_tests::spawn_get(nano_addr, "full.example", "/wait")
        };
        let deadline = std::time::Instant::now() + nano_tests::PATIENCE;
        while nano.get("full.example", "/waiting").await.body != "1" {
            assert!(std::time::Instant::now() < deadline, "/wait never started");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let reply = nano.get("full.example", "/fill").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "holding 62 MiB"));
        let ended = waiter.await.unwrap();
        assert_eq!(ended.status, 503, "{}", ended.body);
        assert_eq!(ended.header("x-nano-error"), Some("memory-limit"));
        let reply = nano.get("full.example", "/").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "holding 0 MiB"));
    });
    nano.log.wait_for("the emergency", |t| {
        t.contains("memory emergency") && t.contains("in_flight=1")
    });
}

/// The wall clock ends JS that spins as well as JS that waits: with a CPU budget far above it,
/// a spinning request gets 504 `timeout` (CPU time cannot outrun wall time on one thread).
#[test]
fn the_wall_clock_ends_spinning_js_with_504() {
    let nano = Nano::start(json!({ "apps": [
        { "hostname": "spin.example", "entrypoint": "cpu-spin/app.js",
          "limits": { "workers": 1, "cpu_ms": 60000, "timeout_secs": 1 } }
    ]}));
    block_on(async {
        let reply = nano.get("spin.example", "/bomb").await;
        assert_eq!(reply.status, 504, "{}", reply.body);
        assert_eq!(reply.header("x-nano-error"), Some("timeout"));
        assert_eq!(reply.json()["limit"], "1s", "{}", reply.body);
        let again = nano.get("spin.example", "/").await;
        assert_eq!((again.status, again.body.as_str()), (200, "ok cpu-spin"));
    });
}
