//! The HTTP front under hostile clients: slowloris, oversized parts, ambiguous framing,
//! disconnects; and h2c.

use std::io::{Read, Write};
use std::net::TcpStream;

use nano_tests::{Nano, block_on, body, request};
use serde_json::json;

fn node() -> Nano {
    Nano::start(json!({
        "server": { "header_timeout_secs": 1, "max_body_bytes": 1024 },
        "apps": [
            { "hostname": "echo.example", "entrypoint": "echo/app.js" },
            { "hostname": "slow.example", "entrypoint": "slow/app.js",
              "limits": { "workers": 1, "queue_per_worker": 1 } }
        ]
    }))
}

/// Sends raw bytes and reads whatever comes back until the server closes or `PATIENCE` passes.
fn raw(nano: &Nano, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(nano.addr).unwrap();
    stream.set_read_timeout(Some(nano_tests::PATIENCE)).unwrap();
    stream.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                // A complete response to a request that closes the connection ends with EOF; one
                // that keeps it open is complete once its body arrived.
                if response_complete(&out) {
                    break;
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(err) => panic!("reading from nano: {err}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn response_complete(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some((head, rest)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse::<usize>().ok());
    length.is_some_and(|n| rest.len() >= n)
}

fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn slowloris_connection_is_closed_after_the_header_timeout() {
    let nano = node();
    let mut stream = TcpStream::connect(nano.addr).unwrap();
    stream.set_read_timeout(Some(nano_tests::PATIENCE)).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: echo.example\r\nX-Slow: ")
        .unwrap();
    // Never finish the headers: the server must hang up on its own, and not before
    // header_timeout_secs (1 s here; a read that outlasts PATIENCE fails as a timeout).
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let closed = stream.read_to_end(&mut buf);
    assert!(
        closed.is_ok() || closed.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the half-sent request was not closed by the server"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "closed before header_timeout_secs"
    );
    // The node still serves others.
    let reply = block_on(nano.get("echo.example", "/"));
    assert_eq!(reply.status, 201);
}

#[test]
fn oversized_parts_are_refused_before_any_js_runs() {
    let nano = node();
    let long = "a".repeat(9000);
    let response = raw(
        &nano,
        format!("GET /{long} HTTP/1.1\r\nHost: echo.example\r\n\r\n").as_bytes(),
    );
    assert_eq!(status_of(&response), 414, "{response}");
    assert!(
        response.contains("x-nano-error: uri-too-long"),
        "{response}"
    );

    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let response = raw(
        &nano,
        format!("GET / HTTP/1.1\r\nHost: echo.example\r\n{many}\r\n").as_bytes(),
    );
    assert_eq!(status_of(&response), 431, "{response}");

    let huge = "v".repeat(70 * 1024);
    let response = raw(
        &nano,
        format!("GET / HTTP/1.1\r\nHost: echo.example\r\nX-Big: {huge}\r\n\r\n").as_bytes(),
    );
    assert_eq!(status_of(&response), 431, "{response}");

    let response = raw(
        &nano,
        b"POST / HTTP/1.1\r\nHost: echo.example\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&response), 413, "{response}");
    assert!(
        response.contains("x-nano-error: body-too-large"),
        "{response}"
    );

    let chunk = "x".repeat(800);
    let chunked = format!(
        "POST / HTTP/1.1\r\nHost: echo.example\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n"
    );
    let response = raw(&nano, chunked.as_bytes());
    assert_eq!(status_of(&response), 413, "{response}");
    let isolates = block_on(nano.get("127.0.0.1", "/_admin/isolates")).json();
    let served: u64 = isolates["isolates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["requests_served"].as_u64().unwrap())
        .sum();
    assert_eq!(served, 0, "no request reached JS");
}

#[test]
fn ambiguous_framing_cannot_smuggle_a_request() {
    let nano = node();
    // Content-Length and Transfer-Encoding together, either order: the body is read as chunked
    // (Transfer-Encoding wins), and the connection is closed after the response (RFC 9112 6.3),
    // so the request hidden behind the body is never served.
    for (first, second) in [
        ("Content-Length: 4", "Transfer-Encoding: chunked"),
        ("Transfer-Encoding: chunked", "Content-Length: 4"),
    ] {
        let smuggle = format!(
            "POST / HTTP/1.1\r\nHost: echo.example\r\n{first}\r\n{second}\r\n\r\n\
             0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: echo.example\r\n\r\n"
        );
        let response = raw_to_close(&nano, smuggle.as_bytes());
        assert!(
            response.to_ascii_lowercase().contains("connection: close"),
            "{response}"
        );
        assert_eq!(
            response.matches("HTTP/1.1 ").count(),
            1,
            "one response only: {response}"
        );
        assert!(!response.contains("/smuggled"), "{response}");
    }
    // Two different lengths: 400.
    let response = raw(
        &nano,
        b"POST / HTTP/1.1\r\nHost: echo.example\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    );
    assert_eq!(status_of(&response), 400, "{response}");
    assert!(
        !nano.log.text().contains("smuggled"),
        "no smuggled request reached JS"
    );
}

/// Like `raw`, but reads until the server closes the connection.
fn raw_to_close(nano: &Nano, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(nano.addr).unwrap();
    stream.set_read_timeout(Some(nano_tests::PATIENCE)).unwrap();
    stream.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_client_that_disconnects_frees_its_slot() {
    let nano = node();
    {
        let mut stream = TcpStream::connect(nano.addr).unwrap();
        stream
            .write_all(b"GET /?ms=600000 HTTP/1.1\r\nHost: slow.example\r\n\r\n")
            .unwrap();
        nano.log.wait_for_count("holding for 600000 ms", 1);
    } // dropped: the client hangs up while its request waits on a timer
    nano.log
        .wait_for("the cancel", |t| t.contains("client disconnected"));
    let reply = block_on(nano.get("slow.example", "/?ms=1"));
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "held 1 ms"),
        "the only slot is free again"
    );
}

#[test]
fn h2c_prior_knowledge_is_served() {
    let nano = node();
    block_on(async {
        let stream = tokio::net::TcpStream::connect(nano.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = request("POST", "echo.example", "http://echo.example/h2")
            .version(hyper::Version::HTTP_2)
            .body(body("over h2"))
            .unwrap();
        let response = sender.send_request(req).await.unwrap();
        assert_eq!(response.status(), 201);
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let echoed: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(echoed["body"], "over h2");
        assert_eq!(echoed["url"], "http://echo.example/h2");
    });
}

/// The README's refusals for requests the front cannot route or read: no `Host` (HTTP/1.0 may
/// omit it) is 400 `missing-host`; a body whose framing breaks is 400 `bad-request-body`.
#[test]
fn requests_without_a_host_or_with_broken_bodies_are_refused_with_their_codes() {
    let nano = node();
    let response = raw(&nano, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(status_of(&response), 400, "{response}");
    assert!(
        response.contains("x-nano-error: missing-host"),
        "{response}"
    );

    // A chunk size that is not hexadecimal, after a good chunk.
    let response = raw(
        &nano,
        b"POST / HTTP/1.1\r\nHost: echo.example\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\nzz\r\nnot a chunk\r\n0\r\n\r\n",
    );
    assert_eq!(status_of(&response), 400, "{response}");
    assert!(
        response.contains("x-nano-error: bad-request-body"),
        "{response}"
    );
    // The same body, framed right, reaches the app.
    let response = raw(
        &nano,
        b"POST / HTTP/1.1\r\nHost: echo.example\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          3\r\nabc\r\n0\r\n\r\n",
    );
    assert_eq!(status_of(&response), 201, "{response}");
    assert!(response.contains("\"body\":\"abc\""), "{response}");
}
