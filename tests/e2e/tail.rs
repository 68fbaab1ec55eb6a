//! The live tail of a standalone node (issue 16): `/_admin/tail` streams each request's event
//! (outcome, status, console lines, the exception's stack) as newline-delimited JSON, filtered
//! on the node; a tail that does not read loses events (and says how many) instead of slowing
//! the app; each app's tail sees only its own events; secrets stay out.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use nano_tests::{Nano, PATIENCE, block_on};
use serde_json::{Value, json};

fn app(hostname: &str) -> Value {
    json!({ "hostname": hostname, "entrypoint": "tail/app.js",
            "limits": { "workers": 1, "cpu_ms": 50 }, "env": { "SECRET": "hunter2" } })
}

/// An open `/_admin/tail` stream.
struct Tail {
    body: hyper::body::Incoming,
    buffer: Vec<u8>,
    _sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Tail {
    /// Opens a tail with `query` and reads its first line (the app it tails).
    async fn open(nano: &Nano, query: &str) -> Self {
        let stream = tokio::net::TcpStream::connect(nano.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let request = Request::get(format!("/_admin/tail?{query}"))
            .header("host", "127.0.0.1")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200, "tail {query}");
        let mut tail = Self {
            body: response.into_body(),
            buffer: Vec::new(),
            _sender: sender,
        };
        assert!(tail.next().await.get("tailing").is_some());
        tail
    }

    /// The next line, as JSON.
    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return serde_json::from_slice(&line).expect("a JSON line");
            }
            let frame = tokio::time::timeout(PATIENCE, self.body.frame())
                .await
                .expect("a tail line within PATIENCE")
                .expect("the tail is still open")
                .expect("a body frame");
            if let Ok(data) = frame.into_data() {
                self.buffer.extend_from_slice(&data);
            }
        }
    }

    /// Every line until the stream ends.
    async fn rest(mut self) -> Vec<Value> {
        let mut lines = Vec::new();
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                lines.push(serde_json::from_slice(&line).expect("a JSON line"));
                continue;
            }
            match tokio::time::timeout(PATIENCE, self.body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Ok(_) => return lines,
                Err(_) => panic!("the tail never ended: {lines:?}"),
            }
        }
    }
}

#[test]
fn a_tail_sees_each_request_with_its_outcome_console_lines_and_stack() {
    let nano = Nano::start(json!({ "apps": [app("t.test")] }));
    block_on(async {
        let mut tail = Tail::open(&nano, "hostname=t.test").await;
        for path in ["/ok", "/throw", "/spin", "/flood", "/missing"] {
            nano.get("t.test", path).await;
        }
        let ok = tail.next().await;
        assert_eq!(
            (
                ok["url"].as_str(),
                ok["status"].as_u64(),
                ok["outcome"].as_str()
            ),
            (Some("http://t.test/ok"), Some(200), Some("ok"))
        );
        assert_eq!(ok["method"], "GET");
        assert_eq!(
            ok["logs"],
            json!([{ "level": "log", "text": "hello from /ok { n: 1 }" }, { "level": "warn", "text": "careful" }])
        );
        assert!(
            ok["cpu_ms"].as_f64().unwrap() > 0.0 && ok["wall_ms"].as_f64().unwrap() > 0.0,
            "{ok}"
        );

        let thrown = tail.next().await;
        assert_eq!(
            (thrown["status"].as_u64(), thrown["outcome"].as_str()),
            (Some(500), Some("exception"))
        );
        assert_eq!(thrown["exception"]["message"], "Error: the handler broke");
        assert!(
            thrown["exception"]["stack"]
                .as_str()
                .unwrap()
                .contains("at Object.fetch (app.js:"),
            "{thrown}"
        );
        assert_eq!(
            thrown["logs"],
            json!([{ "level": "error", "text": "about to throw" }])
        );

        let spun = tail.next().await;
        assert_eq!(
            (
                spun["url"].as_str(),
                spun["status"].as_u64(),
                spun["outcome"].as_str()
            ),
            (Some("http://t.test/spin"), Some(503), Some("cpu-limit"))
        );
        // Where the JS was when the limit ended it.
        let stack = spun["exception"]["stack"].as_str().unwrap_or_default();
        assert!(
            stack.contains("CPU time limit") && stack.contains("at fetch (app.js:"),
            "{spun}"
        );

        let flooded = tail.next().await;
        assert_eq!(flooded["logs"].as_array().unwrap().len(), 32);
        assert_eq!(flooded["logs_dropped"], 68);

        let missing = tail.next().await;
        assert_eq!(
            (missing["status"].as_u64(), missing["outcome"].as_str()),
            (Some(404), Some("ok"))
        );
        // The app's env is in no event (the fixture only says whether it is set), nor are
        // headers unless asked for.
        for event in [&ok, &thrown, &spun, &flooded, &missing] {
            assert!(!event.to_string().contains("hunter2"), "{event}");
            assert!(event.get("headers").is_none(), "{event}");
        }
        // Asked for: credentials masked.
        let mut with_headers = Tail::open(&nano, "hostname=t.test&headers=1").await;
        let request = nano_tests::request("GET", "t.test", "/ok")
            .header("authorization", "Bearer hunter2")
            .header("cookie", "session=hunter2")
            .header("x-trace", "abc")
            .body(Full::new(Bytes::new()))
            .unwrap();
        nano.send(request).await;
        let seen = with_headers.next().await;
        assert_eq!(seen["headers"]["authorization"], "***");
        assert_eq!(seen["headers"]["cookie"], "***");
        assert_eq!(seen["headers"]["x-trace"], "abc");
        assert!(!seen.to_string().contains("hunter2"), "{seen}");
    });
}

