//! `nano check`, `nano config schema`, `--log-format json`, and the control plane's flags.

use nano_tests::{fixtures, run_nano};

/// Writes `config` to `path` and runs `nano check` on it; returns (exit code, stderr).
fn check(path: &std::path::Path, config: serde_json::Value) -> (Option<i32>, String) {
    std::fs::write(path, config.to_string()).unwrap();
    let out = run_nano(&["check", "--config", path.to_str().unwrap()]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_reports_every_problem_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    let hello = fixtures().join("hello/app.js");
    let (code, err) = check(
        &path,
        serde_json::json!({
            "server": { "port": 70000 },
            "apps": [
                { "hostname": "a.example", "entrypoint": hello, "limits": { "wrkers": 2, "cpu_ms": 0 } },
                { "hostname": "x", "entrypoint": "nope.js" }
            ]
        }),
    );
    assert_eq!(code, Some(64));
    assert!(
        err.contains("server.port: 70000 is out of range; allowed 0 to 65535"),
        "{err}"
    );
    assert!(
        err.contains("apps[0].limits: unknown key \"wrkers\""),
        "{err}"
    );
    assert!(
        err.contains("apps[0].limits.cpu_ms: 0 is out of range; allowed 1 to 60000"),
        "{err}"
    );

    // Semantic problems are reported once the shape is right.
    let (code, err) = check(
        &path,
        serde_json::json!({ "apps": [
            { "hostname": "a.example", "entrypoint": hello },
            { "hostname": "A.example", "entrypoint": "nope.js" }
        ]}),
    );
    assert_eq!(code, Some(64));
    assert!(
        err.contains("apps[1].hostname: \"a.example\" is already served by apps[0]"),
        "{err}"
    );
    assert!(err.contains("apps[1].entrypoint:"), "{err}");

    let good = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/example.json");
    let out = run_nano(&["check", "--config", good.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serve_with_a_bad_config_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(&path, "{ \"apps\": [ }").unwrap();
    let out = run_nano(&["--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not valid JSON"));
    // A flag it does not know: the same exit code, naming the flag.
    let out = run_nano(&["--config", path.to_str().unwrap(), "--bogus"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'--bogus'"));
    let out = run_nano(&["--listen", "8080"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be HOST:PORT"));
}

#[test]
fn config_schema_is_printed() {
    let out = run_nano(&["config", "schema"]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(schema["properties"]["apps"].is_object(), "{schema}");
}

/// `--log-format json`: every line the node writes is one JSON object, with the message and
/// its fields (what log shippers parse).
#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nano.json");
    std::fs::write(
        &config,
        serde_json::json!({
            "server": { "host": "127.0.0.1", "port": 0 },
            "apps": [{ "hostname": "hello.example",
                       "entrypoint": nano_tests::fixtures().join("hello/app.js") }],
            "slivers": { "cache_dir": dir.path().join("snapshots") }
        })
        .to_string(),
    )
    .unwrap();
    let (mut child, log) = nano_tests::spawn_logged(
        "nano",
        &["--config", config.to_str().unwrap(), "--log-format", "json"],
        &[("NANO_LOG", "info")],
    );
    let parsed = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
            .collect()
    };
    let message = |line: &serde_json::Value| line["fields"]["message"].as_str().map(str::to_owned);
    let text = log.wait_for("the listening line", |t| t.contains("\"listening\""));
    let lines = parsed(&text);
    let listening = lines
        .iter()
        .find(|l| message(l).as_deref() == Some("listening"))
        .unwrap();
    assert_eq!(listening["level"], "INFO", "{listening}");
    let addr: std::net::SocketAddr = listening["fields"]["addr"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let reply = nano_tests::block_on(nano_tests::send(
        addr,
        nano_tests::request("GET", "hello.example", "/")
            .body(nano_tests::body(""))
            .unwrap(),
    ));
    assert_eq!(reply.status, 200);
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(nano_tests::wait_exit(&mut child, &log).success());
    let lines = parsed(&log.text());
    let stop = lines
        .iter()
        .find(|l| message(l).as_deref() == Some("shutting down"))
        .unwrap_or_else(|| panic!("no shutdown line in {lines:?}"));
    assert_eq!(stop["fields"]["signal"], "SIGTERM", "{stop}");
}

/// The control plane refuses to start without sound tokens, with exit code 64 and a sentence
/// naming the rule; given them (flags or environment) it serves.
#[test]
fn the_control_plane_exits_64_on_bad_flags_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(nano_tests::binary("nano-controlplane"));
        command
            .args([
                "--data-dir",
                data.to_str().unwrap(),
                "--grpc-listen",
                "127.0.0.1:0",
            ])
            .args(["--http-listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("NANO_OPERATOR_TOKEN")
            .env_remove("NANO_NODE_TOKEN");
        for (key, value) in env {
            command.env(key, value);
        }
        let out = nano_tests::output_within(&mut command);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cases: &[(&[&str], &str)] = &[
        (&[], "--operator-token"),
        (&["--operator-token", "operator-1"], "--node-token"),
        (
            &["--operator-token", "short", "--node-token", "node-token-1"],
            "at least 8 characters",
        ),
        (
            &[
                "--operator-token",
                "same-token",
                "--node-token",
                "same-token",
            ],
            "must differ",
        ),
        (
            &[
                "--operator-token",
                "operator-1",
                "--node-token",
                "node-token-1",
                "--bogus",
            ],
            "--bogus",
        ),
        // Both stores at once (the run passes --data-dir).
        (
            &[
                "--operator-token",
                "operator-1",
                "--node-token",
                "node-token-1",
                "--etcd-endpoints",
                "http://127.0.0.1:1",
            ],
            "--etcd-endpoints",
        ),
    ];
    for (args, says) in cases {
        let (code, stderr) = run(args, &[]);
        assert_eq!(code, Some(64), "{args:?}: {stderr}");
        assert!(
            stderr.contains(says),
            "{args:?} should say {says:?}: {stderr}"
        );
    }
    // The same rules apply to the environment.
    let (code, stderr) = run(
        &[],
        &[
            ("NANO_OPERATOR_TOKEN", "same-token"),
            ("NANO_NODE_TOKEN", "same-token"),
        ],
    );
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("must differ"), "{stderr}");
    // etcd settings are checked before anything connects.
    let etcd_cases: &[(&[&str], &str)] = &[
        (&["--etcd-prefix", "nano"], "must start with '/'"),
        (&["--etcd-user", "root"], "NANO_ETCD_PASSWORD"),
        (&["--etcd-cert", "/nonexistent.pem"], "--etcd-key"),
    ];
    for (args, says) in etcd_cases {
        let mut command = std::process::Command::new(nano_tests::binary("nano-controlplane"));
        command
            .args(["--etcd-endpoints", "http://127.0.0.1:1"])
            .args(*args)
            .env("NANO_OPERATOR_TOKEN", "operator-1")
            .env("NANO_NODE_TOKEN", "node-token-1")
            .env_remove("NANO_ETCD_PASSWORD");
        let out = nano_tests::output_within(&mut command);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(
            stderr.contains(says),
            "{args:?} should say {says:?}: {stderr}"
        );
    }
    // Sound tokens from the environment: it starts and says where it listens.
    let (mut child, log) = nano_tests::spawn_logged(
        "nano-controlplane",
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ],
        &[
            ("NANO_OPERATOR_TOKEN", "operator-1"),
            ("NANO_NODE_TOKEN", "node-token-1"),
        ],
    );
    nano_tests::log_addr(&log, "grpc_addr");
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = nano_tests::wait_exit(&mut child, &log);
    assert_eq!(status.code(), Some(0), "{}", log.text());
}
