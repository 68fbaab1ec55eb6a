//! Fleet: a real control plane and real data planes on loopback, driven by the real nanoctl.
//! Deploys reach every node, redeploys and rollbacks lose no request, nodes ride out a killed
//! control plane and converge when it returns, bad input never corrupts state, the store stays
//! whole when killed at random points, and calls without the right token are refused.

use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nano_proto::v1::control_client::ControlClient;
use nano_proto::v1::fleet_client::FleetClient;
use nano_proto::v1::fleet_server::{Fleet, FleetServer};
use nano_proto::v1::{
    App, AppSpec, DeployRequest, DownloadSliverRequest, FleetUpdate, FullState, GetAppRequest,
    ListAppsRequest, NodeStatus, ReportAck, SliverChunk, SubscribeRequest, fleet_update,
};
use nano_sliver::{PartKind, Sliver, sha256_hex};
use nano_tests::{
    ControlPlane, NODE_TOKEN, Nano, OPERATOR_TOKEN, PATIENCE, block_on, nanoctl, send,
};
use serde_json::json;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// A gRPC request carrying `token`.
pub(crate) fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut()
        .insert("authorization", nano_proto::bearer(token).parse().unwrap());
    req
}

/// Writes an app answering `text` and returns its entry path.
pub(crate) fn app(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "export default {{ fetch(request, env) {{ return new Response({text:?} + (env.SUFFIX ?? '')); }} }}\n"
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

/// A data plane in fleet mode with its own cache dir (kept by the caller across restarts);
/// `cp_url` is the config's `control_plane.url`: one address, or a list of replicas'.
pub(crate) fn node(cp_url: impl Into<serde_json::Value>, id: &str, cache: &Path) -> Nano {
    node_with_token(cp_url, id, cache, NODE_TOKEN)
}

fn node_with_token(
    cp_url: impl Into<serde_json::Value>,
    id: &str,
    cache: &Path,
    token: &str,
) -> Nano {
    let cp_url = cp_url.into();
    Nano::start(serde_json::json!({
        "control_plane": {
            "url": cp_url,
            "token": token,
            "node_id": id,
            "cache_dir": cache,
        }
    }))
}

pub(crate) fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "nanoctl failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: &std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "nanoctl should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line per failure: {stderr}"
    );
    stderr
}

/// Runs nanoctl off the async threads (the load keeps flowing meanwhile).
async fn nanoctl_async(cp: &ControlPlane, args: &[&str]) -> std::process::Output {
    let url = cp.url();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nanoctl(&url, Some(OPERATOR_TOKEN), &args)
    })
    .await
    .unwrap()
}

