//! `nano check` and `nano config schema`.

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
}

#[test]
fn config_schema_is_printed() {
    let out = run_nano(&["config", "schema"]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(schema["properties"]["apps"].is_object(), "{schema}");
}
