//! WebAssembly at request time: compile, instantiate, exports, memory, validate; a WASM loop is
//! ended by the CPU limit and the worker serves on.

use nano_tests::{Nano, block_on};
use serde_json::json;

#[test]
fn wasm_runs_and_its_loops_hit_the_cpu_limit() {
    let nano = Nano::start(
        json!({ "apps": [{ "hostname": "wasm.example", "entrypoint": "wasm/app.js",
                                              "limits": { "workers": 1, "cpu_ms": 50 } }] }),
    );
    block_on(async {
        let reply = nano.get("wasm.example", "/add?a=40&b=2").await;
        assert_eq!(
            (reply.status, reply.json()),
            (200, json!({ "sum": 42, "pages": 1, "module": true }))
        );
        let reply = nano.get("wasm.example", "/validate").await;
        assert_eq!(reply.json(), json!({ "good": true, "bad": false }));

        let reply = nano.get("wasm.example", "/spin").await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.header("x-nano-error"), Some("cpu-limit"));

        let reply = nano.get("wasm.example", "/add?a=1&b=2").await;
        assert_eq!(
            (reply.status, reply.json()["sum"].clone()),
            (200, json!(3)),
            "the worker serves on"
        );
    });
}

#[test]
fn wasm_imports_work_from_files_and_slivers_and_bad_binaries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sliver = dir.path().join("wasm.sliver");
    let entry = nano_tests::fixtures().join("wasm-import/app.js");
    let build = nano_tests::run_nano(&[
        "sliver",
        "build",
        entry.to_str().unwrap(),
        "-o",
        sliver.to_str().unwrap(),
    ]);
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let inspect = nano_tests::run_nano(&["sliver", "inspect", sliver.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&inspect.stdout).contains("\"kind\": \"wasm\""));

    let nano = Nano::start(json!({ "apps": [
        { "hostname": "file.example", "entrypoint": "wasm-import/app.js", "limits": { "workers": 1 } },
        { "hostname": "context.example", "entrypoint": "wasm-import/app.js", "context_reset": false },
        { "hostname": "sliver.example", "sliver": sliver },
        { "hostname": "bad.example", "entrypoint": "wasm-bad/app.js" }
    ]}));
    block_on(async {
        for host in ["file.example", "context.example", "sliver.example"] {
            for (a, b) in [(1, 2), (40, 2)] {
                let reply = nano.get(host, &format!("/?a={a}&b={b}")).await;
                assert_eq!(reply.status, 200, "{host}: {}", reply.body);
                assert_eq!(
                    reply.json(),
                    json!({ "sum": a + b, "isModule": true }),
                    "{host}"
                );
            }
        }
        let reply = nano.get("bad.example", "/").await;
        assert_eq!(reply.status, 503);
        assert!(
            reply.body.contains("bad.wasm") && reply.body.contains("not a WebAssembly module"),
            "{}",
            reply.body
        );
    });
}

#[test]
fn wasm_memory_counts_against_memory_mb() {
    let nano = Nano::start(
        json!({ "apps": [{ "hostname": "wasm.example", "entrypoint": "wasm/app.js",
                                              "context_reset": false, "limits": { "workers": 1, "memory_mb": 64, "cpu_ms": 5000 } }] }),
    );
    block_on(async {
        // 63 MiB of WebAssembly memory in a 64 MiB isolate: over 95%, so the isolate is replaced.
        let reply = nano.get("wasm.example", "/grow?pages=1008").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        nano.log.wait_for("the replacement", |t| {
            t.contains("replacing the isolate") && t.contains("reason=memory")
        });
        // The replacement is logged as it starts; wait for the fresh isolate to be published.
        let deadline = std::time::Instant::now() + nano_tests::PATIENCE;
        loop {
            let isolates = nano.get("127.0.0.1", "/_admin/isolates").await.json();
            if isolates["isolates"][0]["isolate"] == "wasm.example/0/2" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never replaced: {isolates}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
}
