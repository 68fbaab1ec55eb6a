//! Context reset: module-scope and global state never survive a request unless the app opts out.

use nano_tests::{Nano, block_on};
use serde_json::json;

#[test]
fn fresh_context_per_request_by_default_and_persistent_without_reset() {
    let nano = Nano::start(json!({
        "apps": [
            { "hostname": "reset.example", "entrypoint": "counter/app.js", "limits": { "workers": 1 } },
            { "hostname": "keep.example", "entrypoint": "counter/app.js", "limits": { "workers": 1 },
              "context_reset": false }
        ]
    }));
    block_on(async {
        for _ in 0..3 {
            let reply = nano.get("reset.example", "/").await;
            assert_eq!(reply.json(), json!({ "count": 1, "leaked": 1 }));
        }
        for n in 1..=3 {
            let reply = nano.get("keep.example", "/").await;
            assert_eq!(reply.json(), json!({ "count": n, "leaked": n }));
        }
    });
}