#[test]
fn deploy_reaches_both_nodes_and_redeploys_and_rollbacks_lose_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), "127.0.0.1:0");
    let a = node(cp.url(), "node-a", &dir.path().join("a"));
    let b = node(cp.url(), "node-b", &dir.path().join("b"));
    cp.wait_for_nodes(2);
    let host = "api.fleet.test";
    let v1 = app(dir.path(), "v1.js", "version one");
    let out = ok(&cp.nanoctl(&[
        "deploy",
        &v1,
        "--hostname",
        host,
        "--workers",
        "2",
        "--env",
        "SUFFIX=!",
    ]));
    assert!(out.contains("version 1 serves on node-a, node-b"), "{out}");
    block_on(async {
        // nanoctl returned after both nodes reported: they serve it now.
        for n in [&a, &b] {
            let reply = n.get(host, "/").await;
            assert_eq!((reply.status, reply.body.as_str()), (200, "version one!"));
        }

        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let mut clients = Vec::new();
        for i in 0..4 {
            let addr = if i % 2 == 0 { a.addr } else { b.addr };
            let (stop, served, failures) = (stop.clone(), served.clone(), failures.clone());
            clients.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let reply = send(
                        addr,
                        hyper::Request::get("/")
                            .header("host", host)
                            .body(http_body_util::Full::new(bytes::Bytes::new()))
                            .unwrap(),
                    )
                    .await;
                    if reply.status == 200 && reply.body.starts_with("version") {
                        served.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failures.lock().unwrap().push((reply.status, reply.body));
                    }
                }
            }));
        }
        let v2 = app(dir.path(), "v2.js", "version two");
        let out = ok(&nanoctl_async(&cp, &["deploy", &v2, "--hostname", host]).await);
        assert!(out.contains("version 2 serves on node-a, node-b"), "{out}");
        for n in [&a, &b] {
            assert_eq!(n.get(host, "/").await.body, "version two");
        }
        let out = ok(&nanoctl_async(&cp, &["rollback", host]).await);
        assert!(
            out.contains("rolled back") && out.contains("version 1 serves on"),
            "{out}"
        );
        for n in [&a, &b] {
            assert_eq!(n.get(host, "/").await.body, "version one!");
        }
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.await.unwrap();
        }
        assert!(served.load(Ordering::Relaxed) > 0);
        assert_eq!(
            *failures.lock().unwrap(),
            vec![],
            "requests failed during the swaps"
        );
    });

    // The operator's views.
    let apps = cp.nanoctl_json(&["apps"]);
    assert_eq!(apps["apps"][0]["hostname"], host);
    let folder = dir.path().file_name().unwrap().to_str().unwrap();
    assert_eq!(
        apps["apps"][0]["name"], folder,
        "named after the entry's folder"
    );
    assert_eq!(apps["apps"][0]["version"], 1);
    assert_eq!(apps["apps"][0]["limits"]["workers"], 2);
    let detail = cp.nanoctl_json(&["get", host]);
    assert_eq!(detail["history"].as_array().unwrap().len(), 2);
    assert_eq!(detail["app"]["env_keys"], serde_json::json!(["SUFFIX"]));
    let nodes = cp.nanoctl_json(&["nodes"]);
    for n in nodes["nodes"].as_array().unwrap() {
        assert_eq!(n["connected"], true);
        assert_eq!(n["revision"], nodes["revision"]);
        assert_eq!(n["apps"][0]["state"], "serving");
    }
    // Isolates as the nodes report them (every few seconds), with their node.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let isolates = cp.nanoctl_json(&["isolates", host]);
        let on: std::collections::BTreeSet<String> = isolates["isolates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["node_id"].as_str().unwrap().to_owned())
            .collect();
        if on.len() == 2 {
            assert!(!isolates.to_string().contains("SUFFIX"), "env never leaks");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "isolates never reported: {isolates}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The control plane's own admin surface shows the fleet.
    block_on(async {
        let metrics = send(
            cp.http,
            nano_tests::request("GET", "127.0.0.1", "/_admin/metrics")
                .body(nano_tests::body(""))
                .unwrap(),
        )
        .await;
        assert!(
            metrics.body.contains("nano_controlplane_nodes_connected 2"),
            "{}",
            metrics.body
        );
        assert!(
            metrics
                .body
                .contains("nano_controlplane_node_config_revision{node=\"node-a\"}")
        );
        nano_tests::check_with_promtool(&metrics.body);
        let nodes = send(
            cp.http,
            nano_tests::request("GET", "127.0.0.1", "/_admin/nodes")
                .body(nano_tests::body(""))
                .unwrap(),
        )
        .await
        .json();
        assert_eq!(nodes["nodes"].as_array().unwrap().len(), 2);
    });

    // Evict reaches every node.
    let out = ok(&cp.nanoctl(&["evict", host]));
    assert!(out.contains("asked 2 node(s)"), "{out}");
    for n in [&a, &b] {
        n.log.wait_for("the evict command", |t| {
            t.contains("evicting isolates on the control plane's command")
        });
    }

    // Removing the app removes it everywhere.
    ok(&cp.nanoctl(&["rm", host]));
    block_on(async {
        for n in [&a, &b] {
            let deadline = Instant::now() + PATIENCE;
            while n.get(host, "/").await.status != 404 {
                assert!(Instant::now() < deadline, "{host} still served after rm");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    });
}

#[test]
fn nodes_ride_out_a_killed_control_plane_and_converge_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cp");
    let mut cp = ControlPlane::start(&data, "127.0.0.1:0");
    let grpc = cp.grpc.to_string();
    let a = node(cp.url(), "node-a", &dir.path().join("a"));
    let mut b = node(cp.url(), "node-b", &dir.path().join("b"));
    cp.wait_for_nodes(2);
    let host = "survivor.test";
    ok(&cp.nanoctl(&[
        "deploy",
        &app(dir.path(), "v1.js", "first"),
        "--hostname",
        host,
    ]));

    cp.kill();
    // A restarted node serves its last good state while the control plane is down.
    b.terminate();
    let url = format!("http://{grpc}");
    let b = node(url.as_str(), "node-b", &dir.path().join("b"));
    block_on(async {
        for n in [&a, &b] {
            let reply = n.get(host, "/").await;
            assert_eq!((reply.status, reply.body.as_str()), (200, "first"));
        }
    });
    b.log.wait_for("the unreachable warning", |t| {
        t.contains("control plane unreachable; the last good state keeps serving")
    });
    let health = fleet_health(&b);
    assert_eq!(health["connected"], false);
    assert_eq!(health["revision"], 1, "the last good revision: {health}");

    // Back on the same address and data: the nodes reconnect and take new versions.
    let cp = ControlPlane::start(&data, &grpc);
    cp.wait_for_nodes(2);
    let out = ok(&cp.nanoctl(&[
        "deploy",
        &app(dir.path(), "v2.js", "second"),
        "--hostname",
        host,
    ]));
    assert!(out.contains("version 2 serves on node-a, node-b"), "{out}");
    block_on(async {
        for n in [&a, &b] {
            assert_eq!(n.get(host, "/").await.body, "second");
        }
    });
    for n in [&a, &b] {
        let health = fleet_health(n);
        assert_eq!(
            (health["connected"].clone(), health["revision"].clone()),
            (true.into(), 2.into())
        );
    }
}

/// The `fleet` part of a node's /_admin/health.
fn fleet_health(node: &Nano) -> serde_json::Value {
    let addr = node.addr;
    block_on(async move {
        send(
            addr,
            nano_tests::request("GET", "127.0.0.1", "/_admin/health")
                .body(nano_tests::body(""))
                .unwrap(),
        )
        .await
        .json()["fleet"]
            .clone()
    })
}

#[test]
fn bad_deploys_are_refused_and_the_previous_version_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), "127.0.0.1:0");
    let a = node(cp.url(), "node-a", &dir.path().join("a"));
    cp.wait_for_nodes(1);
    let host = "steady.test";
    ok(&cp.nanoctl(&[
        "deploy",
        &app(dir.path(), "good.js", "good"),
        "--hostname",
        host,
    ]));

    // A syntax error never leaves the operator's machine.
    let broken = dir.path().join("broken.js");
    std::fs::write(&broken, "export default { fetch( {\n").unwrap();
    let err = refused(&cp.nanoctl(&["deploy", broken.to_str().unwrap(), "--hostname", host]));
    assert!(err.contains("SyntaxError"), "{err}");
    // A module that fails when evaluated is refused by the node; nanoctl rolls back.
    let no_handler = dir.path().join("no-handler.js");
    std::fs::write(&no_handler, "export default { nothing: true };\n").unwrap();
    let err = refused(&cp.nanoctl(&["deploy", no_handler.to_str().unwrap(), "--hostname", host]));
    assert!(
        err.contains("failed on node node-a") && err.contains("rolled back to version 1"),
        "{err}"
    );
    // An oversized sliver part is refused while packing, before anything is sent.
    std::fs::write(
        dir.path().join("big.wasm"),
        [b"\0asm\x01\0\0\0".as_slice(), &vec![0u8; 17 * 1024 * 1024]].concat(),
    )
    .unwrap();
    let big = dir.path().join("big.js");
    std::fs::write(
        &big,
        "import m from './big.wasm';\nexport default { fetch() { return new Response(String(m)); } };\n",
    )
    .unwrap();
    let err = refused(&cp.nanoctl(&["deploy", big.to_str().unwrap(), "--hostname", host]));
    assert!(err.contains("over the limit"), "{err}");
    // Bad names and limits, with the field and the range.
    let good = app(dir.path(), "good2.js", "good");
    let err = refused(&cp.nanoctl(&["deploy", &good, "--hostname", "bad host"]));
    assert!(err.contains("not a valid hostname"), "{err}");
    let err = refused(&cp.nanoctl(&["deploy", &good, "--hostname", host, "--memory-mb", "1"]));
    assert!(
        err.contains("limits.memory_mb") && err.contains("16 to 4096"),
        "{err}"
    );
    let err = refused(&cp.nanoctl(&["rollback", "nobody.test"]));
    assert!(err.contains("no app serves"), "{err}");
    // The hostname belongs to the app first deployed there (named after its folder).
    let other = dir.path().join("other-team");
    std::fs::create_dir(&other).unwrap();
    let theirs = app(&other, "theirs.js", "not yours");
    let err = refused(&cp.nanoctl(&["deploy", &theirs, "--hostname", host]));
    assert!(
        err.contains("hostname taken") && err.contains("--name"),
        "{err}"
    );

    block_on(async {
        let mut client = ControlClient::connect(cp.url()).await.unwrap();
        let spec = || AppSpec {
            hostname: host.into(),
            ..Default::default()
        };
        // A corrupt sliver.
        let err = client
            .deploy(authed(
                OPERATOR_TOKEN,
                DeployRequest {
                    spec: Some(spec()),
                    sliver: b"NANOSLV\0garbage".to_vec(),
                    deploy_id: String::new(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message().contains("the sliver is invalid"),
            "{}",
            err.message()
        );
        // A message over the size limit.
        let err = client
            .deploy(authed(
                OPERATOR_TOKEN,
                DeployRequest {
                    spec: Some(spec()),
                    sliver: vec![0; nano_proto::MAX_MESSAGE_BYTES + 1024],
                    deploy_id: String::new(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::OutOfRange, "{err}");
        assert!(err.message().contains("too large"), "{err}");

        // Through all of it, version 1 serves and is current.
        assert_eq!(a.get(host, "/").await.body, "good");
        let current = client
            .get_app(authed(
                OPERATOR_TOKEN,
                GetAppRequest {
                    hostname: host.into(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(current.app.unwrap().version, 1);
    });

    // A second control plane on the same data dir fails fast and says why.
    let out = nano_tests::output_within(
        std::process::Command::new(nano_tests::binary("nano-controlplane"))
            .args(["--data-dir", cp.data_dir.to_str().unwrap()])
            .args([
                "--grpc-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .env("NANO_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env("NANO_NODE_TOKEN", NODE_TOKEN),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by another nano-controlplane"),
        "{stderr}"
    );
}

/// A control plane that serves a damaged sliver and records what the node reports.
struct Hostile {
    sliver: Sliver,
    reports: Arc<Mutex<Vec<NodeStatus>>>,
}

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Fleet for Hostile {
    type SubscribeStream = Boxed<FleetUpdate>;

    async fn subscribe(
        &self,
        _request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let update = FleetUpdate {
            revision: 1,
            store_id: "hostile".into(),
            kind: Some(fleet_update::Kind::Full(FullState {
                apps: vec![App {
                    spec: Some(AppSpec {
                        hostname: "corrupt.test".into(),
                        ..Default::default()
                    }),
                    version: 1,
                    sliver_id: self.sliver.id.clone(),
                    ..Default::default()
                }],
            })),
        };
        let stream = tokio_stream::iter([Ok(update)]).chain(tokio_stream::pending());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn report_status(
        &self,
        request: Request<Streaming<NodeStatus>>,
    ) -> Result<Response<ReportAck>, Status> {
        let mut stream = request.into_inner();
        while let Some(status) = stream.message().await? {
            self.reports.lock().unwrap().push(status);
        }
        Ok(Response::new(ReportAck {}))
    }

    async fn push_tail(
        &self,
        _request: Request<Streaming<nano_proto::v1::TailLine>>,
    ) -> Result<Response<ReportAck>, Status> {
        Ok(Response::new(ReportAck {}))
    }

    type DownloadSliverStream = Boxed<SliverChunk>;

    async fn download_sliver(
        &self,
        _request: Request<DownloadSliverRequest>,
    ) -> Result<Response<Self::DownloadSliverStream>, Status> {
        let mut bytes = self.sliver.bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        let chunk = SliverChunk {
            total_bytes: bytes.len() as u64,
            data: bytes,
        };
        Ok(Response::new(Box::pin(tokio_stream::iter([Ok(chunk)]))))
    }
}

fn tiny_sliver(text: &str) -> Sliver {
    Sliver::build(
        "t",
        "app.js",
        "test",
        vec![(
            "app.js".into(),
            PartKind::Module,
            format!("export default {{ fetch() {{ return new Response({text:?}); }} }}")
                .into_bytes(),
        )],
    )
    .unwrap()
}

#[test]
fn a_corrupt_sliver_download_is_refused_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hostile = Hostile {
        sliver: tiny_sliver("must never serve"),
        reports: reports.clone(),
    };
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(FleetServer::new(hostile))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let cache = dir.path().join("a");
    let a = node(url.as_str(), "node-a", &cache);
    let deadline = Instant::now() + PATIENCE;
    let report = loop {
        if let Some(report) = reports
            .lock()
            .unwrap()
            .iter()
            .find(|r| !r.error.is_empty())
            .cloned()
        {
            break report;
        }
        assert!(
            Instant::now() < deadline,
            "the node never reported the failure"
        );
        std::thread::sleep(Duration::from_millis(25));
    };
    assert_eq!(report.failed_revision, 1);
    assert!(
        report.error.contains("failed verification"),
        "{}",
        report.error
    );
    assert_eq!(report.revision, 0, "the revision was not activated");
    block_on(async {
        assert_eq!(a.get("corrupt.test", "/").await.status, 404);
    });
    let cached: Vec<_> = std::fs::read_dir(cache.join("slivers")).unwrap().collect();
    assert!(cached.is_empty(), "nothing damaged is kept: {cached:?}");
    drop(a);
    runtime.shutdown_background();
}

#[test]
fn calls_without_the_right_token_are_refused_and_health_answers_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut cp = ControlPlane::start(&dir.path().join("cp"), "127.0.0.1:0");
    // nanoctl: wrong and missing tokens, unreachable server; one line each, non-zero exit.
    let err = refused(&nanoctl(&cp.url(), Some("wrong-token"), &["apps"]));
    assert!(
        err.contains("operator token is wrong") && err.contains("NANO_TOKEN"),
        "{err}"
    );
    let err = refused(&nanoctl(&cp.url(), None, &["apps"]));
    assert!(err.contains("no operator token"), "{err}");
    let err = refused(&nanoctl(
        "http://127.0.0.1:1",
        Some(OPERATOR_TOKEN),
        &["apps"],
    ));
    assert!(err.contains("cannot reach the control plane"), "{err}");

    // A node with the wrong token is refused and says so; it never shows as connected.
    let stray = node_with_token(
        cp.url(),
        "stray",
        &dir.path().join("s"),
        "not-the-node-token",
    );
    stray.log.wait_for("the refusal", |t| {
        t.contains("the control plane refused this node")
    });
    let nodes = cp.nanoctl_json(&["nodes"]);
    assert_eq!(nodes["nodes"], serde_json::json!([]));

    block_on(async {
        // Tokens are not interchangeable between the services.
        let mut control = ControlClient::connect(cp.url()).await.unwrap();
        let err = control
            .list_apps(authed(NODE_TOKEN, ListAppsRequest {}))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        let mut fleet = FleetClient::connect(cp.url()).await.unwrap();
        let req = authed(OPERATOR_TOKEN, DownloadSliverRequest { id: "0".repeat(64) });
        let err = fleet.download_sliver(req).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        // The admin surface refuses a peer that is not the loopback address (127.0.0.2 here)
        // without the operator token or with a wrong one, and answers it with the right one.
        let admin_from = |token: Option<&'static str>| {
            let addr = cp.http;
            async move {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
                let stream = socket.connect(addr).await.unwrap();
                let mut req = nano_tests::request("GET", "x", "/_admin/nodes");
                if let Some(token) = token {
                    req = req.header("authorization", format!("Bearer {token}"));
                }
                nano_tests::send_on(stream, req.body(nano_tests::body("")).unwrap()).await
            }
        };
        assert_eq!(admin_from(None).await.status, 401);
        assert_eq!(admin_from(Some("wrong")).await.status, 401);
        let allowed = admin_from(Some(OPERATOR_TOKEN)).await;
        assert_eq!(allowed.status, 200, "{}", allowed.body);

        // grpc.health.v1, by a real client: SERVING, then NOT_SERVING once shutdown begins.
        use tonic_health::pb::health_client::HealthClient;
        use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
        let channel = tonic::transport::Endpoint::from_shared(cp.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = HealthClient::new(channel);
        for service in ["", "nano.v1.Control", "nano.v1.Fleet"] {
            let status = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status;
            assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
        }
        let mut watch = health
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let first = watch.message().await.unwrap().unwrap();
        assert_eq!(first.status, ServingStatus::Serving as i32);
        cp.signal(libc::SIGTERM);
        let next = watch.message().await.unwrap().unwrap();
        assert_eq!(next.status, ServingStatus::NotServing as i32);
    });
    assert!(cp.wait().success(), "a clean shutdown exits 0");
}

/// Deploys in a loop until the control plane goes away; returns what was acknowledged.
async fn deploy_until_killed(url: String, mut seed: u64) -> Vec<(String, u64, String)> {
    let mut acked = Vec::new();
    let Ok(mut client) = ControlClient::connect(url).await else {
        return acked;
    };
    loop {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let host = format!("app{}.crash.test", seed % 3);
        // Slivers from a few bytes to ~1.5 MB, so kills land inside writes of every size.
        let padding = "x".repeat((seed % 1_500_000) as usize);
        let sliver = Sliver::build(
            "crash",
            "app.js",
            "test",
            vec![(
                "app.js".into(),
                PartKind::Module,
                format!("// {padding}\nexport default {{ fetch() {{ return new Response('{seed}'); }} }}")
                    .into_bytes(),
            )],
        )
        .unwrap();
        let req = authed(
            OPERATOR_TOKEN,
            DeployRequest {
                spec: Some(AppSpec {
                    hostname: host.clone(),
                    ..Default::default()
                }),
                sliver: sliver.bytes().to_vec(),
                deploy_id: String::new(),
            },
        );
        match client.deploy(req).await {
            Ok(reply) => {
                let app = reply.into_inner().app.unwrap();
                acked.push((host, app.version, app.sliver_id));
            }
            // The kill ends the connection mid-call; any other refusal is a real failure.
            Err(err)
                if matches!(
                    err.code(),
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
                ) =>
            {
                return acked;
            }
            Err(err) => panic!("a deploy failed for another reason than the kill: {err}"),
        }
    }
}

/// Every app and every version kept points to a sliver that is whole; returns the apps.
async fn check_store(url: String) -> Vec<App> {
    let mut control = ControlClient::connect(url.clone()).await.unwrap();
    let mut fleet = FleetClient::connect(url).await.unwrap();
    let apps = control
        .list_apps(authed(OPERATOR_TOKEN, ListAppsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .apps;
    for app in &apps {
        let host = app.spec.as_ref().unwrap().hostname.clone();
        let history = control
            .get_app(authed(
                OPERATOR_TOKEN,
                GetAppRequest {
                    hostname: host.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .history;
        assert!(
            history.iter().any(|h| h.version == app.version),
            "{host}: current not in history"
        );
        for version in history {
            let mut stream = fleet
                .download_sliver(authed(
                    NODE_TOKEN,
                    DownloadSliverRequest {
                        id: version.sliver_id.clone(),
                    },
                ))
                .await
                .unwrap_or_else(|e| panic!("{host} v{}: sliver missing: {e}", version.version))
                .into_inner();
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.message().await.unwrap() {
                bytes.extend_from_slice(&chunk.data);
            }
            assert_eq!(
                sha256_hex(&bytes),
                version.sliver_id,
                "{host} v{}",
                version.version
            );
            Sliver::from_bytes(bytes).unwrap();
        }
    }
    apps
}

#[test]
fn the_store_stays_whole_when_the_control_plane_is_killed_at_random_points() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cp");
    killed_at_random_points(|| ControlPlane::start(&data, "127.0.0.1:0"));
}

#[test]
fn the_store_stays_whole_when_a_replica_on_etcd_is_killed_at_random_points() {
    let Some(etcd) = nano_tests::Etcd::start() else {
        return;
    };
    killed_at_random_points(|| ControlPlane::start_on_etcd(&etcd, "/crash", "127.0.0.1:0"));
}

/// Deploys in a loop, kills the control plane at a random point, starts it again on the same
/// store and checks that every acknowledged deploy survived and every kept version is whole.
fn killed_at_random_points(start: impl Fn() -> ControlPlane) {
    // A failure is replayed with NANO_CRASH_SEED set to the seed printed here.
    let mut seed = std::env::var("NANO_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
        | 1;
    eprintln!("crash-consistency seed {seed} (replay with NANO_CRASH_SEED={seed})");
    let mut acked_before: Vec<(String, u64, String)> = Vec::new();
    let mut total_acked = 0;
    for round in 0..20 {
        let mut cp = start();
        let apps = block_on(check_store(cp.url()));
        // Everything acknowledged before the kill survived it.
        for (host, version, _) in &acked_before {
            let current = apps
                .iter()
                .find(|a| &a.spec.as_ref().unwrap().hostname == host)
                .unwrap_or_else(|| panic!("round {round}: acknowledged {host} is gone"));
            assert!(
                current.version >= *version,
                "round {round}: {host} lost v{version}"
            );
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let url = cp.url();
        let loop_seed = seed;
        let deployer = std::thread::spawn(move || block_on(deploy_until_killed(url, loop_seed)));
        std::thread::sleep(Duration::from_millis(30 + (seed >> 33) % 400));
        cp.kill();
        acked_before = deployer.join().unwrap();
        total_acked += acked_before.len();
    }
    let cp = start();
    let apps = block_on(check_store(cp.url()));
    assert!(
        total_acked > 0 && !apps.is_empty(),
        "the loop never deployed anything"
    );
}

#[test]
fn the_fleet_works_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let cert_arg = cert.to_str().unwrap();
    let cp = ControlPlane::start_with(
        &dir.path().join("cp"),
        "127.0.0.1:0",
        &["--tls-cert", cert_arg, "--tls-key", key.to_str().unwrap()],
    );
    let url = format!("https://{}", cp.grpc);
    let a = Nano::start(serde_json::json!({
        "control_plane": {
            "url": url,
            "token": NODE_TOKEN,
            "node_id": "node-tls",
            "cache_dir": dir.path().join("a"),
            "ca_cert": cert,
        }
    }));
    let tls = |args: &[&str]| {
        let mut all = vec!["--ca-cert", cert_arg];
        all.extend_from_slice(args);
        nanoctl(&url, Some(OPERATOR_TOKEN), &all)
    };
    // Plain HTTP/2 to a TLS port, and TLS without trusting the certificate, both fail.
    refused(&nanoctl(&cp.url(), Some(OPERATOR_TOKEN), &["apps"]));
    let err = refused(&nanoctl(&url, Some(OPERATOR_TOKEN), &["apps"]));
    assert!(err.contains("cannot reach the control plane"), "{err}");
    let deadline = Instant::now() + PATIENCE;
    while !ok(&tls(&["nodes", "--output", "json"])).contains("\"connected\":true") {
        assert!(
            Instant::now() < deadline,
            "the node never connected over TLS"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let entry = app(dir.path(), "tls.js", "over tls");
    let out = ok(&tls(&["deploy", &entry, "--hostname", "tls.test"]));
    assert!(out.contains("serves on node-tls"), "{out}");
    block_on(async {
        assert_eq!(a.get("tls.test", "/").await.body, "over tls");
    });
}

#[test]
fn a_drained_node_leaves_rotation_keeps_serving_and_stays_drained_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), "127.0.0.1:0");
    let cache = dir.path().join("a");
    let mut a = node(cp.url(), "node-a", &cache);
    cp.wait_for_nodes(1);
    ok(&cp.nanoctl(&[
        "deploy",
        &app(dir.path(), "d.js", "still here"),
        "--hostname",
        "d.test",
    ]));
    let ready = |n: &Nano| {
        let n_addr = n.addr;
        block_on(async move {
            send(
                n_addr,
                nano_tests::request("GET", "127.0.0.1", "/_admin/ready")
                    .body(nano_tests::body(""))
                    .unwrap(),
            )
            .await
        })
    };
    let wait_ready = |n: &Nano, want: u16| {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let reply = ready(n);
            if reply.status == want {
                return reply;
            }
            assert!(
                Instant::now() < deadline,
                "readiness never became {want}: {}",
                reply.body
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    };
    assert_eq!(wait_ready(&a, 200).json()["drained"], false);

    let out = ok(&cp.nanoctl(&["drain", "node-a"]));
    assert!(out.contains("drained node-a"), "{out}");
    assert_eq!(wait_ready(&a, 503).json()["drained"], true);
    block_on(async {
        assert_eq!(
            a.get("d.test", "/").await.body,
            "still here",
            "drained, not stopped"
        );
    });
    let deadline = Instant::now() + PATIENCE;
    while cp.nanoctl_json(&["nodes"])["nodes"][0]["drained"] != true {
        assert!(Instant::now() < deadline, "the drain was never reported");
        std::thread::sleep(Duration::from_millis(25));
    }

    // The drain survives a restart of the node.
    a.terminate();
    let mut a = node(cp.url(), "node-a", &cache);
    block_on(async {
        assert_eq!(a.get("d.test", "/").await.body, "still here");
    });
    assert_eq!(ready(&a).json()["drained"], true);
    // Undrained while offline: the node takes it when it connects.
    a.terminate();
    let deadline = Instant::now() + PATIENCE;
    while cp.nanoctl_json(&["nodes"])["nodes"][0]["connected"] != false {
        assert!(
            Instant::now() < deadline,
            "the node never showed as disconnected"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    let out = ok(&cp.nanoctl(&["undrain", "node-a"]));
    assert!(out.contains("undrained node-a (offline"), "{out}");
    let a = node(cp.url(), "node-a", &cache);
    assert_eq!(wait_ready(&a, 200).json()["drained"], false);

    let err = refused(&cp.nanoctl(&["drain", "nobody"]));
    assert!(err.contains("no node \"nobody\""), "{err}");
}

#[test]
fn a_damaged_cached_sliver_is_not_served_and_is_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), "127.0.0.1:0");
    let cache = dir.path().join("a");
    let mut a = node(cp.url(), "node-a", &cache);
    cp.wait_for_nodes(1);
    let host = "cached.test";
    ok(&cp.nanoctl(&[
        "deploy",
        &app(dir.path(), "c.js", "from cache"),
        "--hostname",
        host,
    ]));
    a.terminate();
    // Damage the cached sliver while the node is down (a disk error, a stray write).
    let slivers: Vec<_> = std::fs::read_dir(cache.join("slivers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(slivers.len(), 1, "{slivers:?}");
    let mut bytes = std::fs::read(&slivers[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&slivers[0], bytes).unwrap();

    // Against an unreachable control plane, the damaged app is not served (never half-trusted).
    let offline = node("http://127.0.0.1:1", "node-a", &cache);
    offline.log.wait_for("the damage report", |t| {
        t.contains("a cached sliver is damaged")
    });
    block_on(async {
        assert_eq!(offline.get(host, "/").await.status, 404);
    });
    drop(offline);
    // Once the control plane answers, the node fetches a good copy and serves it.
    let a = node(cp.url(), "node-a", &cache);
    let deadline = Instant::now() + PATIENCE;
    block_on(async {
        loop {
            let reply = a.get(host, "/").await;
            if reply.status == 200 {
                assert_eq!(reply.body, "from cache");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "never served again: {}",
                reply.body
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    });
}

#[test]
fn multi_module_wasm_and_prebuilt_apps_travel_with_their_limits() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), "127.0.0.1:0");
    let a = node(cp.url(), "node-a", &dir.path().join("a"));
    cp.wait_for_nodes(1);
    let fixture = |name: &str| {
        nano_tests::fixtures()
            .join(name)
            .join("app.js")
            .to_string_lossy()
            .into_owned()
    };
    ok(&cp.nanoctl(&["deploy", &fixture("imports"), "--hostname", "imports.test"]));
    ok(&cp.nanoctl(&["deploy", &fixture("wasm-import"), "--hostname", "wasm.test"]));
    // A sliver built by `nano sliver build` deploys as it is.
    let sliver = dir.path().join("spin.sliver");
    let built = nano_tests::run_nano(&[
        "sliver",
        "build",
        &fixture("cpu-spin"),
        "-o",
        sliver.to_str().unwrap(),
    ]);
    assert!(built.status.success());
    ok(&cp.nanoctl(&[
        "deploy",
        sliver.to_str().unwrap(),
        "--hostname",
        "spin.test",
        "--cpu-ms",
        "7",
    ]));
    let detail = cp.nanoctl_json(&["get", "wasm.test"]);
    assert_eq!(detail["app"]["entry"], "app.js");
    block_on(async {
        assert_eq!(a.get("imports.test", "/").await.body, "HELLO IMPORTS (OK)");
        let wasm = a.get("wasm.test", "/?a=2&b=40").await.json();
        assert_eq!(wasm, serde_json::json!({ "sum": 42, "isModule": true }));
        // The deploy's limits reach the node: the CPU limit is the 7 ms given.
        let spin = a.get("spin.test", "/bomb").await;
        assert_eq!(spin.status, 503);
        assert_eq!(spin.json()["limit"], "7ms");
        assert_eq!(a.get("spin.test", "/").await.body, "ok cpu-spin");
    });
}

/// A flood of unauthenticated calls (1 000 on their own connections, 1 000 on one channel, all
/// at once) is refused with UNAUTHENTICATED, none left to run into its deadline.
#[test]
fn an_unauthenticated_flood_is_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), "127.0.0.1:0");
    block_on(async {
        let shared = tonic::transport::Endpoint::from_shared(cp.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let tasks: Vec<_> = (0..2000)
            .map(|i| {
                let (url, shared) = (cp.url(), shared.clone());
                tokio::spawn(async move {
                    let channel = if i % 2 == 0 {
                        shared
                    } else {
                        tonic::transport::Endpoint::from_shared(url)
                            .unwrap()
                            .connect()
                            .await
                            .unwrap()
                    };
                    let mut req = Request::new(ListAppsRequest {});
                    req.set_timeout(Duration::from_secs(30));
                    ControlClient::new(channel).list_apps(req).await.map(|_| ())
                })
            })
            .collect();
        let mut codes = std::collections::BTreeMap::new();
        for task in tasks {
            let code = task
                .await
                .unwrap()
                .map_or_else(|e| e.code(), |()| tonic::Code::Ok);
            *codes.entry(format!("{code:?}")).or_insert(0) += 1;
        }
        assert_eq!(codes.get("Unauthenticated"), Some(&2000), "{codes:?}");
    });
}

/// The deploy and rollback flags of the `nanoctl` reference, each checked by what the fleet does:
/// `rollback --to N`, `--no-rollback`, `--no-wait`, `--wait-timeout-secs`, and `--name` to take
/// over a hostname on purpose.
#[test]
fn nanoctl_deploy_and_rollback_flags_do_what_the_reference_says() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), "127.0.0.1:0");
    let a = node(cp.url(), "node-a", &dir.path().join("a"));
    cp.wait_for_nodes(1);
    let host = "flags.fleet.test";
    let current = || {
        cp.nanoctl_json(&["get", host])["app"]["version"]
            .as_u64()
            .unwrap()
    };
    let serves = |want: &str| {
        block_on(async {
            let deadline = Instant::now() + PATIENCE;
            loop {
                let reply = a.get(host, "/").await;
                if reply.status == 200 && reply.body == want {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "never served {want:?}: {reply:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    for (n, text) in [(1, "one"), (2, "two"), (3, "three")] {
        let out = ok(&cp.nanoctl(&[
            "deploy",
            &app(dir.path(), &format!("{text}.js"), text),
            "--hostname",
            host,
        ]));
        assert!(
            out.contains(&format!("version {n} serves on node-a")),
            "{out}"
        );
    }

    // rollback --to: any kept version, not only the one before.
    let out = ok(&cp.nanoctl(&["rollback", host, "--to", "1"]));
    assert!(out.contains("version 1 serves on node-a"), "{out}");
    assert_eq!(current(), 1);
    serves("one");

    // --no-rollback: a version that fails on the node stays current (the node keeps serving
    // what it had); without the flag nanoctl would have made version 1 current again.
    let failing = dir.path().join("failing.js");
    std::fs::write(&failing, "export default { nothing: true };\n").unwrap();
    let err = refused(&cp.nanoctl(&[
        "deploy",
        failing.to_str().unwrap(),
        "--hostname",
        host,
        "--no-rollback",
    ]));
    assert!(
        err.contains("failed on node node-a") && !err.contains("rolled back"),
        "{err}"
    );
    assert_eq!(current(), 4, "the failed version stays current");
    serves("one");
    ok(&cp.nanoctl(&["rollback", host, "--to", "3"]));
    serves("three");

    // --no-wait: returns once the control plane has it; the node takes it afterwards.
    let out = ok(&cp.nanoctl(&[
        "deploy",
        &app(dir.path(), "five.js", "five"),
        "--hostname",
        host,
        "--no-wait",
    ]));
    assert!(
        out.contains("deployed") && !out.contains("serves on"),
        "{out}"
    );
    serves("five");

    // --wait-timeout-secs: a node that never answers (stopped, still connected) makes the wait
    // give up after that long, naming the node; once it runs again it catches up.
    a.signal(libc::SIGSTOP);
    let err = refused(&cp.nanoctl(&[
        "deploy",
        &app(dir.path(), "six.js", "six"),
        "--hostname",
        host,
        "--wait-timeout-secs",
        "1",
    ]));
    a.signal(libc::SIGCONT);
    assert!(
        err.contains("after 1 s") && err.contains("still pending on node-a"),
        "{err}"
    );
    serves("six");

    // --name: another folder's app may take the hostname only by naming its owner.
    let owner = cp.nanoctl_json(&["get", host])["app"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = dir.path().join("other-team");
    std::fs::create_dir(&other).unwrap();
    let theirs = app(&other, "theirs.js", "replaced");
    refused(&cp.nanoctl(&["deploy", &theirs, "--hostname", host]));
    let out = ok(&cp.nanoctl(&["deploy", &theirs, "--hostname", host, "--name", &owner]));
    assert!(out.contains("serves on node-a"), "{out}");
    serves("replaced");
}

/// A member set up by flags alone, and one by environment alone (as a container would be):
/// without `--config` each serves only the fleet's apps (not the embedded example), under the
/// node id it was given.
#[test]
fn members_configured_by_flags_or_environment_serve_only_the_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), "127.0.0.1:0");
    let host = "only.fleet.test";
    // Deployed before any node is there: nothing to wait for.
    ok(&cp.nanoctl(&[
        "deploy",
        &app(dir.path(), "only.js", "from the fleet"),
        "--hostname",
        host,
    ]));
    let by_flags = Nano::start_args(
        &[
            "--control-plane",
            &cp.url(),
            "--node-id",
            "by-flags",
            "--token",
            NODE_TOKEN,
            "--cache-dir",
            dir.path().join("flags-cache").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let cache = dir.path().join("env-cache");
    let url = cp.url();
    let by_env = Nano::start_args(
        &[],
        &[
            ("NANO_CONTROL_PLANE", url.as_str()),
            ("NANO_NODE_ID", "by-env"),
            ("NANO_NODE_TOKEN", NODE_TOKEN),
            ("NANO_CACHE_DIR", cache.to_str().unwrap()),
            ("NANO_LISTEN", "127.0.0.1:0"),
        ],
    );
    cp.wait_for_nodes(2);
    let nodes = cp.nanoctl_json(&["nodes"]);
    let mut ids: Vec<&str> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["by-env", "by-flags"], "{nodes}");
    block_on(async {
        for node in [&by_flags, &by_env] {
            let deadline = Instant::now() + PATIENCE;
            loop {
                let reply = node.get(host, "/").await;
                if reply.status == 200 {
                    assert_eq!(reply.body, "from the fleet");
                    break;
                }
                assert!(Instant::now() < deadline, "{reply:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // The embedded example's app (hostname localhost) is not there.
            let reply = node.get("localhost", "/").await;
            assert_eq!(reply.status, 404, "{}", reply.body);
            assert_eq!(reply.header("x-nano-error"), Some("unknown-host"));
        }
    });
    for node in [&by_flags, &by_env] {
        assert!(
            node.log.text().contains("fleet mode") && !node.log.text().contains("embedded example"),
            "{}",
            node.log.text()
        );
    }
}

/// A request in flight when a node switches versions finishes on the old one: a streamed
/// response of 64 MiB, far more than the socket and the stream's channel buffer, that the client
/// starts reading before the switch and finishes after the new version answers. Every byte
/// comes from the old version's isolate.
#[test]
fn a_streamed_response_in_flight_finishes_on_the_old_version_across_a_switch() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const CHUNKS: usize = 1024;
    const CHUNK: usize = 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), "127.0.0.1:0");
    let a = node(cp.url(), "node-a", &dir.path().join("a"));
    cp.wait_for_nodes(1);
    let host = "stream.fleet.test";
    let streaming = |version: &str| {
        let path = dir.path().join(format!("{version}.js"));
        std::fs::write(
            &path,
            format!(
                "const V = {version:?};\n\
                 export default {{ fetch(request) {{\n\
                   if (new URL(request.url).pathname !== '/stream') return new Response(V);\n\
                   const chunk = new TextEncoder().encode(V.padEnd({CHUNK}, '.'));\n\
                   let n = 0;\n\
                   return new Response(new ReadableStream({{ pull(c) {{ if (n++ < {CHUNKS}) c.enqueue(chunk.slice()); else c.close(); }} }}, {{ highWaterMark: 0 }}));\n\
                 }} }};\n"
            ),
        )
        .unwrap();
        path.to_string_lossy().into_owned()
    };
    // 64 MiB through JS takes more than the default 50 ms of CPU in a debug build.
    ok(&cp.nanoctl(&[
        "deploy",
        &streaming("old"),
        "--hostname",
        host,
        "--cpu-ms",
        "60000",
    ]));
    block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(a.addr).await.unwrap();
        stream
            .write_all(
                format!("GET /stream HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let mut received = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        // The head, then the first chunk (after its size line).
        while !String::from_utf8_lossy(&received)
            .split_once("\r\n\r\n")
            .is_some_and(|(_, body)| body.contains("old"))
        {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed early: {}",
                String::from_utf8_lossy(&received)
            );
            received.extend_from_slice(&buf[..n]);
        }

        let out = ok(&nanoctl_async(&cp, &["deploy", &streaming("new"), "--hostname", host]).await);
        assert!(out.contains("version 2 serves on node-a"), "{out}");
        assert_eq!(a.get(host, "/").await.body, "new");

        tokio::time::timeout(PATIENCE, stream.read_to_end(&mut received))
            .await
            .expect("the stream ends")
            .unwrap();
        let text = String::from_utf8_lossy(&received);
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        // Chunked framing aside, every chunk of the body is the old version's.
        assert_eq!(body.matches("old").count(), CHUNKS, "{head}");
        assert!(!body.contains("new"), "a chunk came from the new version");
    });
}

/// Every setting a config file gives an app, a deploy can give it too: `--startup-ms`,
/// `--queue-per-worker`, `--idle-timeout-secs`, `--allow-private-networks`, `--max-subrequests`, `--max-response-bytes`
/// reach the nodes (seen in what the app may do) and are checked against the config's bounds.
#[test]
fn a_deploy_sets_every_limit_and_fetch_setting_a_config_can() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), "127.0.0.1:0");
    let a = node(cp.url(), "node-a", &dir.path().join("a"));
    cp.wait_for_nodes(1);
    let client = nano_tests::fixtures().join("fetch-client/app.js");
    let client = client.to_str().unwrap();
    block_on(async {
        // An upstream on loopback answering JSON.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0; 4096];
                    let _ = stream.read(&mut buf).await;
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                        .await;
                });
            }
        });
        let url = format!("/get?url=http://{upstream}/");
        let many = format!("/many?url=http://{upstream}/");

        // Deployed with the defaults, loopback is refused.
        ok(&nanoctl_async(&cp, &["deploy", client, "--hostname", "guarded.fleet.test"]).await);
        let reply = a.get("guarded.fleet.test", &url).await;
        assert_eq!(reply.status, 502, "{}", reply.body);

        // With the fetch settings of a config file.
        ok(&nanoctl_async(
            &cp,
            &[
                "deploy",
                client,
                "--hostname",
                "open.fleet.test",
                "--allow-private-networks",
                "--max-subrequests",
                "2",
                "--max-response-bytes",
                "1024",
                "--queue-per-worker",
                "4",
                "--startup-ms",
                "500",
                "--idle-timeout-secs",
                "1",
            ],
        )
        .await);
        let reply = a.get("open.fleet.test", &url).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let outcomes = a.get("open.fleet.test", &many).await.json();
        assert_eq!(
            (&outcomes[0], &outcomes[1]),
            (&serde_json::json!("ok"), &serde_json::json!("ok"))
        );
        assert!(
            outcomes[2].as_str().unwrap().contains("max_subrequests"),
            "{outcomes}"
        );
        // idle_timeout_secs reaches the node: a second after its requests the worker has ended.
        let deadline = std::time::Instant::now() + nano_tests::PATIENCE;
        loop {
            let isolates = a.isolates().await;
            let states: Vec<_> = isolates
                .iter()
                .filter(|i| i["hostname"] == "open.fleet.test")
                .map(|i| i["state"].clone())
                .collect();
            if !states.is_empty() && states.iter().all(|s| s == "reaped") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never reaped: {isolates:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    let got = cp.nanoctl_json(&["get", "open.fleet.test"])["app"].clone();
    assert_eq!(got["limits"]["queue_per_worker"], 4, "{got}");
    assert_eq!(got["limits"]["startup_ms"], 500, "{got}");
    assert_eq!(got["limits"]["idle_timeout_secs"], 1, "{got}");
    assert_eq!(
        got["fetch"],
        serde_json::json!({ "allow_private_networks": true, "max_subrequests": 2, "max_response_bytes": 1024 })
    );

    // startup_ms reaches the node: an endless top level fails at the deploy's budget.
    let endless = nano_tests::fixtures().join("top-level-loop/app.js");
    let err = refused(&cp.nanoctl(&[
        "deploy",
        endless.to_str().unwrap(),
        "--hostname",
        "endless.fleet.test",
        "--startup-ms",
        "150",
    ]));
    assert!(err.contains("start-up budget of 150 ms"), "{err}");

    // Out of the config's bounds: refused with the key and the range.
    for (flag, key, bound, value) in [
        (
            "--queue-per-worker",
            "limits.queue_per_worker",
            "4096",
            "5000",
        ),
        ("--max-subrequests", "fetch.max_subrequests", "1000", "5000"),
        (
            "--idle-timeout-secs",
            "limits.idle_timeout_secs",
            "86400",
            "90000",
        ),
    ] {
        let err =
            refused(&cp.nanoctl(&["deploy", client, "--hostname", "x.fleet.test", flag, value]));
        assert!(err.contains(key) && err.contains(bound), "{flag}: {err}");
    }
}

/// The fleet client never waits for apps to prepare: while an app's top level spins through
/// its 20 s start-up budget, the node reports the app as pending and takes a drain command.
/// (Before, activation ran inside the client's loop, and both waited for the preparation.)
#[test]
fn the_fleet_client_keeps_working_while_an_app_prepares() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), "127.0.0.1:0");
    let a = node(cp.url(), "node-a", &dir.path().join("a"));
    cp.wait_for_nodes(1);
    let endless = nano_tests::fixtures().join("top-level-loop/app.js");
    ok(&cp.nanoctl(&[
        "deploy",
        endless.to_str().unwrap(),
        "--hostname",
        "slow.fleet.test",
        "--startup-ms",
        "20000",
        "--no-wait",
    ]));
    // Reported as pending: status reports go on while it prepares.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let nodes = cp.nanoctl_json(&["nodes"]);
        let app = &nodes["nodes"][0]["apps"][0];
        if app["hostname"] == "slow.fleet.test" && app["wanted_version"] == 1 {
            assert_eq!(app["state"], "pending", "{nodes}");
            break;
        }
        assert!(Instant::now() < deadline, "never reported: {nodes}");
        std::thread::sleep(Duration::from_millis(25));
    }
    // A command is taken at once.
    ok(&cp.nanoctl(&["drain", "node-a"]));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let reply = block_on(send(
            a.addr,
            nano_tests::request("GET", "127.0.0.1", "/_admin/ready")
                .body(nano_tests::body(""))
                .unwrap(),
        ));
        if reply.status == 503 && reply.json()["drained"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "never drained: {}", reply.body);
        std::thread::sleep(Duration::from_millis(25));
    }
    // All of that while the app was still preparing.
    let log = a.log.text();
    assert!(
        !log.contains("start-up budget of 20000 ms"),
        "the app finished preparing first, so this shows nothing: {log}"
    );
}

/// The control plane's commands reach open WebSockets: `nanoctl evict` replaces the app's
/// isolates and `nanoctl drain` takes the node out of rotation; both close the app's sockets
/// with 1001 (going away), so their clients reconnect, instead of holding the old isolate or
/// the drained node for good.
#[test]
fn evicting_an_app_or_draining_its_node_closes_its_websockets_with_1001() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    use crate::websocket::{closed_with, connect, next_message};

    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), "127.0.0.1:0");
    let a = node(cp.url(), "node-a", &dir.path().join("a"));
    cp.wait_for_nodes(1);
    let entry = nano_tests::fixtures().join("websocket/app.js");
    ok(&cp.nanoctl(&["deploy", entry.to_str().unwrap(), "--hostname", "ws.test"]));
    block_on(async {
        nano_tests::eventually("ws.test served by the node", || async {
            let reply = a.get("ws.test", "/plain").await;
            (reply.body == "plain").then_some(()).ok_or(reply.body)
        })
        .await;
        let mut socket = connect(a.addr, "ws.test", "/echo").await;
        socket.send(Message::text("hi")).await.unwrap();
        assert_eq!(next_message(&mut socket).await, Message::text("echo:hi"));
        ok(&nanoctl_async(&cp, &["evict", "ws.test"]).await);
        assert_eq!(closed_with(&mut socket).await.0, 1001);

        let mut socket = connect(a.addr, "ws.test", "/echo").await;
        socket.send(Message::text("again")).await.unwrap();
        assert_eq!(next_message(&mut socket).await, Message::text("echo:again"));
        ok(&nanoctl_async(&cp, &["drain", "node-a"]).await);
        assert_eq!(closed_with(&mut socket).await.0, 1001);
    });
}

