//! Handler exceptions, bad return values and apps that fail to load.

use nano_tests::{Nano, block_on};
use serde_json::json;

#[test]
fn exceptions_and_bad_responses_are_500_with_a_reason() {
    let nano = Nano::start(json!({
        "apps": [{ "hostname": "throws.example", "entrypoint": "throws/app.js", "limits": { "workers": 1 } }]
    }));
    block_on(async {
        for (path, code, needle) in [
            ("/sync", "handler-exception", "Error: boom in sync handler"),
            ("/async", "handler-exception", "TypeError: boom after await"),
            ("/string", "handler-exception", "a bare string"),
            (
                "/not-a-response",
                "bad-response",
                "returned an instance of Object instead of a Response",
            ),
        ] {
            let reply = nano.get("throws.example", path).await;
            assert_eq!(reply.status, 500, "{path}");
            assert_eq!(reply.header("x-nano-error"), Some(code), "{path}");
            let body = reply.json();
            assert_eq!(body["error"], code);
            assert!(
                body["message"].as_str().unwrap().contains(needle),
                "{path}: {body}"
            );
        }
        // The worker serves on after every failure.
        let reply = nano.get("throws.example", "/").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "fine"));
    });
    let log = nano.log.text();
    let line = log
        .lines()
        .find(|l| l.contains("boom in sync handler"))
        .expect("exception logged");
    assert!(line.contains("hostname=throws.example"), "{line}");
    assert!(
        line.contains("app.js:5"),
        "the stack names the file and line: {line}"
    );
}

#[test]
fn apps_that_fail_to_load_answer_503_and_the_others_serve() {
    let nano = Nano::start(json!({
        "apps": [
            { "hostname": "syntax.example", "entrypoint": "broken-syntax/app.js" },
            { "hostname": "missing.example", "entrypoint": "missing-import/app.js" },
            { "hostname": "nohandler.example", "entrypoint": "no-handler/app.js" },
            { "hostname": "bare.example", "entrypoint": "bare-import/app.js" },
            { "hostname": "ok.example", "entrypoint": "hello/app.js", "env": { "NAME": "ok" } }
        ]
    }));
    block_on(async {
        for (host, needle) in [
            ("syntax.example", "app.js:3: SyntaxError"),
            ("missing.example", "lib/does-not-exist.js"),
            ("nohandler.example", "no fetch handler"),
            (
                "bare.example",
                "\\\"hono\\\" in app.js is not a relative path",
            ),
        ] {
            let reply = nano.get(host, "/").await;
            assert_eq!(reply.status, 503, "{host}");
            assert_eq!(
                reply.header("x-nano-error"),
                Some("app-unavailable"),
                "{host}"
            );
            assert!(reply.body.contains(needle), "{host}: {}", reply.body);
        }
        let reply = nano.get("ok.example", "/").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "hello from ok"));
    });
    let log = nano.log.text();
    for host in [
        "syntax.example",
        "missing.example",
        "nohandler.example",
        "bare.example",
    ] {
        let line = log
            .lines()
            .find(|l| l.contains("app failed to load") && l.contains(host))
            .unwrap_or_else(|| panic!("no load failure logged for {host}:\n{log}"));
        assert!(line.contains("source="), "{line}");
    }
}
