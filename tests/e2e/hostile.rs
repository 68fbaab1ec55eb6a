//! The hardening campaign's findings, each as an attack: the process lives, the attacker gets the
//! documented status and `x-nano-error`, its neighbour and (where possible) the attacker's app
//! keep answering.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use nano_tests::{Nano, PATIENCE, block_on};
use serde_json::{Value, json};

fn app(hostname: &str, limits: Value) -> Value {
    json!({ "hostname": hostname, "entrypoint": "hostile/app.js", "limits": limits })
}

fn neighbour() -> Value {
    json!({ "hostname": "calm.example", "entrypoint": "hello/app.js", "env": { "NAME": "calm" } })
}

/// Builtins V8 runs in C++ without termination checks, and a WebAssembly start function reached
/// through `WebAssembly.instantiate`: each ends at `cpu_ms` (before: the worker spun for hours or
/// the process aborted), and the same worker serves the next request.
#[test]
fn builtins_that_cannot_be_interrupted_end_at_the_cpu_limit() {
    let nano = Nano::start(json!({ "apps": [
        app("bomb.example", json!({ "workers": 1, "cpu_ms": 50, "memory_mb": 64, "timeout_secs": 5 })),
        neighbour(),
    ]}));
    block_on(async {
        let mut wrong = Vec::new();
        for path in [
            "/array-from",
            "/index-of",
            "/last-index-of",
            "/includes",
            "/copy-within",
            "/reverse",
            "/splice",
            "/sort",
            "/join",
            "/for-each",
            "/concat",
            "/wasm-start",
            "/wasm-start-module",
            "/stack-hook-loop",
        ] {
            let reply = nano.get("bomb.example", path).await;
            let code = reply.header("x-nano-error").unwrap_or_default();
            if reply.status != 503 || !["cpu-limit", "memory-limit"].contains(&code) {
                wrong.push(format!(
                    "{path}: {} {code:?} {}",
                    reply.status,
                    reply.body.trim()
                ));
            }
            let again = nano.get("bomb.example", "/").await;
            assert_eq!(again.body, "ok hostile", "{path}: the worker serves on");
        }
        assert!(
            wrong.is_empty(),
            "not ended by a limit:\n{}",
            wrong.join("\n")
        );
        assert_eq!(nano.get("calm.example", "/").await.status, 200);
    });
}

/// The JS versions behind the guards give the native answers (run on array-likes just past the
/// guard's threshold, with CPU enough to finish).
#[test]
fn guarded_array_methods_answer_as_the_native_ones() {
    let nano = Nano::start(json!({ "apps": [
        app("guard.example", json!({ "cpu_ms": 30000, "timeout_secs": 60 })),
    ]}));
    block_on(async {
        let reply = nano.get("guard.example", "/guarded").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let answers = reply.json();
        let failed: Vec<&String> = answers
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, ok)| **ok != json!(true))
            .map(|(name, _)| name)
            .collect();
        assert!(failed.is_empty(), "wrong answers: {failed:?} in {answers}");
    });
}

/// JS stuck in a builtin that never checks for termination (ICU normalising 128 Mi characters)
/// outlives `timeout_secs`: the client gets its 504 from the front, the worker is replaced at once
/// so the app answers while the old thread is still stuck, and the metric counts it until the old
/// thread exits.
#[test]
fn a_stuck_worker_is_replaced_and_the_app_keeps_serving() {
    let nano = Nano::start(json!({ "apps": [
        app("stuck.example", json!({ "workers": 1, "cpu_ms": 50, "memory_mb": 4096, "timeout_secs": 1 })),
        neighbour(),
    ]}));
    block_on(async {
        let reply = nano.get("stuck.example", "/stuck").await;
        assert_eq!(
            (reply.status, reply.header("x-nano-error")),
            (504, Some("timeout")),
            "{}",
            reply.body
        );
        nano.log.wait_for("the replacement", |t| {
            t.contains("worker stuck in JS that cannot be interrupted; started a replacement")
        });
        let metrics = nano.get("127.0.0.1", "/_admin/metrics").await.body;
        let stuck = "nano_stuck_workers{hostname=\"stuck.example\"}";
        // Counted while the old thread runs (it may have finished already on a fast machine).
        if !nano
            .log
            .text()
            .contains("a worker replaced while stuck has finished")
        {
            assert!(metrics.contains(&format!("{stuck} 1")), "{metrics}");
        }
        let again = nano.get("stuck.example", "/").await;
        assert_eq!((again.status, again.body.as_str()), (200, "ok hostile"));
        assert_eq!(nano.get("calm.example", "/").await.status, 200);
        nano.log.wait_for("the stuck thread's exit", |t| {
            t.contains("a worker replaced while stuck has finished and exits")
        });
        let metrics = nano.get("127.0.0.1", "/_admin/metrics").await.body;
        assert!(metrics.contains(&format!("{stuck} 0")), "{metrics}");
    });
}

