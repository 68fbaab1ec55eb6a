//! Graceful shutdown: SIGTERM or SIGINT stops accepting, readiness turns 503, in-flight requests
//! finish within `shutdown_grace_secs` (and are cut when it is spent), the process exits 0.
//!
//! The request in flight waits on a subrequest to an upstream the test holds: it ends when the
//! test says so, never because a timer ran out, so no machine is too slow for these tests.

use std::net::SocketAddr;

use nano_tests::{Nano, PATIENCE, log_addr};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// An upstream that takes one request, says so on `arrived`, and answers `{}` once `release`
/// fires (or never, if it is dropped).
struct Held {
    addr: SocketAddr,
    arrived: oneshot::Receiver<()>,
    release: oneshot::Sender<()>,
}

async fn held_upstream() -> Held {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (arrived_tx, arrived) = oneshot::channel();
    let (release, release_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the subrequest was cut before its head arrived");
            head.extend_from_slice(&buf[..n]);
        }
        let _ = arrived_tx.send(());
        if release_rx.await.is_ok() {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
                .await;
        }
        // Held open until the test's runtime ends.
        std::future::pending::<()>().await;
    });
    Held {
        addr,
        arrived,
        release,
    }
}

fn node(grace_secs: u64) -> Nano {
    Nano::start(json!({
        "server": { "shutdown_grace_secs": grace_secs },
        "admin": { "listen": "127.0.0.1:0" },
        "apps": [{ "hostname": "client.example", "entrypoint": "fetch-client/app.js",
                   "fetch": { "allow_private_networks": true } }]
    }))
}

/// Sends a request whose answer depends on `upstream`; the task yields the status, or the error
/// if the connection is closed without one.
fn in_flight(
    nano: &Nano,
    upstream: SocketAddr,
) -> tokio::task::JoinHandle<Result<(u16, String), String>> {
    let addr = nano.addr;
    tokio::spawn(async move {
        use http_body_util::BodyExt;
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let request = nano_tests::request(
            "GET",
            "client.example",
            &format!("/get?url=http://{upstream}/"),
        )
        .body(nano_tests::body(""))
        .unwrap();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok((
            status,
            String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        ))
    })
}

async fn readiness(admin: SocketAddr) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(admin)
        .await
        .unwrap_or_else(|e| panic!("the admin listener is gone: {e}"));
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = nano_tests::request("GET", "127.0.0.1", "/_admin/ready")
        .body(nano_tests::body(""))
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .unwrap_or_else(|e| panic!("the admin listener closed the connection: {e}"));
    let status = response.status().as_u16();
    use http_body_util::BodyExt;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

/// A request in flight on `nano`, held by an upstream until `release` fires: it has reached the
/// upstream when this returns.
struct Holding {
    runtime: tokio::runtime::Runtime,
    request: tokio::task::JoinHandle<Result<(u16, String), String>>,
    release: oneshot::Sender<()>,
}

fn hold_a_request(nano: &Nano) -> Holding {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (upstream, request) = runtime.block_on(async {
        let upstream = held_upstream().await;
        let request = in_flight(nano, upstream.addr);
        (upstream, request)
    });
    let Held {
        arrived, release, ..
    } = upstream;
    runtime.block_on(async {
        tokio::time::timeout(PATIENCE, arrived)
            .await
            .expect("the subrequest reached the upstream")
            .unwrap();
    });
    Holding {
        runtime,
        request,
        release,
    }
}

/// Drains on `signal`: once the node has stopped accepting, `/_admin/ready` (on its own
/// listener, which outlives the drain) answers 503 with `"draining": true`; the request in
/// flight still gets its answer; then the process exits 0.
fn drains_on(signal: i32, name: &str) {
    let mut nano = node(30);
    let admin = log_addr(&nano.log, "admin_addr");
    let Holding {
        runtime,
        request,
        release,
    } = hold_a_request(&nano);
    assert_eq!(runtime.block_on(readiness(admin)).0, 200);

    nano.signal(signal);
    nano.log.wait_for("the drain", |t| {
        t.contains(&format!("signal={name}")) && t.contains("stopped accepting")
    });
    runtime.block_on(async {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let (status, body) = readiness(admin).await;
            if status == 503 {
                assert_eq!(body["draining"], true, "{body}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "readiness never turned 503: {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    });
    // The request in flight finishes after the signal, on the old connection.
    release.send(()).unwrap();
    let answered = runtime.block_on(async {
        tokio::time::timeout(PATIENCE, request)
            .await
            .expect("the client got an answer or a closed connection")
            .unwrap()
    });
    let (status, body) = answered.expect("the request in flight was answered");
    assert_eq!(status, 200, "{body}");
    let status = nano.wait_exit();
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        nano.log.text()
    );
    let log = nano.log.text();
    assert!(
        log.contains("all connections drained") && log.contains("stopped"),
        "{log}"
    );
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_zero() {
    drains_on(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_drains_like_sigterm() {
    drains_on(libc::SIGINT, "SIGINT");
}

/// A request still running when `shutdown_grace_secs` is spent is cut (its connection closed,
/// no answer), and the node still exits 0, saying so.
#[test]
fn the_grace_period_cuts_what_is_still_running() {
    let mut nano = node(1);
    let Holding {
        runtime,
        request,
        release,
    } = hold_a_request(&nano);
    nano.signal(libc::SIGTERM);
    let status = nano.wait_exit();
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        nano.log.text()
    );
    let answered = runtime.block_on(async {
        tokio::time::timeout(PATIENCE, request)
            .await
            .expect("the client got an answer or a closed connection")
            .unwrap()
    });
    assert!(
        answered.is_err(),
        "the request outlived the grace period: {answered:?}"
    );
    let log = nano.log.text();
    assert!(
        log.contains("grace period over") && log.contains("stopped"),
        "{log}"
    );
    drop(release);
}