#[test]
fn a_memory_kill_shows_where_the_js_was() {
    // A CPU budget the bombs cannot reach first: the memory limit ends them.
    let mut config = app("m.test");
    config["limits"] = json!({ "workers": 1, "cpu_ms": 5000, "memory_mb": 32 });
    let nano = Nano::start(json!({ "apps": [config] }));
    block_on(async {
        let mut tail = Tail::open(&nano, "hostname=m.test").await;
        // Buffers are refused by the counting allocator; arrays reach V8's heap limit.
        for (path, function) in [("/buffers", "keepBuffers"), ("/heap", "keepArrays")] {
            let reply = nano.get("m.test", path).await;
            assert_eq!(
                (reply.status, reply.header("x-nano-error")),
                (503, Some("memory-limit")),
                "{path}: {}",
                reply.body
            );
            let event = tail.next().await;
            assert_eq!(event["outcome"], "memory-limit", "{event}");
            let stack = event["exception"]["stack"].as_str().unwrap_or_default();
            assert!(
                stack.starts_with("Error: the isolate went past its memory limit (memory_mb)")
                    && stack.contains(&format!("at {function} (app.js:"))
                    && stack.contains("at fetch (app.js:"),
                "{path}: {event}"
            );
            // The worker serves on (its isolate replaced).
            assert_eq!(nano.get("m.test", "/ok").await.status, 200, "{path}");
            assert_eq!(tail.next().await["outcome"], "ok");
        }
    });
}

#[test]
fn filters_select_what_a_tail_shows_and_a_tail_ends_with_the_node() {
    let mut nano = Nano::start(json!({ "apps": [app("t.test")] }));
    let seen: Vec<Vec<String>> = block_on(async {
        let errors = Tail::open(&nano, "hostname=t.test&status=5xx").await;
        let prefix = Tail::open(&nano, "hostname=t.test&path_prefix=/fl").await;
        let search = Tail::open(&nano, "hostname=t.test&search=careful").await;
        let posts = Tail::open(&nano, "hostname=t.test&method=post").await;
        let none = Tail::open(&nano, "hostname=t.test&sample=0").await;
        let mut all = Tail::open(&nano, "hostname=t.test").await;
        for path in ["/ok", "/throw", "/flood", "/missing"] {
            nano.get("t.test", path).await;
        }
        // Everything has been published once the unfiltered tail saw the last request.
        for _ in 0..4 {
            all.next().await;
        }
        // Shutting down ends every tail with a last line.
        assert!(nano.terminate().success());
        let mut seen = Vec::new();
        for tail in [errors, prefix, search, posts, none] {
            let lines = tail.rest().await;
            assert_eq!(
                lines.last(),
                Some(&json!({ "end": "the node is shutting down" }))
            );
            seen.push(
                lines
                    .iter()
                    .filter_map(|l| l["url"].as_str().map(str::to_owned))
                    .collect(),
            );
        }
        seen
    });
    let urls = |paths: &[&str]| -> Vec<String> {
        paths.iter().map(|p| format!("http://t.test{p}")).collect()
    };
    assert_eq!(seen[0], urls(&["/throw"]), "status=5xx");
    assert_eq!(seen[1], urls(&["/flood"]), "path_prefix=/fl");
    assert_eq!(seen[2], urls(&["/ok"]), "search=careful");
    assert!(seen[3].is_empty(), "method=post");
    assert!(seen[4].is_empty(), "sample=0");
}

