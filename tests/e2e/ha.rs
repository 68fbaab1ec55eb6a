//! Control-plane replicas on a real etcd (Debian's etcd-server, started by the tests): two
//! replicas serve one fleet, a replica killed under traffic costs no tenant request and its
//! nodes move to the other, a deploy retried on another replica is applied once, tails and
//! drains cross replicas, an etcd outage (or a lost quorum in a 3-member cluster) refuses
//! changes while the nodes keep serving and converges when etcd returns, TLS with client
//! certificates, and `migrate` moves a sled store into etcd.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nano_tests::{ControlPlane, Etcd, NODE_TOKEN, Nano, OPERATOR_TOKEN, PATIENCE, block_on};
use serde_json::json;

use crate::fleet::{app, authed, node, ok};

/// `nanoctl deploy` of an app answering `text` (written to `file` in `dir`) to `host`, which
/// must succeed; its output.
fn deploy(cp: &ControlPlane, dir: &std::path::Path, host: &str, file: &str, text: &str) -> String {
    ok(&cp.nanoctl(&["deploy", &app(dir, file, text), "--hostname", host]))
}

/// A replica on `etcd` with `flags` and `env` (besides the tokens), its stderr in the log.
fn spawn_replica(
    etcd: &Etcd,
    flags: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, nano_tests::Log) {
    let url = etcd.url();
    let mut args = vec!["--etcd-endpoints", url.as_str()];
    args.extend_from_slice(flags);
    args.extend([
        "--grpc-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ]);
    let mut all = vec![
        ("NANO_OPERATOR_TOKEN", OPERATOR_TOKEN),
        ("NANO_NODE_TOKEN", NODE_TOKEN),
    ];
    all.extend_from_slice(env);
    nano_tests::spawn_logged("nano-controlplane", &args, &all)
}

/// A replica etcd turned away: it exits 1 saying etcd.
fn refused_at_start(mut child: std::process::Child, log: &nano_tests::Log) {
    let status = nano_tests::wait_exit(&mut child, log);
    assert_eq!(status.code(), Some(1), "{}", log.text());
    assert!(log.text().contains("etcd"), "{}", log.text());
}

/// `nanoctl nodes` on `cp`: node id -> connected.
fn connected(cp: &ControlPlane) -> Vec<(String, bool)> {
    cp.nanoctl_json(&["nodes"])["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node_id"].as_str().unwrap().to_owned(),
                n["connected"] == true,
            )
        })
        .collect()
}

/// Polls until `done` holds (failing past PATIENCE with `what`).
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn admin_get(cp: &ControlPlane, path: &str) -> String {
    let addr = cp.http;
    block_on(async move {
        nano_tests::send(
            addr,
            nano_tests::request("GET", "127.0.0.1", path)
                .body(nano_tests::body(""))
                .unwrap(),
        )
        .await
        .body
    })
}

/// A node's /_admin/health.
fn admin_get_node(node: &Nano) -> serde_json::Value {
    block_on(async { node.get("127.0.0.1", "/_admin/health").await.json() })
}

fn admin_health(cp: &ControlPlane) -> serde_json::Value {
    serde_json::from_str(&admin_get(cp, "/_admin/health")).unwrap()
}

/// GETs `host` on every node until `stop`; counts answers that are not 200 with one of `bodies`.
fn steady_traffic(
    nodes: Vec<std::net::SocketAddr>,
    host: &'static str,
    bodies: &'static [&'static str],
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        block_on(async move {
            let (mut sent, mut failed) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                for addr in &nodes {
                    let reply = nano_tests::send(
                        *addr,
                        nano_tests::request("GET", host, "/")
                            .body(nano_tests::body(""))
                            .unwrap(),
                    )
                    .await;
                    sent += 1;
                    if reply.status != 200 || !bodies.contains(&reply.body.as_str()) {
                        failed.push(format!("{addr}: {} {}", reply.status, reply.body));
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (sent, failed)
        })
    })
}