/// SIGTERM while a worker is stuck: the node exits within its grace period without waiting for
/// the stuck JS (before: it logged "all connections drained" and never exited), both while the
/// stuck request is still in flight and after its worker was replaced.
#[test]
fn shutdown_does_not_wait_for_a_stuck_worker() {
    let config = json!({
        "server": { "shutdown_grace_secs": 0 },
        "apps": [app("stuck.example", json!({ "workers": 1, "memory_mb": 4096, "timeout_secs": 1 }))],
    });
    // In flight: the request is inside the stuck JS when SIGTERM comes.
    let mut nano = Nano::start(config.clone());
    block_on(async {
        let addr = nano.addr;
        nano_tests::spawn_get(addr, "stuck.example", "/stuck");
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let isolates = nano.get("127.0.0.1", "/_admin/isolates").await.json();
            // Handed to the worker (which takes queued work before it sees the pool close).
            if isolates["isolates"][0]["in_flight"] == 1 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never in flight: {isolates}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let status = nano.terminate();
    assert!(status.success(), "{status:?}");
    let log = nano.log.text();
    assert!(
        log.contains("exiting without them")
            && !log.contains("request hostname=stuck.example method=GET path=/stuck status=200"),
        "the exit waited for the stuck worker:\n{log}"
    );

    // Replaced: the stuck thread is no longer the pool's, and the exit does not wait for it.
    let mut nano = Nano::start(config);
    block_on(async {
        let reply = nano.get("stuck.example", "/stuck").await;
        assert_eq!(reply.status, 504, "{}", reply.body);
    });
    let status = nano.terminate();
    assert!(status.success(), "{status:?}");
    let log = nano.log.text();
    assert!(
        log.contains("started a replacement")
            && !log.contains("a worker replaced while stuck has finished"),
        "the exit waited for the stuck worker:\n{log}"
    );
}

/// Without context reset, timers outlive nothing: an interval left behind by a request stops
/// when the request (and its waitUntil work) ends, as on Workers (before: it ran forever, a core
/// per isolate outside cpu_ms).
#[test]
fn timers_end_with_their_request_without_context_reset() {
    let nano = Nano::start(json!({ "apps": [{
        "hostname": "timers.example", "entrypoint": "hostile/app.js", "context_reset": false,
        "limits": { "workers": 1 }
    }]}));
    block_on(async {
        let reply = nano.get("timers.example", "/leave-interval").await;
        assert_eq!(reply.body, "left an interval");
        // The interval runs while the request's waitUntil work is pending; that work settles on
        // the 20th tick, in the same stretch of JS, and the request ends there.
        let deadline = std::time::Instant::now() + PATIENCE;
        let first: u64 = loop {
            let ticks: u64 = nano
                .get("timers.example", "/ticks")
                .await
                .body
                .parse()
                .unwrap();
            if ticks >= 20 {
                break ticks;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the interval stalled at {ticks}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(first, 20, "the interval outlived its request");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let later: u64 = nano
            .get("timers.example", "/ticks")
            .await
            .body
            .parse()
            .unwrap();
        assert_eq!(first, later, "the interval outlived its request");
    });
}

fn front_node(server: Value) -> Nano {
    Nano::start(json!({
        "server": server,
        "apps": [
            { "hostname": "echo.example", "entrypoint": "echo/app.js",
              "limits": { "workers": 1, "queue_per_worker": 2 } },
            neighbour(),
        ]
    }))
}

/// The status line and `x-nano-error` of a raw HTTP/1.1 exchange.
fn raw_exchange(nano: &Nano, bytes: &str) -> (String, String, String) {
    let mut stream = TcpStream::connect(nano.addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(bytes.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    let status = out.lines().next().unwrap_or_default().to_owned();
    let code = out
        .lines()
        .find_map(|l| l.strip_prefix("x-nano-error: "))
        .unwrap_or_default()
        .to_owned();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, code, body)
}

/// Anything but one valid `host[:port]` is 400 bad-host (before: a path or user info in `Host`
/// reached the app's URL); an absolute-form target's authority routes the request and is the
/// app's `Host`; CONNECT is 405 from NANO, never the app.
#[test]
fn hosts_that_are_not_host_and_port_get_400() {
    let nano = front_node(json!({}));
    for host in [
        "echo.example:80/admin?",
        "echo.example:1@evil.example",
        "echo.example:notaport",
        "echo.example:99999",
        "",
        "echo example",
    ] {
        let (status, code, body) = raw_exchange(
            &nano,
            &format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(
            (status.as_str(), code.as_str()),
            ("HTTP/1.1 400 Bad Request", "bad-host"),
            "Host {host:?}: {body}"
        );
    }
    let (status, code, _) = raw_exchange(
        &nano,
        "GET /x HTTP/1.1\r\nHost: echo.example\r\nHost: calm.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        (status.as_str(), code.as_str()),
        ("HTTP/1.1 400 Bad Request", "bad-host")
    );
    let (status, _, body) = raw_exchange(
        &nano,
        "GET http://echo.example/abs HTTP/1.1\r\nHost: calm.example\r\nConnection: close\r\n\r\n",
    );
    assert!(status.contains("201"), "{status} {body}");
    let echoed: Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(echoed["url"], "http://echo.example/abs");
    assert_eq!(echoed["headers"]["host"], "echo.example", "{echoed}");
    let (status, code, _) = raw_exchange(
        &nano,
        "CONNECT echo.example:443 HTTP/1.1\r\nHost: echo.example:443\r\n\r\n",
    );
    assert_eq!(
        (status.as_str(), code.as_str()),
        ("HTTP/1.1 405 Method Not Allowed", "method-not-allowed")
    );
}

/// A connection that never sends a byte is closed after `header_timeout_secs` (the timer starts
/// at accept), while one whose request is in flight stays open.
#[test]
fn silent_connections_are_closed_from_accept() {
    let nano = front_node(json!({ "header_timeout_secs": 1 }));
    let mut silent = TcpStream::connect(nano.addr).unwrap();
    silent.set_read_timeout(Some(PATIENCE)).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0; 16];
    let read = silent.read(&mut buf);
    assert!(
        matches!(read, Ok(0))
            || read.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the silent connection was not closed"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "closed before header_timeout_secs"
    );
    nano.log
        .wait_for("the close", |t| t.contains("closing an idle connection"));
}

/// Past `server.max_connections` the longest-idle connections make room, so idle sockets cannot
/// lock tenants out (before: 1 100 connects against a soft limit of 1 024 timed every app out).
#[test]
fn idle_connections_past_the_cap_make_room_for_new_ones() {
    let nano = front_node(json!({ "max_connections": 16, "header_timeout_secs": 300 }));
    let idle: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(nano.addr).unwrap())
        .collect();
    block_on(async {
        let reply = nano.get("calm.example", "/").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    });
    let mut closed = 0;
    for mut stream in idle {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match stream.read(&mut [0; 1]) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            _ => {}
        }
    }
    // Whichever were closed, the node kept at most its cap open.
    assert!(
        closed >= 40 - 16,
        "only {closed} of 40 idle connections closed"
    );
}

/// Slow uploads get 408 after `body_timeout_secs` and never hold the app's request slots (before:
/// 260 one-byte uploads kept the app on 503 queue-full indefinitely).
#[test]
fn slow_uploads_time_out_and_hold_no_slots() {
    let nano = front_node(json!({ "body_timeout_secs": 1 }));
    let mut slow: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut stream = TcpStream::connect(nano.addr).unwrap();
            stream
                .write_all(
                    b"POST /up HTTP/1.1\r\nHost: echo.example\r\nContent-Length: 10\r\n\r\nx",
                )
                .unwrap();
            stream
        })
        .collect();
    block_on(async {
        let reply = nano.get("echo.example", "/").await;
        assert_eq!(reply.status, 201, "the 2 slots are free: {}", reply.body);
    });
    for stream in &mut slow {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut out = String::new();
        let _ = stream.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 408"), "{out}");
        assert!(out.contains("x-nano-error: body-timeout"), "{out}");
    }
}

/// Request bodies held at once are bounded node-wide: past `max_buffered_body_bytes` a new upload
/// gets 503 node-busy at once (before: eight 100 MB uploads took 1.4 GB of RSS).
#[test]
fn buffered_request_bodies_are_bounded_across_the_node() {
    let nano =
        front_node(json!({ "max_body_bytes": 1_048_576, "max_buffered_body_bytes": 2_097_152 }));
    let hold = || {
        let mut stream = TcpStream::connect(nano.addr).unwrap();
        stream
            .write_all(
                b"POST /up HTTP/1.1\r\nHost: echo.example\r\nContent-Length: 1048576\r\n\r\npart",
            )
            .unwrap();
        stream.set_nonblocking(true).unwrap();
        stream
    };
    // Answered (refused: the node read a third upload's headers first) or closed: not holding.
    let answered = |stream: &TcpStream| {
        let mut byte = [0u8; 1];
        !matches!(stream.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    };
    let mut holders: Vec<TcpStream> = (0..2).map(|_| hold()).collect();
    // The node admits connections in whatever order it reads them: retry the third until it is
    // the one refused, putting back any partial upload that was refused in its place.
    block_on(async {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            for holder in holders.iter_mut() {
                if answered(holder) {
                    *holder = hold();
                }
            }
            let request = nano_tests::request("POST", "echo.example", "/third")
                .header("content-length", "1048576")
                .body(http_body_util::Full::new(bytes::Bytes::from(vec![
                    b'x';
                    1_048_576
                ])))
                .unwrap();
            let reply = nano.send(request).await;
            if reply.status == 503 {
                assert_eq!(
                    reply.header("x-nano-error"),
                    Some("node-busy"),
                    "{}",
                    reply.body
                );
                assert!(
                    reply.body.contains("max_buffered_body_bytes"),
                    "{}",
                    reply.body
                );
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never refused: {}",
                reply.status
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(holders);
        // Once the partial uploads are gone, their bytes are released.
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let request = nano_tests::request("POST", "echo.example", "/after")
                .body(http_body_util::Full::new(bytes::Bytes::from(vec![
                    b'x';
                    1_048_576
                ])))
                .unwrap();
            if nano.send(request).await.status == 201 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the budget was never released"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// WebAssembly memory beyond the isolate's memory limit is refused when it is made or grown
/// (before: a 4 GiB memory answered 200), and their number is bounded per isolate.
#[test]
fn webassembly_memory_is_bounded_by_the_isolate_limit() {
    let nano = Nano::start(json!({ "apps": [{
        "hostname": "wasm.example", "entrypoint": "hostile/app.js", "context_reset": false,
        "limits": { "workers": 1, "memory_mb": 64 }
    }]}));
    block_on(async {
        let made = nano.get("wasm.example", "/wasm-memory-4g").await.body;
        assert!(
            made.starts_with("RangeError: WebAssembly.Memory: an initial size of 65536 pages"),
            "{made}"
        );
        assert!(made.contains("limits.memory_mb"), "{made}");
        let grown = nano.get("wasm.example", "/wasm-memory-grow").await.body;
        assert!(
            grown.starts_with("RangeError: WebAssembly.Memory.grow"),
            "{grown}"
        );
        // A module's own memory is capped too: growing it from inside fails (-1), and a module
        // whose memory starts over the limit is refused.
        let inside = nano.get("wasm.example", "/wasm-grow-inside").await.body;
        assert_eq!(inside, "grow: -1, before: 65536, after: 65536");
        let big = nano.get("wasm.example", "/wasm-big-module").await.body;
        assert!(
            big.starts_with("RangeError: WebAssembly: the module defines a memory of 2000 pages"),
            "{big}"
        );
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(nano.get("wasm.example", "/wasm-memories").await.body);
        }
        assert_eq!(
            answers[..2],
            ["returned 100", "returned 200"],
            "{answers:?}"
        );
        assert!(
            answers[2].starts_with("RangeError: WebAssembly.Memory: too many"),
            "{answers:?}"
        );
        // Tables are bounded the same way (10 M entries in a 64 MiB isolate).
        let table = nano.get("wasm.example", "/wasm-table").await.body;
        assert!(
            table.starts_with("RangeError: WebAssembly.Table: an initial size of 10000000 entries"),
            "{table}"
        );
        // A module's own memory counts too, once per instance.
        let instance = nano.get("wasm.example", "/wasm-instance").await.body;
        assert!(
            instance.starts_with("RangeError: WebAssembly.Instance: too many"),
            "{instance}"
        );
        assert_eq!(nano.get("wasm.example", "/").await.body, "ok hostile");
    });
}

/// A 50 MiB exception message and a console flood: the response and the log get a few KiB, the
/// rest is cut and counted (before: a 52 MB response, 100 MiB of log).
#[test]
fn huge_messages_and_console_floods_are_cut() {
    let nano = Nano::start(json!({ "apps": [
        app("loud.example", json!({ "workers": 1, "cpu_ms": 5000 })),
    ]}));
    block_on(async {
        let reply = nano.get("loud.example", "/huge-throw").await;
        assert_eq!(reply.header("x-nano-error"), Some("handler-exception"));
        assert!(reply.body.len() < 16 * 1024, "{} bytes", reply.body.len());
        assert!(
            reply.body.contains("more characters cut"),
            "{}",
            &reply.body[..200]
        );
        let reply = nano.get("loud.example", "/log-flood").await;
        assert_eq!(reply.body, "logged");
        nano.log.wait_for("the dropped lines", |t| {
            t.contains("console output dropped")
        });
        let metrics = nano.get("127.0.0.1", "/_admin/metrics").await.body;
        assert!(
            metrics.contains("nano_console_dropped_total{hostname=\"loud.example\"}"),
            "{metrics}"
        );
    });
    // 64 lines of 1 MiB: each cut to 16 KiB, and the request's 256 KiB cap drops the rest.
    assert!(
        nano.log.text().len() < 1024 * 1024,
        "{} bytes of log",
        nano.log.text().len()
    );
}

/// Random values at module top level are refused (they would be one constant for every isolate
/// and restart); in a handler they work. HMAC key lengths are validated; a stream that fails
/// before its first byte is a 500, not a 200. A global prototype chain replaced by a throwing
/// proxy breaks only the app's own lookups.
#[test]
fn top_level_randomness_and_smaller_findings() {
    let nano = Nano::start(json!({ "apps": [app("misc.example", json!({}))] }));
    block_on(async {
        let top = nano.get("misc.example", "/top-level-random").await.body;
        assert!(
            top.starts_with("refused: Disallowed operation called within global scope"),
            "{top}"
        );
        let a = nano.get("misc.example", "/random-in-handler").await.body;
        let b = nano.get("misc.example", "/random-in-handler").await.body;
        assert!(a.len() == 36 && a != b, "{a} {b}");
        let hmac = nano.get("misc.example", "/hmac-length").await.body;
        assert!(
            hmac.starts_with("OperationError: crypto.subtle.generateKey: an HMAC key length"),
            "{hmac}"
        );
        let stream = nano.get("misc.example", "/stream-fails-first").await;
        assert_eq!(
            (stream.status, stream.header("x-nano-error")),
            (500, Some("handler-exception"))
        );
        assert!(stream.body.contains("no first chunk"), "{}", stream.body);
        // A proxy whose traps throw, put in the global's prototype chain: the app's lookups
        // through it throw, the request still answers, and the next context is whole.
        let trapped = nano.get("misc.example", "/global-chain-trap").await;
        assert_eq!(
            (trapped.status, trapped.body.as_str()),
            (200, "returned false, Error: has trap, Error: has trap")
        );
        assert_eq!(nano.get("misc.example", "/").await.body, "ok hostile");
    });
}

/// An import through a symbolic link that points outside the app's folder is refused, by the
/// server and by `nano check` (before: the outside file was loaded); `nano check` also verifies
/// slivers (before: a flipped byte passed).
#[test]
fn symlinks_out_of_the_app_folder_and_corrupt_slivers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(
        app.join("app.js"),
        "import secret from './link.js'; export default { fetch() { return new Response(String(secret)); } };",
    )
    .unwrap();
    std::fs::write(dir.path().join("outside.js"), "export default 'outside';").unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside.js"), app.join("link.js")).unwrap();
    let hello = nano_tests::fixtures().join("hello/app.js");
    let sliver = dir.path().join("hello.sliver");
    let built = nano_tests::run_nano(&[
        "sliver",
        "build",
        hello.to_str().unwrap(),
        "-o",
        sliver.to_str().unwrap(),
    ]);
    assert!(built.status.success(), "{built:?}");
    let mut bytes = std::fs::read(&sliver).unwrap();
    let last = bytes.len() - 5;
    bytes[last] ^= 0xff;
    std::fs::write(&sliver, bytes).unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({ "apps": [
            { "hostname": "link.example", "entrypoint": app.join("app.js") },
            { "hostname": "flipped.example", "sliver": sliver },
        ]})
        .to_string(),
    )
    .unwrap();
    let check = nano_tests::run_nano(&["check", "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("link.example") && stderr.contains("symbolic link"),
        "{stderr}"
    );
    assert!(
        stderr.contains("flipped.example") && stderr.contains("corrupted"),
        "{stderr}"
    );

    let nano = Nano::start(json!({ "apps": [
        { "hostname": "link.example", "entrypoint": app.join("app.js").to_str().unwrap() },
    ]}));
    block_on(async {
        let reply = nano.get("link.example", "/").await;
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert!(
            reply.body.contains("outside the app's folder"),
            "{}",
            reply.body
        );
    });
}

/// A client that never reads a streamed response: the app's stream is pulled only as far as the
/// bounded channel (and the socket's buffers) take, then waits (before: the node buffered without
/// limit, outside memory_mb).
#[test]
fn a_client_that_never_reads_holds_back_the_stream() {
    let nano = Nano::start(json!({ "apps": [{
        "hostname": "hose.example", "entrypoint": "hostile/app.js", "context_reset": false,
        "limits": { "workers": 1, "timeout_secs": 120 }
    }]}));
    let mut reader = TcpStream::connect(nano.addr).unwrap();
    reader
        .write_all(b"GET /firehose HTTP/1.1\r\nHost: hose.example\r\n\r\n")
        .unwrap();
    // Never read: wait until the app stops being pulled, then check how far it got.
    block_on(async {
        let pulled = || async {
            nano.get("hose.example", "/pulled")
                .await
                .body
                .parse::<u64>()
                .unwrap()
        };
        let deadline = std::time::Instant::now() + PATIENCE;
        let mut last = pulled().await;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = pulled().await;
            assert!(
                now < 1000,
                "{now} chunks of 64 KiB pulled for a client that reads nothing"
            );
            if now == last && now > 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the stream never stopped: {now}"
            );
            last = now;
        }
    });
    // Reading resumes the stream.
    let before: u64 = block_on(async {
        nano.get("hose.example", "/pulled")
            .await
            .body
            .parse()
            .unwrap()
    });
    let mut buf = vec![0; 1 << 20];
    let mut read = 0;
    while read < 8 << 20 {
        read += reader.read(&mut buf).unwrap();
    }
    block_on(async {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let now: u64 = nano
                .get("hose.example", "/pulled")
                .await
                .body
                .parse()
                .unwrap();
            if now > before {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "reading did not resume the stream"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// What a request opens is released when it ends: 300 requests, each opening a compression
/// stream, a streaming TextDecoder and a WebAssembly memory and leaving a timer, all succeed on
/// one worker (a leak would run into the isolate's bounds: 64 codecs, 256 memories).
#[test]
fn per_request_resources_do_not_leak() {
    let nano = Nano::start(json!({ "apps": [app("res.example", json!({ "workers": 1 }))] }));
    block_on(async {
        for i in 0..300 {
            let reply = nano.get("res.example", "/resources").await;
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (200, "ok 65536"),
                "request {i}"
            );
        }
    });
}