/// `nanoctl tail --output json` as a child process; its lines as JSON, read on a thread.
pub(crate) struct CtlTail {
    child: std::process::Child,
    pub(crate) lines: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl CtlTail {
    pub(crate) fn start(cp: &ControlPlane, args: &[&str]) -> Self {
        let mut child = std::process::Command::new(nano_tests::binary("nanoctl"))
            .args(["--output", "json", "tail"])
            .args(args)
            .env("NANO_SERVER", cp.url())
            .env("NANO_TOKEN", OPERATOR_TOKEN)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("nanoctl runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx
                    .send(serde_json::from_str(&line).expect("a JSON line"))
                    .is_err()
                {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// The next event line (dropped counts are skipped).
    pub(crate) fn next(&self) -> serde_json::Value {
        loop {
            let line = self
                .lines
                .recv_timeout(PATIENCE)
                .expect("a tail line within PATIENCE");
            if line.get("url").is_some() {
                return line;
            }
        }
    }

    /// Waits until the tail is live on `node` (its requests to `path` show up), consuming those.
    pub(crate) fn wait_live(&self, node: &Nano, host: &str, path: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            block_on(node.get(host, path));
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200))
                && line.get("url").is_some()
            {
                // Whatever else the warm-up left in flight.
                while self.lines.recv_timeout(Duration::from_millis(300)).is_ok() {}
                return;
            }
            assert!(Instant::now() < deadline, "the tail never went live");
        }
    }
}

impl Drop for CtlTail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `nanoctl tail` streams an app's events from every node serving it, through the control
/// plane, with the nodes' outcomes, stacks and console lines; filters apply; a tail sees only
/// its app.
#[test]
fn nanoctl_tail_streams_an_apps_events_from_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), "127.0.0.1:0");
    let a = node(cp.url(), "node-a", &dir.path().join("a"));
    let b = node(cp.url(), "node-b", &dir.path().join("b"));
    cp.wait_for_nodes(2);
    let entry = nano_tests::fixtures().join("tail/app.js");
    let entry = entry.to_str().unwrap();
    ok(&cp.nanoctl(&[
        "deploy",
        entry,
        "--hostname",
        "t.test",
        "--cpu-ms",
        "50",
        "--env",
        "SECRET=hunter2",
    ]));
    ok(&cp.nanoctl(&[
        "deploy",
        &app(dir.path(), "h.js", "hello"),
        "--hostname",
        "h.test",
    ]));

    let all = CtlTail::start(&cp, &["t.test"]);
    all.wait_live(&a, "t.test", "/ok");
    all.wait_live(&b, "t.test", "/ok");
    let errors = CtlTail::start(&cp, &["t.test", "--status", "5xx"]);
    errors.wait_live(&a, "t.test", "/throw");
    let other = CtlTail::start(&cp, &["h.test"]);
    other.wait_live(&a, "h.test", "/");
    // What the first two tails saw of the other's warm-ups.
    while all.lines.recv_timeout(Duration::from_millis(300)).is_ok() {}

    block_on(async {
        a.get("t.test", "/ok").await;
        b.get("t.test", "/throw").await;
        a.get("t.test", "/spin").await;
        b.get("h.test", "/").await;
    });
    // Each node's events come in order; the two nodes' streams interleave as they arrive.
    let mut seen: Vec<serde_json::Value> = (0..3).map(|_| all.next()).collect();
    seen.sort_by_key(|e| e["url"].as_str().unwrap_or_default().to_owned());
    let [ok_a, spun, thrown] = <[serde_json::Value; 3]>::try_from(seen).unwrap();
    assert_eq!(
        (
            ok_a["node"].as_str(),
            ok_a["outcome"].as_str(),
            ok_a["status"].as_u64()
        ),
        (Some("node-a"), Some("ok"), Some(200))
    );
    assert_eq!(
        ok_a["logs"][1],
        json!({ "level": "warn", "text": "careful" })
    );
    assert_eq!(
        (thrown["node"].as_str(), thrown["outcome"].as_str()),
        (Some("node-b"), Some("exception"))
    );
    assert!(
        thrown["exception"]["stack"]
            .as_str()
            .unwrap()
            .contains("at Object.fetch (app.js:"),
        "{thrown}"
    );
    assert_eq!(
        (
            spun["node"].as_str(),
            spun["outcome"].as_str(),
            spun["url"].as_str()
        ),
        (
            Some("node-a"),
            Some("cpu-limit"),
            Some("http://t.test/spin")
        )
    );
    for event in [&ok_a, &thrown, &spun] {
        assert!(!event.to_string().contains("hunter2"), "{event}");
        // Nodes send headers (masked); the control plane shows them only with --headers.
        assert!(event.get("headers").is_none(), "{event}");
    }
    // The 5xx tail: the two failures only.
    let mut failures =
        [errors.next(), errors.next()].map(|e| e["url"].as_str().unwrap().to_owned());
    failures.sort();
    assert_eq!(failures, ["http://t.test/spin", "http://t.test/throw"]);
    // The other app's tail: its own request only.
    let own = other.next();
    assert_eq!(
        (own["url"].as_str(), own["node"].as_str()),
        (Some("http://h.test/"), Some("node-b"))
    );
    assert!(
        other
            .lines
            .recv_timeout(Duration::from_millis(500))
            .is_err(),
        "h.test's tail saw another app"
    );
}

