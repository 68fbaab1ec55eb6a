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
