//! The admin surface: Prometheus metrics, health, readiness, the isolate list, access rules,
//! and the node-wide memory budget seen through them.

use std::net::SocketAddr;

use nano_tests::{Nano, block_on, body, request, sample};
use serde_json::json;

fn node() -> Nano {
    Nano::start(json!({
        "admin": { "token": "an-admin-token-of-some-length" },
        "apps": [
            { "hostname": "a.example", "entrypoint": "hello/app.js",
              "env": { "NAME": "a", "SECRET": "do-not-show-me" }, "limits": { "workers": 2 } },
            { "hostname": "spin.example", "entrypoint": "cpu-spin/app.js", "limits": { "workers": 1 } },
            { "hostname": "echo.example", "entrypoint": "echo/app.js" }
        ]
    }))
}

async fn admin(nano: &Nano, path: &str) -> nano_tests::Reply {
    nano.get("127.0.0.1", path).await
}

#[test]
fn metrics_count_exactly_and_pass_promtool() {
    let nano = node();
    block_on(async {
        for _ in 0..7 {
            assert_eq!(nano.get("a.example", "/").await.status, 200);
        }
        for _ in 0..3 {
            assert_eq!(nano.get("who-is-this.example", "/").await.status, 404);
        }
        assert_eq!(nano.get("spin.example", "/bomb").await.status, 503);

        // A request's CPU time is recorded when its JS returns, which may be just after its
        // response went out: wait for the seventh, then every count must be exact.
        let cpu_count = r#"nano_cpu_time_ms_count{hostname="a.example"}"#;
        let deadline = std::time::Instant::now() + nano_tests::PATIENCE;
        let reply = loop {
            let reply = admin(&nano, "/_admin/metrics").await;
            if sample(&reply.body, cpu_count) == Some(7.0) || std::time::Instant::now() > deadline {
                break reply;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        assert_eq!(reply.status, 200);
        assert!(
            reply
                .header("content-type")
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        let m = &reply.body;
        for (series, want) in [
            (
                r#"nano_requests_total{hostname="a.example",status="200"}"#,
                7.0,
            ),
            (
                r#"nano_requests_total{hostname="_unknown",status="404"}"#,
                3.0,
            ),
            (
                r#"nano_requests_total{hostname="spin.example",status="503"}"#,
                1.0,
            ),
            (
                r#"nano_terminations_total{hostname="spin.example",reason="cpu"}"#,
                1.0,
            ),
            (
                r#"nano_request_duration_ms_count{hostname="a.example"}"#,
                7.0,
            ),
            (r#"nano_cpu_time_ms_count{hostname="a.example"}"#, 7.0),
            (r#"nano_context_resets_total{hostname="a.example"}"#, 7.0),
        ] {
            assert_eq!(sample(m, series), Some(want), "{series} in\n{m}");
        }
        // Workers start on demand: the seven requests, one after another, ran on one worker or
        // (when a request came before the last one's slot was released) on both.
        let active = sample(m, r#"nano_active_isolates{hostname="a.example"}"#);
        assert!(matches!(active, Some(1.0 | 2.0)), "{active:?} in\n{m}");
        assert!(
            !m.contains("who-is-this"),
            "unknown hosts never become label values"
        );
        assert!(
            m.contains(r#"nano_memory_bytes{hostname="a.example",isolate="a.example/0/1"}"#),
            "{m}"
        );
        assert!(m.contains("nano_memory_pressure_level{"), "{m}");
        assert!(m.contains("nano_build_info{"), "{m}");
        assert!(m.contains("process_resident_memory_bytes"), "{m}");

        nano_tests::check_with_promtool(m);
    });
}

#[test]
fn health_ready_and_isolates_without_secrets() {
    let nano = node();
    block_on(async {
        let health = admin(&nano, "/_admin/health").await;
        assert_eq!(health.status, 200);
        assert_eq!(health.json()["status"], "ok");
        assert!(health.json()["uptime_secs"].is_u64());

        // Not ready until every app is prepared (its workers start on demand): poll for it.
        let deadline = std::time::Instant::now() + nano_tests::PATIENCE;
        loop {
            let ready = admin(&nano, "/_admin/ready").await;
            if ready.status == 200 {
                assert_eq!(ready.json()["ready"], true);
                break;
            }
            assert_eq!(ready.status, 503, "{}", ready.body);
            assert!(
                std::time::Instant::now() < deadline,
                "never ready: {}",
                ready.body
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }

        // No app has had a request: no worker runs, none is listed.
        let isolates = admin(&nano, "/_admin/isolates").await;
        assert_eq!(isolates.json()["isolates"], json!([]), "{}", isolates.body);

        nano.get("a.example", "/").await;
        let isolates = admin(&nano, "/_admin/isolates").await;
        assert_eq!(isolates.status, 200);
        assert!(
            !isolates.body.contains("do-not-show-me"),
            "env values never appear"
        );
        // One request started one worker of a.example's two, and no other app's.
        let list = isolates.json()["isolates"].as_array().unwrap().clone();
        assert_eq!(list.len(), 1, "{list:?}");
        let a: Vec<_> = list
            .iter()
            .filter(|i| i["hostname"] == "a.example")
            .collect();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0]["requests_served"], 1);
        for field in [
            "isolate",
            "worker",
            "state",
            "heap_used_bytes",
            "heap_limit_bytes",
            "external_bytes",
            "pressure",
            "requests_served",
            "context_resets",
            "created_at_ms",
            "last_used_at_ms",
        ] {
            assert!(a[0].get(field).is_some(), "{field} missing in {}", a[0]);
        }
        assert_eq!(a[0]["heap_limit_bytes"], 128 * 1024 * 1024);
        assert!(["idle", "busy"].contains(&a[0]["state"].as_str().unwrap()));
    });
}

#[test]
fn admin_is_for_loopback_or_token_and_never_for_tenants() {
    let nano = node();
    block_on(async {
        // A tenant hostname never reaches the admin handlers, nor is /_admin routed to the app.
        let reply = nano.get("echo.example", "/_admin/metrics").await;
        assert_eq!(reply.status, 404);
        assert_eq!(reply.header("x-nano-error"), Some("not-found"));
        assert!(!reply.body.contains("nano_build_info"));

        // From a non-canonical loopback source (127.0.0.2): 401 without the token.
        let reply = from_source("127.0.0.2", nano.addr, "/_admin/metrics", None).await;
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert_eq!(reply.header("x-nano-error"), Some("unauthorized"));
        let reply = from_source(
            "127.0.0.2",
            nano.addr,
            "/_admin/metrics",
            Some("Bearer nope"),
        )
        .await;
        assert_eq!(reply.status, 401);
        let reply = from_source(
            "127.0.0.2",
            nano.addr,
            "/_admin/metrics",
            Some("Bearer an-admin-token-of-some-length"),
        )
        .await;
        assert_eq!(reply.status, 200);
        assert!(reply.body.contains("nano_build_info"));
    });
}

/// A request whose TCP source address is `source`.
async fn from_source(
    source: &str,
    addr: SocketAddr,
    path: &str,
    auth: Option<&str>,
) -> nano_tests::Reply {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut req = request("GET", "127.0.0.1", path);
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    nano_tests::send_on(stream, req.body(body("")).unwrap()).await
}

#[test]
fn separate_admin_listener_takes_admin_off_the_tenant_port() {
    let nano = Nano::start(json!({
        "admin": { "listen": "127.0.0.1:0" },
        "apps": [{ "hostname": "a.example", "entrypoint": "hello/app.js", "env": { "NAME": "a" } }]
    }));
    let admin_addr: SocketAddr = {
        let log = nano
            .log
            .wait_for("the admin listener", |t| t.contains("admin_addr="));
        let line = log.lines().find(|l| l.contains("admin_addr=")).unwrap();
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("admin_addr="))
            .unwrap()
            .parse()
            .unwrap()
    };
    block_on(async {
        let on_tenant_port = nano.get("127.0.0.1", "/_admin/health").await;
        assert_eq!(on_tenant_port.status, 404);
        let req = request("GET", "127.0.0.1", "/_admin/health")
            .body(body(""))
            .unwrap();
        assert_eq!(nano_tests::send(admin_addr, req).await.status, 200);
        let req = request("GET", "a.example", "/").body(body("")).unwrap();
        assert_eq!(
            nano_tests::send(admin_addr, req).await.status,
            404,
            "no tenant traffic there"
        );
    });
}

#[test]
fn node_memory_budget_evicts_idle_isolates_lru_first() {
    let nano = Nano::start(json!({
        "node": { "memory_mb": 20 },
        "apps": [
            { "hostname": "old.example", "entrypoint": "memory-hog/app.js", "context_reset": false,
              "limits": { "workers": 1 } },
            { "hostname": "new.example", "entrypoint": "memory-hog/app.js", "context_reset": false,
              "limits": { "workers": 1 } }
        ]
    }));
    block_on(async {
        assert_eq!(nano.get("old.example", "/").await.status, 200);
        assert_eq!(nano.get("new.example", "/").await.status, 200);
        // Together they hold over 20 MiB (12 MB each), one alone fits: the least recently used
        // goes.
        nano.log
            .wait_for("an eviction", |t| t.contains("evicting the isolate"));
        let line = nano
            .log
            .text()
            .lines()
            .find(|l| l.contains("evicting the isolate"))
            .unwrap()
            .to_owned();
        assert!(line.contains("hostname=old.example"), "{line}");
        let state_of = |isolates: serde_json::Value, host: &str| {
            isolates["isolates"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["hostname"] == host)
                .unwrap()["state"]
                .clone()
        };
        let deadline = std::time::Instant::now() + nano_tests::PATIENCE;
        while state_of(admin(&nano, "/_admin/isolates").await.json(), "old.example") != "evicted" {
            assert!(
                std::time::Instant::now() < deadline,
                "old.example never shown as evicted"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_ne!(
            state_of(admin(&nano, "/_admin/isolates").await.json(), "new.example"),
            "evicted"
        );
        let metrics = admin(&nano, "/_admin/metrics").await.body;
        assert_eq!(
            sample(
                &metrics,
                r#"nano_evictions_total{hostname="old.example",reason="node_budget"}"#
            ),
            Some(1.0),
            "{metrics}"
        );
        // The evicted app comes back on its next request.
        let reply = nano.get("old.example", "/").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "holding 1500000 numbers")
        );
    });
}