#[test]
fn two_replicas_serve_one_fleet_and_a_killed_replica_costs_no_request() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut a = ControlPlane::start_on_etcd(&etcd, "/nano", "127.0.0.1:0");
    let b = ControlPlane::start_on_etcd(&etcd, "/nano", "127.0.0.1:0");
    let (a_url, b_url) = (a.url(), b.url());
    // node-a prefers A, node-b prefers B; node-c knows only A.
    let na = node(json!([a_url, b_url]), "node-a", &dir.path().join("a"));
    let nb = node(json!([b_url, a_url]), "node-b", &dir.path().join("b"));
    let nc = node(a_url.as_str(), "node-c", &dir.path().join("c"));
    nb.log.wait_for("node-b on replica B", |t| {
        t.contains("connected to the control plane") && t.contains(&b_url)
    });
    // Either replica shows the whole fleet.
    a.wait_for_nodes(3);
    b.wait_for_nodes(3);
    let (ha, hb) = (admin_health(&a), admin_health(&b));
    assert_eq!(ha["store_id"], hb["store_id"], "one cluster, one id");
    assert_eq!(ha["store"]["ok"], true, "{ha}");

    // A deploy through A reaches node-b, subscribed to B (the deploy waits for every node).
    let host = "ha.test";
    let out = deploy(&a, dir.path(), host, "v1.js", "first");
    assert!(
        out.contains("version 1 serves on node-a, node-b, node-c"),
        "{out}"
    );
    // Steady traffic through node-a and node-b while A dies.
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_traffic(
        vec![na.addr, nb.addr],
        host,
        &["first", "second"],
        stop.clone(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let sessions_before = na
        .log
        .text()
        .matches("connected to the control plane")
        .count();
    a.kill();
    // node-a moves to B; node-c (which knows only A) shows as disconnected once A's lease ends.
    na.log
        .wait_for_count("connected to the control plane", sessions_before + 1);
    eventually(
        "node-c disconnected and node-a connected, seen from B",
        || {
            let nodes = connected(&b);
            nodes.contains(&("node-c".into(), false)) && nodes.contains(&("node-a".into(), true))
        },
    );
    let health = admin_get_node(&na);
    assert_eq!(health["fleet"]["control_plane"], b_url.as_str(), "{health}");
    // nanoctl skips the dead replica; the deploy goes through B and reaches both live nodes.
    let both = format!("{a_url},{b_url}");
    let out = ok(&nano_tests::nanoctl(
        &both,
        Some(OPERATOR_TOKEN),
        &[
            "deploy",
            &app(dir.path(), "v2.js", "second"),
            "--hostname",
            host,
        ],
    ));
    assert!(out.contains("version 2 serves on node-a, node-b"), "{out}");
    // node-a resumed on B from its revision: of what B served, only the new version's sliver
    // was downloaded twice (node-a, node-b) besides node-b's first (v1); node-a did not fetch
    // v1 again.
    let metrics = admin_get(&b, "/_admin/metrics");
    assert_eq!(
        nano_tests::sample(
            &metrics,
            "nano_controlplane_sliver_downloads_total{result=\"ok\"}"
        ),
        Some(3.0),
        "{metrics}"
    );
    // An eviction through B reaches node-a, which moved there, and node-b.
    let evicted = nano_tests::nanoctl(&both, Some(OPERATOR_TOKEN), &["evict", host]);
    let evicted = ok(&evicted);
    assert!(
        evicted.contains("node-a") && evicted.contains("node-b"),
        "{evicted}"
    );
    na.log.wait_for("node-a got the eviction", |t| {
        t.contains("evicting isolates on the control plane's command")
    });
    // B lists the isolates of every node, including node-a's, reported through A before.
    eventually("B lists node-a's and node-b's isolates", || {
        let isolates = b.nanoctl_json(&["isolates", host]);
        let nodes: Vec<&str> = isolates["isolates"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["node_id"].as_str())
            .collect();
        nodes.contains(&"node-a") && nodes.contains(&"node-b")
    });
    stop.store(true, Ordering::Relaxed);
    let (sent, failed) = load.join().unwrap();
    assert!(sent > 0);
    assert!(
        failed.is_empty(),
        "{} of {sent} requests failed: {failed:?}",
        failed.len()
    );
    block_on(async {
        for n in [&na, &nb] {
            assert_eq!(n.get(host, "/").await.body, "second");
        }
        // node-c, cut off from the control plane, keeps serving its last good state.
        assert_eq!(nc.get(host, "/").await.body, "first");
    });
}

#[test]
fn an_etcd_outage_refuses_changes_while_nodes_serve_then_converges() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start_on_etcd(&etcd, "/nano", "127.0.0.1:0");
    let n = node(cp.url(), "node-a", &dir.path().join("a"));
    cp.wait_for_nodes(1);
    let host = "outage.test";
    deploy(&cp, dir.path(), host, "v1.js", "first");

    etcd.kill();
    let control_status = |cp: &ControlPlane| {
        let url = cp.url();
        block_on(async move {
            use tonic_health::pb::HealthCheckRequest;
            use tonic_health::pb::health_client::HealthClient;
            let channel = tonic::transport::Endpoint::from_shared(url)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut health = HealthClient::new(channel);
            let mut status = Vec::new();
            for service in ["nano.v1.Control", "nano.v1.Fleet"] {
                status.push(
                    health
                        .check(HealthCheckRequest {
                            service: service.into(),
                        })
                        .await
                        .unwrap()
                        .into_inner()
                        .status,
                );
            }
            status
        })
    };
    use tonic_health::pb::health_check_response::ServingStatus;
    let (serving, not_serving) = (
        ServingStatus::Serving as i32,
        ServingStatus::NotServing as i32,
    );
    eventually("Control NOT_SERVING while etcd is down", || {
        control_status(&cp) == vec![not_serving, serving]
    });
    let health = admin_health(&cp);
    assert_eq!(health["store"]["ok"], false, "{health}");
    // A deploy is refused with a message that names etcd; nothing is lost on the node.
    let out = cp.nanoctl(&[
        "deploy",
        &app(dir.path(), "v2.js", "second"),
        "--hostname",
        host,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("etcd") && stderr.contains("nodes keep serving"),
        "{stderr}"
    );
    block_on(async {
        let reply = n.get(host, "/").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "first"));
    });

    etcd.restart();
    eventually("Control SERVING again", || {
        control_status(&cp) == vec![serving, serving]
    });
    cp.wait_for_nodes(1);
    let out = deploy(&cp, dir.path(), host, "v2.js", "second");
    assert!(out.contains("version 2 serves on node-a"), "{out}");
    block_on(async {
        assert_eq!(n.get(host, "/").await.body, "second");
    });
}