#[test]
fn a_tail_that_does_not_read_loses_events_and_the_app_keeps_serving() {
    let nano = Nano::start(json!({ "apps": [app("t.test")] }));
    block_on(async {
        let mut slow = Tail::open(&nano, "hostname=t.test").await;
        // Far more events (32 KB each) than the tail's buffers hold, while it reads nothing.
        for _ in 0..1500 {
            assert_eq!(nano.get("t.test", "/big").await.status, 200);
        }
        let mut dropped = 0;
        let mut events = 0;
        while events + dropped < 1500 {
            let line = slow.next().await;
            match line["dropped"].as_u64() {
                Some(lost) => dropped += lost,
                None => events += 1,
            }
        }
        assert!(dropped > 0, "nothing was dropped: {events} events");
        assert_eq!(events + dropped, 1500);
    });
}

#[test]
fn each_app_has_its_own_tail_and_wrong_queries_are_refused() {
    let nano = Nano::start(json!({ "apps": [app("a.test"), app("b.test")] }));
    block_on(async {
        let mut a = Tail::open(&nano, "hostname=a.test").await;
        let mut b = Tail::open(&nano, "hostname=B.TEST").await;
        nano.get("a.test", "/ok").await;
        nano.get("b.test", "/missing").await;
        nano.get("a.test", "/missing").await;
        assert_eq!(a.next().await["url"], "http://a.test/ok");
        assert_eq!(a.next().await["url"], "http://a.test/missing");
        assert_eq!(b.next().await["url"], "http://b.test/missing");

        for (query, status, code) in [
            ("", 400, "bad-query"),
            ("hostname=a.test&status=teapot", 400, "bad-query"),
            ("hostname=a.test&sample=2", 400, "bad-query"),
            ("hostname=nobody.test", 404, "not-found"),
        ] {
            let reply = nano
                .get("127.0.0.1", &format!("/_admin/tail?{query}"))
                .await;
            assert_eq!(reply.status, status, "{query}: {}", reply.body);
            assert_eq!(reply.header("x-nano-error"), Some(code), "{query}");
        }
    });
}

/// An accepted WebSocket's events show in the tail: each message and the close, with the
/// console lines the handler wrote, under the upgrade's URL.
#[test]
fn a_tail_sees_websocket_messages_and_closes() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let nano = Nano::start(json!({ "apps": [{
        "hostname": "ws.test", "entrypoint": "websocket/app.js", "limits": { "workers": 1 }
    }] }));
    block_on(async {
        let mut tail = Tail::open(&nano, "hostname=ws.test").await;
        let mut socket = crate::websocket::connect(nano.addr, "ws.test", "/echo").await;
        socket.send(Message::text("hi")).await.unwrap();
        crate::websocket::next_message(&mut socket).await;
        socket.send(Message::text("close:4000:bye")).await.unwrap();
        assert_eq!(crate::websocket::closed_with(&mut socket).await.0, 4000);
        let message = tail.next().await;
        assert_eq!(
            (
                message["websocket"].as_str(),
                message["url"].as_str(),
                message["status"].as_u64()
            ),
            (Some("message"), Some("http://ws.test/echo"), Some(101))
        );
        assert_eq!(tail.next().await["websocket"], "message");
        let close = tail.next().await;
        assert_eq!(close["websocket"], "close");
        assert_eq!(close["logs"][0]["text"], "closed 4000 bye true");
    });
}
