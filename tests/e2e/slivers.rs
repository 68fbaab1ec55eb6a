//! Slivers: build, inspect, serve; every corruption refused with the part and the reason; the
//! snapshot cache survives restarts and rebuilds what does not verify.

use nano_tests::{Nano, block_on, fixtures, run_nano};
use serde_json::json;

fn build(dir: &std::path::Path) -> std::path::PathBuf {
    let out = dir.join("imports.sliver");
    let entry = fixtures().join("imports/app.js");
    let run = run_nano(&[
        "sliver",
        "build",
        entry.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let printed = String::from_utf8_lossy(&run.stdout).to_string();
    let bytes = std::fs::read(&out).unwrap();
    assert!(
        printed.starts_with(&nano_sliver_id(&bytes)),
        "build prints the id: {printed}"
    );
    out
}

fn nano_sliver_id(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let digest = sha256(bytes);
    digest.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// SHA-256 via the system's `sha256sum`, so the test does not trust the code it checks.
fn sha256(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    let hex = String::from_utf8_lossy(&out.stdout);
    (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn build_inspect_and_serve_a_sliver() {
    let dir = tempfile::tempdir().unwrap();
    let sliver = build(dir.path());
    let again = build(&dir.path().join(".."));
    assert_eq!(
        std::fs::read(&sliver).unwrap(),
        std::fs::read(&again).unwrap(),
        "deterministic"
    );
    let _ = std::fs::remove_file(again);

    let inspect = run_nano(&["sliver", "inspect", sliver.to_str().unwrap()]);
    assert!(inspect.status.success());
    let text = String::from_utf8_lossy(&inspect.stdout);
    for needle in [
        "\"entry\": \"app.js\"",
        "lib/greet.js",
        "lib/shout.js",
        "\"format\": 1",
        "v8 ",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }

    let nano = Nano::start(json!({ "apps": [{ "hostname": "s.example", "sliver": sliver }] }));
    let reply = block_on(nano.get("s.example", "/"));
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "HELLO IMPORTS (OK)")
    );
}

#[test]
fn corrupt_slivers_are_refused_with_the_part_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(build(dir.path())).unwrap();
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("empty", Vec::new(), "the file is empty"),
        (
            "truncated",
            good[..good.len() - 10].to_vec(),
            "truncated: part \"lib/shout.js\"",
        ),
        (
            "flipped",
            flipped,
            "part \"lib/shout.js\": its SHA-256 does not match",
        ),
        ("garbage", b"#!/bin/sh\necho hi\n".to_vec(), "magic"),
    ];
    let mut apps = Vec::new();
    for (name, bytes, needle) in &cases {
        let path = dir.path().join(format!("{name}.sliver"));
        std::fs::write(&path, bytes).unwrap();
        let inspect = run_nano(&["sliver", "inspect", path.to_str().unwrap()]);
        assert!(!inspect.status.success(), "{name}");
        let err = String::from_utf8_lossy(&inspect.stderr);
        assert!(err.contains(needle), "{name}: {err}");
        apps.push(json!({ "hostname": format!("{name}.example"), "sliver": path }));
    }
    apps.push(
        json!({ "hostname": "ok.example", "entrypoint": "hello/app.js", "env": { "NAME": "ok" } }),
    );
    let nano = Nano::start(json!({ "apps": apps }));
    block_on(async {
        for (name, _, needle) in &cases {
            let reply = nano.get(&format!("{name}.example"), "/").await;
            assert_eq!(reply.status, 503, "{name}");
            assert_eq!(reply.header("x-nano-error"), Some("app-unavailable"));
            assert!(
                reply.body.contains(&needle.replace('"', "\\\"")),
                "{name}: {}",
                reply.body
            );
        }
        assert_eq!(nano.get("ok.example", "/").await.status, 200);
    });
}

#[test]
fn snapshot_cache_survives_restarts_and_rebuilds_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let config = json!({
        "slivers": { "cache_dir": cache },
        "apps": [{ "hostname": "a.example", "entrypoint": "hello/app.js", "env": { "NAME": "a" } }]
    });
    {
        let nano = Nano::start(config.clone());
        assert_eq!(block_on(nano.get("a.example", "/")).body, "hello from a");
        assert!(
            !nano.log.text().contains("from the cache"),
            "the first start prepares from source"
        );
    }
    {
        let nano = Nano::start(config.clone());
        assert_eq!(block_on(nano.get("a.example", "/")).body, "hello from a");
        assert!(
            nano.log.text().contains("app snapshot from the cache"),
            "{}",
            nano.log.text()
        );
    }
    // Corrupt every cached snapshot: it is discarded, rebuilt, and the app still serves.
    for entry in std::fs::read_dir(&cache).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "snapshot") {
            let mut bytes = std::fs::read(&path).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let nano = Nano::start(config);
    assert_eq!(block_on(nano.get("a.example", "/")).body, "hello from a");
    let log = nano.log.text();
    assert!(
        log.contains("discarding a bad snapshot cache file"),
        "{log}"
    );
}

/// The runtime's JS is in the binary: an app snapshot refers to it instead of carrying a copy
/// (so neither the snapshot cache nor each isolate holds it), also to the runtime parts the app's
/// top level built into it; and the node serves from that snapshot, again after a restart.
#[test]
fn an_app_snapshot_refers_to_the_runtime_source_and_carries_no_copy() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let config = json!({
        "slivers": { "cache_dir": cache },
        "apps": [{ "hostname": "p.example", "entrypoint": "runtime-parts/app.js" }]
    });
    let expected = (200, "7061727473 42 42 2");
    {
        let nano = Nano::start(config.clone());
        let reply = block_on(nano.get("p.example", "/p/42"));
        assert_eq!((reply.status, reply.body.as_str()), expected);
    }
    let snapshots: Vec<Vec<u8>> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "snapshot"))
        .map(|path| std::fs::read(path).unwrap())
        .collect();
    assert_eq!(snapshots.len(), 1);
    let sources = [
        include_str!("../../dataplane/src/webapi/js/runtime/dispatch.js"),
        include_str!("../../dataplane/src/webapi/js/runtime/streams.js"),
        include_str!("../../dataplane/src/webapi/js/runtime/console.js"),
        include_str!("../../dataplane/src/webapi/js/node/buffer.js"),
        include_str!("../../dataplane/src/webapi/js/extras.js"),
    ];
    let lines: Vec<&str> = sources
        .iter()
        .flat_map(|source| source.lines())
        .map(str::trim)
        .filter(|line| line.len() >= 60)
        .collect();
    assert!(lines.len() > 100, "only {} lines looked for", lines.len());
    for line in lines {
        let one_byte = line.as_bytes();
        let two_byte: Vec<u8> = line.encode_utf16().flat_map(u16::to_le_bytes).collect();
        for (encoding, needle) in [("one-byte", one_byte), ("two-byte", &two_byte[..])] {
            assert!(
                !snapshots[0]
                    .windows(needle.len())
                    .any(|window| window == needle),
                "the app snapshot holds a copy of the runtime's source ({encoding}): {line}"
            );
        }
    }
    // The app's own source is in it (the check above would see a copy).
    assert!(
        snapshots[0]
            .windows(13)
            .any(|window| window == b"Buffer.from(\"".as_slice()),
        "the app's source is in its snapshot"
    );
    // Read back from the cache: the references resolve in another process.
    let nano = Nano::start(config);
    let reply = block_on(nano.get("p.example", "/p/42"));
    assert_eq!((reply.status, reply.body.as_str()), expected);
    assert!(nano.log.text().contains("app snapshot from the cache"));
}