#[test]
fn migrate_moves_a_sled_store_into_etcd_and_refuses_a_used_prefix() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sled");
    let mut sled = ControlPlane::start(&data, "127.0.0.1:0");
    let host = "moved.test";
    for (file, text) in [("v1.js", "first"), ("v2.js", "second")] {
        ok(&sled.nanoctl(&[
            "deploy",
            &app(dir.path(), file, text),
            "--hostname",
            host,
            "--no-wait",
        ]));
    }
    let sled_id = admin_health(&sled)["store_id"].clone();
    let revision = admin_health(&sled)["revision"].clone();
    sled.signal(libc::SIGTERM);
    assert!(sled.wait().success());

    let migrate = |prefix: &str| {
        std::process::Command::new(nano_tests::binary("nano-controlplane"))
            .args(["migrate", "--from-data-dir", data.to_str().unwrap()])
            .args(["--to-etcd-endpoints", &etcd.url(), "--etcd-prefix", prefix])
            .output()
            .unwrap()
    };
    let out = migrate("/moved");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("copied 1 apps, 2 kept versions, 2 slivers"),
        "{said}"
    );
    // A second run finds the prefix in use and changes nothing.
    let again = migrate("/moved");
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already holds a cluster"), "{stderr}");

    // A replica on the copy: same store id and revision, the history and its slivers work.
    let cp = ControlPlane::start_on_etcd(&etcd, "/moved", "127.0.0.1:0");
    let health = admin_health(&cp);
    assert_eq!(
        (health["store_id"].clone(), health["revision"].clone()),
        (sled_id, revision)
    );
    let n = node(cp.url(), "node-a", &dir.path().join("a"));
    cp.wait_for_nodes(1);
    eventually("the node serves the migrated app", || {
        block_on(async { n.get(host, "/").await.body == "second" })
    });
    ok(&cp.nanoctl(&["rollback", host]));
    eventually(
        "the rollback to the migrated version 1 reaches the node",
        || block_on(async { n.get(host, "/").await.body == "first" }),
    );
}

