//! Real frameworks, unmodified: Hono and itty-router from the npm registry, bundled by esbuild
//! into one module each and served by NANO. The packages are installed (npm ci, pinned by
//! tests/frameworks/package-lock.json) on first use.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use nano_tests::{Nano, block_on, body, request};
use serde_json::json;

fn frameworks() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("frameworks")
}

/// Installs the packages once and bundles both apps into tests/frameworks/dist.
fn bundles() -> &'static PathBuf {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    DIST.get_or_init(|| {
        let dir = frameworks();
        if !dir.join("node_modules/.bin/esbuild").exists() {
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status()
                .expect("npm runs (Node.js is needed for the framework tests)");
            assert!(status.success(), "npm ci in {} failed", dir.display());
        }
        let dist = dir.join("dist");
        for app in ["hono-app", "itty-app"] {
            let status = Command::new(dir.join("node_modules/.bin/esbuild"))
                .arg(format!("src/{app}.js"))
                .args(["--bundle", "--format=esm", "--log-level=warning"])
                .arg(format!("--outfile=dist/{app}.js"))
                .current_dir(&dir)
                .status()
                .expect("esbuild runs");
            assert!(status.success(), "bundling {app} failed");
        }
        dist
    })
}

#[test]
fn hono_app_runs_unmodified() {
    let dist = bundles();
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
    let dist = bundles();
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
