//! Real frameworks and npm packages, unmodified: Hono (with its AsyncLocalStorage-based
//! contextStorage), itty-router and jwt-simple (CommonJS, Node's crypto and Buffer) from the npm
//! registry, bundled by esbuild into one module each and served by NANO. The bundles are
//! committed (tests/frameworks/dist, made by tests/frameworks/bundle.sh from the packages pinned
//! by package-lock.json), so these tests need neither npm nor the network.

use std::path::PathBuf;

use nano_tests::{Nano, block_on, body, request};
use serde_json::json;

/// The committed bundles, after checking that they were made from the current lockfile and
/// sources (dist/SOURCES.sha256): a change to either without running bundle.sh fails here.
fn bundles() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("frameworks");
    let recorded = std::fs::read_to_string(dir.join("dist/SOURCES.sha256"))
        .expect("tests/frameworks/dist/SOURCES.sha256 (run tests/frameworks/bundle.sh)");
    for line in recorded.lines() {
        let (hash, file) = line.split_once("  ").expect("sha256sum format");
        let now = nano_sliver::sha256_hex(&std::fs::read(dir.join(file)).unwrap());
        assert_eq!(
            now, hash,
            "tests/frameworks/{file} changed since the bundles were made: run tests/frameworks/bundle.sh and commit dist/"
        );
    }
    dir.join("dist")
}

#[test]
fn hono_app_runs_unmodified() {
    let dist = &bundles();
    let nano = Nano::start(
        json!({ "apps": [{ "hostname": "hono.example", "entrypoint": dist.join("hono-app.js") }] }),
    );
    block_on(async {
        let reply = nano.get("hono.example", "/").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "hello from hono")
        );
        assert_eq!(
            reply.header("x-powered-by"),
            Some("hono-on-nano"),
            "middleware ran"
        );

        let reply = nano.get("hono.example", "/users/42?q=x").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json(), json!({ "id": "42", "q": "x" }));
        assert_eq!(reply.header("content-type"), Some("application/json"));

        let req = request("POST", "hono.example", "/echo")
            .header("content-type", "application/json")
            .body(body(r#"{"a":[1,2]}"#))
            .unwrap();
        let reply = nano.send(req).await;
        assert_eq!(
            (reply.status, reply.json()),
            (201, json!({ "received": { "a": [1, 2] } }))
        );

        let reply = nano.get("hono.example", "/nope").await;
        assert_eq!((reply.status, reply.body.as_str()), (404, "404 Not Found"));
        assert_eq!(reply.header("x-nano-error"), None, "the app's own 404");
    });
}

#[test]
fn itty_router_app_runs_unmodified() {
    let dist = &bundles();
    let nano = Nano::start(
        json!({ "apps": [{ "hostname": "itty.example", "entrypoint": dist.join("itty-app.js") }] }),
    );
    block_on(async {
        let reply = nano.get("itty.example", "/items/7").await;
        assert_eq!((reply.status, reply.json()), (200, json!({ "item": "7" })));
        let reply = nano.get("itty.example", "/").await;
        assert_eq!(
            (reply.status, reply.json()),
            (200, json!("hello from itty"))
        );
        let reply = nano.get("itty.example", "/missing").await;
        assert_eq!(reply.status, 404);
        assert_eq!(reply.json()["error"], "Not Found");
    });
}

/// Hono's contextStorage() keeps each request's context in an AsyncLocalStorage: requests that
/// interleave on one isolate (their timers firing in another order than they started) each read
/// back their own.
#[test]
fn hono_context_storage_follows_each_request_across_awaits_and_timers() {
    let dist = &bundles();
    let nano = Nano::start(json!({ "apps": [{
        "hostname": "storage.example",
        "entrypoint": dist.join("hono-storage-app.js"),
        // A context lost in a timer throws there and the request never answers: fail fast.
        "limits": { "workers": 1, "timeout_secs": 5 }
    }] }));
    block_on(async {
        let asks = [("first", 60), ("second", 0), ("third", 30)];
        let tasks: Vec<_> = asks
            .iter()
            .map(|(id, wait)| {
                let (addr, path) = (nano.addr, format!("/who?id={id}&wait={wait}"));
                nano_tests::spawn_get(addr, "storage.example", &path)
            })
            .collect();
        for ((id, _), task) in asks.iter().zip(tasks) {
            let reply = task.await.unwrap();
            let both = format!("{id}/{id}");
            assert_eq!(
                (reply.status, reply.json()),
                (200, json!({ "id": both })),
                "{id}"
            );
        }
    });
}

/// A CommonJS package that needs Node's crypto and Buffer. Expected values are workerd's answers
/// to the same bundle (npm workerd 1.20261117.1, compatibility date 2026-11-01, nodejs_compat).
#[test]
fn jwt_simple_package_runs_unmodified() {
    let dist = &bundles();
    let nano = Nano::start(json!({ "apps": [{
        "hostname": "jwt.example",
        "entrypoint": dist.join("jwt-app.js"),
        "env": { "SECRET": "hi" }
    }] }));
    let reply = block_on(nano.get("jwt.example", "/"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        json!({
            "token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIiwibmFtZSI6Ilpvw6siLCJhZG1pbiI6dHJ1ZSwiaWF0IjoxNzAwMDAwMDAwfQ.Ld-Jw47jUm_vjegn6lEM24Yzl6LQXFpb3ky7TEXypX4",
            "decoded": { "sub": "user-42", "name": "Zoë", "admin": true, "iat": 1700000000 },
            "hs512": "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9.eyJhIjoxfQ.gmY5oZkUWgBDgxWobsNrWjKgZ-w8ziH9Ug2c2B-1j-q_1ZGgkMqOBn3bPvEghZxOZ6pHIzve3mRPdjgW33sZKw",
            "tampered": "Signature verification failed"
        })
    );
}
