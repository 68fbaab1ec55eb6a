//! Routing by Host, both handler shapes, request and response fidelity, async handlers.

use nano_tests::{Nano, block_on, body, request};
use serde_json::json;

fn two_apps() -> Nano {
    Nano::start(json!({
        "apps": [
            { "hostname": "a.example", "entrypoint": "hello/app.js", "env": { "NAME": "a" } },
            { "hostname": "B.Example", "entrypoint": "hello/app.js", "env": { "NAME": "b" },
              "limits": { "workers": 1 } },
            { "hostname": "echo.example", "entrypoint": "echo/app.js" },
            { "hostname": "listener.example", "entrypoint": "listener/app.js" },
            { "hostname": "async.example", "entrypoint": "async/app.js" },
            { "hostname": "imports.example", "entrypoint": "imports/app.js" }
        ]
    }))
}

#[test]
fn routes_by_normalised_host_and_refuses_unknown_hosts() {
    let nano = two_apps();
    block_on(async {
        for (host, want) in [
            ("a.example", "hello from a"),
            ("A.EXAMPLE", "hello from a"),
            ("a.example:8080", "hello from a"),
            ("a.example.", "hello from a"),
            ("b.example", "hello from b"),
            ("b.example.:1", "hello from b"),
        ] {
            let reply = nano.get(host, "/").await;
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (200, want),
                "Host: {host}"
            );
            assert_eq!(reply.header("x-nano-error"), None);
        }
        let reply = nano.get("nobody.example:9", "/").await;
        assert_eq!(reply.status, 404);
        assert_eq!(reply.header("x-nano-error"), Some("unknown-host"));
        assert!(reply.body.contains("\"nobody.example\""), "{}", reply.body);
    });
    let log = nano.log.text();
    assert!(
        log.contains("app loaded") && log.contains("hostname=a.example"),
        "{log}"
    );
}

#[test]
fn request_reaches_js_whole_and_response_comes_back_whole() {
    let nano = two_apps();
    block_on(async {
        let req = request("POST", "echo.example", "/submit?x=1&y=two")
            .header("x-custom", "one")
            .header("x-multi", "m1")
            .header("x-multi", "m2")
            .header("content-type", "text/plain")
            .body(body("the body ✓"))
            .unwrap();
        let reply = nano.send(req).await;
        assert_eq!(reply.status, 201);
        let echoed = reply.json();
        assert_eq!(echoed["method"], "POST");
        assert_eq!(echoed["url"], "http://echo.example/submit?x=1&y=two");
        assert_eq!(echoed["body"], "the body ✓");
        assert_eq!(echoed["headers"]["x-custom"], "one");
        assert_eq!(echoed["headers"]["x-multi"], "m1, m2");
        assert_eq!(echoed["headers"]["content-type"], "text/plain");
        let cookies: Vec<_> = reply.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1; Path=/", "b=2; Path=/"]);
        assert_eq!(reply.header("x-echo"), Some("yes"));
        assert_eq!(reply.header("content-type"), Some("application/json"));
    });
}

#[test]
fn listener_syntax_async_handlers_and_relative_imports() {
    let nano = two_apps();
    block_on(async {
        let reply = nano.get("listener.example", "/some/path").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "listener saw /some/path")
        );

        let reply = nano.get("async.example", "/").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body, "timer,chain:20,microtask,interval:3");

        let reply = nano.get("imports.example", "/").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "HELLO IMPORTS (OK)")
        );
    });
    // waitUntil work runs after the response and its console output is tagged with the hostname.
    let log = nano
        .log
        .wait_for("waitUntil output", |t| t.contains("waitUntil finished"));
    let line = log
        .lines()
        .find(|l| l.contains("waitUntil finished"))
        .unwrap();
    assert!(line.contains("hostname=async.example"), "{line}");
}

#[test]
fn many_concurrent_requests_on_one_worker_all_complete() {
    let nano = Nano::start(json!({
        "apps": [{ "hostname": "barrier.example", "entrypoint": "barrier/app.js",
                   "context_reset": false, "limits": { "workers": 1 } }]
    }));
    block_on(async {
        // 20 requests on a single worker, each answering only once all 20 have arrived: they
        // must be in flight together (run one after another, the first would wait forever).
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let addr = nano.addr;
                nano_tests::spawn_get(addr, "barrier.example", "/?n=20")
            })
            .collect();
        for task in tasks {
            let reply = task.await.unwrap();
            assert_eq!((reply.status, reply.body.as_str()), (200, "all 20 arrived"));
        }
    });
}