#[test]
fn a_deploy_retried_on_another_replica_is_applied_once() {
    use nano_proto::v1::control_client::ControlClient;
    use nano_proto::v1::{AppSpec, DeployRequest, GetAppRequest};
    let Some(etcd) = Etcd::start() else { return };
    let a = ControlPlane::start_on_etcd(&etcd, "/nano", "127.0.0.1:0");
    let b = ControlPlane::start_on_etcd(&etcd, "/nano", "127.0.0.1:0");
    let sliver = nano_sliver::Sliver::build(
        "retry",
        "app.js",
        "test",
        vec![(
            "app.js".into(),
            nano_sliver::PartKind::Module,
            b"export default { fetch() { return new Response('once'); } }".to_vec(),
        )],
    )
    .unwrap();
    let request = DeployRequest {
        spec: Some(AppSpec {
            hostname: "retry.test".into(),
            ..Default::default()
        }),
        sliver: sliver.bytes().to_vec(),
        deploy_id: "0f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
    };
    block_on(async {
        let mut on_a = ControlClient::connect(a.url()).await.unwrap();
        let mut on_b = ControlClient::connect(b.url()).await.unwrap();
        let first = on_a
            .deploy(authed(OPERATOR_TOKEN, request.clone()))
            .await
            .unwrap()
            .into_inner();
        // As if A's answer was lost: nanoctl sends the same deploy to B.
        let retried = on_b
            .deploy(authed(OPERATOR_TOKEN, request))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first, retried, "the retry returns the first deploy");
        let history = on_b
            .get_app(authed(
                OPERATOR_TOKEN,
                GetAppRequest {
                    hostname: "retry.test".into(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .history;
        assert_eq!(history.len(), 1, "one version, not two");
    });
}

#[test]
fn a_three_member_etcd_loses_one_member_and_keeps_deploying_but_not_two() {
    let Some(mut etcd) = Etcd::cluster(3) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start_on_etcd(&etcd, "/nano", "127.0.0.1:0");
    let n = node(cp.url(), "node-a", &dir.path().join("a"));
    cp.wait_for_nodes(1);
    let host = "quorum.test";
    let deploy = |file: &str, text: &str| {
        cp.nanoctl(&["deploy", &app(dir.path(), file, text), "--hostname", host])
    };
    ok(&deploy("v1.js", "first"));
    // One member of three down: a majority remains, deploys go on.
    etcd.kill_member(0);
    let out = ok(&deploy("v2.js", "second"));
    assert!(out.contains("version 2 serves on node-a"), "{out}");
    // Two down: no quorum. Refused, naming etcd; the node serves on.
    etcd.kill_member(1);
    let out = deploy("v3.js", "third");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("etcd"), "{stderr}");
    block_on(async { assert_eq!(n.get(host, "/").await.body, "second") });
    // A member back: quorum again, and the fleet converges on the next deploy.
    etcd.restart_member(1);
    cp.wait_for_nodes(1);
    let out = ok(&deploy("v3.js", "third"));
    assert!(out.contains("version 3 serves on node-a"), "{out}");
    block_on(async { assert_eq!(n.get(host, "/").await.body, "third") });
}

#[test]
fn a_replica_reaches_etcd_over_tls_with_its_client_certificate_and_not_without() {
    let Some(etcd) = Etcd::start_tls() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tls = etcd.tls();
    let (ca, cert, key) = (
        tls.ca.to_str().unwrap(),
        tls.client_cert.to_str().unwrap(),
        tls.client_key.to_str().unwrap(),
    );
    let cp = ControlPlane::start_on_etcd_with(
        &etcd,
        "/nano",
        "127.0.0.1:0",
        &["--etcd-ca-cert", ca, "--etcd-cert", cert, "--etcd-key", key],
    );
    let out = ok(&cp.nanoctl(&[
        "deploy",
        &app(dir.path(), "v1.js", "first"),
        "--hostname",
        "tls.test",
        "--no-wait",
    ]));
    assert!(out.contains("deployed tls.test version 1"), "{out}");
    assert_eq!(admin_health(&cp)["store"]["ok"], true);
    // Without the client certificate etcd refuses the replica, which says so and exits 1.
    let (child, log) = spawn_replica(&etcd, &["--etcd-ca-cert", ca], &[]);
    refused_at_start(child, &log);
}

#[test]
fn a_tail_and_a_drain_on_one_replica_reach_a_node_on_another() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let a = ControlPlane::start_on_etcd(&etcd, "/nano", "127.0.0.1:0");
    let b = ControlPlane::start_on_etcd(&etcd, "/nano", "127.0.0.1:0");
    // node-b knows only B; the tail runs on A.
    let nb = node(b.url(), "node-b", &dir.path().join("b"));
    let na = node(a.url(), "node-a", &dir.path().join("a"));
    a.wait_for_nodes(2);
    let host = "tailed.test";
    deploy(&a, dir.path(), host, "v1.js", "first");
    let tail = crate::fleet::CtlTail::start(&a, &[host]);
    tail.wait_live(&nb, host, "/from-b");
    tail.wait_live(&na, host, "/from-a");
    block_on(async {
        nb.get(host, "/b-again").await;
    });
    let event = tail.next();
    assert_eq!(
        (event["node"].as_str(), event["url"].as_str()),
        (Some("node-b"), Some("http://tailed.test/b-again")),
        "{event}"
    );
    // A tail's sample rate reaches the node on the other replica: with only a 1% tail left
    // on A, node-b records and sends (to B) about 1% of its events.
    let sampled = crate::fleet::CtlTail::start(&a, &[host, "--sample", "0.01"]);
    drop(tail);
    crate::fleet::wait_until_sampled_at_one_percent(&b, &nb, host);
    drop(sampled);
    // A drain through A reaches node-b on B (and is recorded for the cluster); undrained
    // through B.
    let drained = ok(&a.nanoctl(&["drain", "node-b"]));
    assert_eq!(drained.trim(), "drained node-b", "{drained}");
    let ready = |want: u16| {
        eventually(&format!("node-b ready answers {want}"), || {
            block_on(async { nb.get("127.0.0.1", "/_admin/ready").await.status == want })
        })
    };
    ready(503);
    ok(&b.nanoctl(&["undrain", "node-b"]));
    ready(200);
}

#[test]
fn a_replica_signs_in_to_etcd_with_its_user_and_a_wrong_password_is_refused() {
    let Some(etcd) = Etcd::start() else { return };
    etcd.enable_auth("s3cret-pw");
    let start = |password: &str| {
        spawn_replica(
            &etcd,
            &["--etcd-user", "root"],
            &[("NANO_ETCD_PASSWORD", password)],
        )
    };
    let (child, log) = start("wrong");
    refused_at_start(child, &log);
    // The right password: it starts and takes a deploy.
    let (mut child, log) = start("s3cret-pw");
    let grpc = nano_tests::log_addr(&log, "grpc_addr");
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&nano_tests::nanoctl(
        &format!("http://{grpc}"),
        Some(OPERATOR_TOKEN),
        &[
            "deploy",
            &app(dir.path(), "v1.js", "first"),
            "--hostname",
            "auth.test",
            "--no-wait",
        ],
    ));
    assert!(out.contains("deployed auth.test version 1"), "{out}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_deploy_waiting_on_a_replica_that_dies_finishes_through_another() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut a = ControlPlane::start_on_etcd(&etcd, "/nano", "127.0.0.1:0");
    let b = ControlPlane::start_on_etcd(&etcd, "/nano", "127.0.0.1:0");
    let na = node(b.url(), "node-a", &dir.path().join("a"));
    a.wait_for_nodes(1);
    let host = "waiting.test";
    deploy(&a, dir.path(), host, "v1.js", "first");
    // The node cannot take version 2 while stopped, so nanoctl is still waiting when A dies.
    na.signal(libc::SIGSTOP);
    let deploy = std::process::Command::new(nano_tests::binary("nanoctl"))
        .args(["deploy", &app(dir.path(), "v2.js", "second")])
        .args(["--hostname", host])
        .env("NANO_SERVER", format!("{},{}", a.url(), b.url()))
        .env("NANO_TOKEN", OPERATOR_TOKEN)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eventually("version 2 stored", || {
        b.nanoctl_json(&["get", host])["app"]["version"] == 2
    });
    a.kill();
    na.signal(libc::SIGCONT);
    let out = deploy.wait_with_output().unwrap();
    let said = ok(&out);
    assert!(said.contains("version 2 serves on node-a"), "{said}");
}