/// Tail events the nodes connected to `cp` have sent it.
fn tail_events_sent(cp: &ControlPlane) -> f64 {
    let metrics = block_on(async {
        send(
            cp.http,
            nano_tests::request("GET", "127.0.0.1", "/_admin/metrics")
                .body(nano_tests::body(""))
                .unwrap(),
        )
        .await
        .body
    });
    nano_tests::sample(&metrics, "nano_controlplane_tail_events_total").unwrap_or(0.0)
}

/// Waits until `node` (connected to `cp`) records and sends about 1% of `host`'s events: 1000
/// requests send about 10 (none at all, or 100 or more, is a chance below 1e-4), not all 1000.
pub(crate) fn wait_until_sampled_at_one_percent(cp: &ControlPlane, node: &Nano, host: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let before = tail_events_sent(cp);
        block_on(async {
            for _ in 0..1000 {
                node.get(host, "/").await;
            }
        });
        let events = tail_events_sent(cp) - before;
        if events > 0.0 && events < 100.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the node still sends {events} events for 1000 requests"
        );
    }
}

/// `nanoctl tail --sample` is sampled on the nodes: once the only tail of an app wants 1% of
/// its requests, the nodes record and send about that share instead of every event, and the
/// tail shows what they send.
#[test]
fn a_sampled_fleet_tail_is_sampled_on_the_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), "127.0.0.1:0");
    let a = node(cp.url(), "node-a", &dir.path().join("a"));
    cp.wait_for_nodes(1);
    ok(&cp.nanoctl(&[
        "deploy",
        &app(dir.path(), "h.js", "hello"),
        "--hostname",
        "h.test",
    ]));
    // A full tail first: it is live once its requests show up, and every event is sent.
    let full = CtlTail::start(&cp, &["h.test"]);
    full.wait_live(&a, "h.test", "/");
    let sampled = CtlTail::start(&cp, &["h.test", "--sample", "0.01"]);
    drop(full);
    wait_until_sampled_at_one_percent(&cp, &a, "h.test");
    // What the node sends at the tail's own rate, the tail shows.
    assert_eq!(sampled.next()["url"], "http://h.test/");
}
