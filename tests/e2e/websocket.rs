//! WebSockets (issue 15), over real sockets with a tokio-tungstenite client: echo and close
//! codes, a chat room between two clients, the bounds (message size, sockets per app, CPU per
//! event, a client that never reads, a thousand idle sockets), sockets closed by a reload and
//! by shutdown, and the API's answers to wrong calls, which are workerd's (npm `workerd`
//! 1.20261117.1, compatibilityDate "2026-11-01", same fixture: tests/fixtures/websocket/app.js).

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use nano_tests::{Nano, PATIENCE, block_on, eventually, fixtures, sample};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{WebSocketStream, client_async};

type Socket = WebSocketStream<TcpStream>;

fn app(hostname: &str, extra: Value) -> Value {
    let mut app = json!({ "hostname": hostname, "entrypoint": "websocket/app.js", "limits": { "workers": 1 } });
    for (key, value) in extra.as_object().unwrap() {
        app[key] = value.clone();
    }
    app
}

/// Opens a WebSocket to `host` + `path` on the node.
pub(crate) async fn connect(addr: SocketAddr, host: &str, path: &str) -> Socket {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (socket, response) = client_async(format!("ws://{host}{path}"), stream)
        .await
        .unwrap_or_else(|err| panic!("upgrade to {host}{path} refused: {err:?}"));
    assert_eq!(response.status(), 101);
    socket
}

/// The next data message (text or binary), failing on anything else.
pub(crate) async fn next_message(socket: &mut Socket) -> Message {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a message within PATIENCE")
            .expect("the socket is open")
            .expect("a valid frame");
        if message.is_text() || message.is_binary() {
            return message;
        }
    }
}

/// Reads until the socket ends (answering the server's close, as a client does); the close
/// frame the server sent (code, reason).
pub(crate) async fn closed_with(socket: &mut Socket) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut got = None;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => panic!("the server never closed the socket"),
            Ok(Some(Ok(Message::Close(frame)))) => {
                got = Some(frame.map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.as_str().to_owned())
                }));
            }
            Ok(Some(Ok(_))) => continue,
            // After the close frame the connection ends (tungstenite reports it as an error
            // or as the end of the stream).
            Ok(Some(Err(_)) | None) => {
                return got.expect("the connection ended without a close frame");
            }
        }
    }
}

async fn metrics(nano: &Nano) -> String {
    nano.get("127.0.0.1", "/_admin/metrics").await.body
}

/// Waits until `series` reads `want` in the node's metrics.
async fn wait_for_metric(nano: &Nano, series: &str, want: f64) {
    eventually(&format!("{series} reading {want}"), || async {
        let text = metrics(nano).await;
        (sample(&text, series) == Some(want))
            .then_some(())
            .ok_or(text)
    })
    .await;
}

#[test]
fn messages_echo_both_ways_and_close_codes_reach_each_side() {
    let nano = Nano::start(json!({ "apps": [app("ws.test", json!({}))] }));
    block_on(async {
        let mut socket = connect(nano.addr, "ws.test", "/echo").await;
        socket.send(Message::text("hi")).await.unwrap();
        assert_eq!(next_message(&mut socket).await, Message::text("echo:hi"));
        let bytes = vec![0u8, 1, 2, 255];
        socket.send(Message::binary(bytes.clone())).await.unwrap();
        assert_eq!(next_message(&mut socket).await, Message::binary(bytes));
        // The app closes with its code and reason.
        socket
            .send(Message::text("close:4000:bye now"))
            .await
            .unwrap();
        assert_eq!(closed_with(&mut socket).await, (4000, "bye now".into()));
        nano.log.wait_for("the app's close event", |t| {
            t.contains("closed 4000 bye now true")
        });

        // The client closes: the app's close event sees its code.
        let mut socket = connect(nano.addr, "ws.test", "/echo").await;
        socket
            .close(Some(CloseFrame {
                code: CloseCode::from(4001),
                reason: "client done".into(),
            }))
            .await
            .unwrap();
        nano.log.wait_for("the client's close", |t| {
            t.contains("closed 4001 client done true")
        });

        wait_for_metric(&nano, r#"nano_websockets_open{hostname="ws.test"}"#, 0.0).await;
        let text = metrics(&nano).await;
        assert_eq!(
            sample(
                &text,
                r#"nano_websocket_messages_total{direction="in",hostname="ws.test"}"#
            ),
            Some(3.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"nano_websocket_messages_total{direction="out",hostname="ws.test"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"nano_websocket_closes_total{code="4000",hostname="ws.test"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"nano_websocket_closes_total{code="4001",hostname="ws.test"}"#
            ),
            Some(1.0)
        );
        nano_tests::check_with_promtool(&text);

        // Upgrades the app does not accept are ordinary responses.
        let refused = client_async(
            "ws://ws.test/reject",
            TcpStream::connect(nano.addr).await.unwrap(),
        )
        .await;
        assert!(
            matches!(refused, Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 403),
            "{refused:?}"
        );
        // A 101 with a WebSocket to a request that is not an upgrade is the app's error.
        let plain = nano.get("ws.test", "/always").await;
        assert_eq!(plain.status, 500, "{}", plain.body);
        assert_eq!(plain.header("x-nano-error"), Some("bad-response"));
        assert!(
            plain.body.contains("not a WebSocket upgrade"),
            "{}",
            plain.body
        );
    });
}

#[test]
fn a_chat_room_relays_between_two_clients() {
    let nano =
        Nano::start(json!({ "apps": [app("room.test", json!({ "context_reset": false }))] }));
    block_on(async {
        let mut alice = connect(nano.addr, "room.test", "/room").await;
        let mut bob = connect(nano.addr, "room.test", "/room").await;
        alice.send(Message::text("hello bob")).await.unwrap();
        assert_eq!(next_message(&mut bob).await, Message::text("hello bob"));
        bob.send(Message::binary(vec![7u8; 3])).await.unwrap();
        assert_eq!(
            next_message(&mut alice).await,
            Message::binary(vec![7u8; 3])
        );
    });
}

#[test]
fn a_message_over_the_limit_closes_the_socket_with_1009() {
    let nano = Nano::start(
        json!({ "apps": [app("ws.test", json!({ "websockets": { "max_message_bytes": 1024 } }))] }),
    );
    block_on(async {
        let mut socket = connect(nano.addr, "ws.test", "/echo").await;
        socket.send(Message::text("x".repeat(1024))).await.unwrap();
        assert_eq!(
            next_message(&mut socket).await,
            Message::text(format!("echo:{}", "x".repeat(1024)))
        );
        socket.send(Message::text("x".repeat(1025))).await.unwrap();
        assert_eq!(closed_with(&mut socket).await.0, 1009);
    });
}

#[test]
fn a_handler_spinning_on_a_message_is_stopped_with_1011_and_its_neighbour_serves() {
    let nano = Nano::start(json!({ "apps": [
        app("ws.test", json!({ "limits": { "workers": 1, "cpu_ms": 50 } })),
        { "hostname": "hello.test", "entrypoint": "hello/app.js", "limits": { "workers": 1 } }
    ] }));
    block_on(async {
        let mut socket = connect(nano.addr, "ws.test", "/echo").await;
        // Each message has its own CPU budget: many small ones are fine.
        for i in 0..20 {
            socket.send(Message::text(format!("m{i}"))).await.unwrap();
            assert_eq!(
                next_message(&mut socket).await,
                Message::text(format!("echo:m{i}"))
            );
        }
        socket.send(Message::text("spin")).await.unwrap();
        assert_eq!(closed_with(&mut socket).await.0, 1011);
        assert_eq!(nano.get("hello.test", "/").await.status, 200);
        // The app itself still accepts sockets.
        let mut again = connect(nano.addr, "ws.test", "/echo").await;
        again.send(Message::text("back")).await.unwrap();
        assert_eq!(next_message(&mut again).await, Message::text("echo:back"));
        let text = metrics(&nano).await;
        assert!(
            sample(
                &text,
                r#"nano_terminations_total{hostname="ws.test",reason="cpu"}"#
            ) >= Some(1.0),
            "{text}"
        );
    });
}

#[test]
fn a_handler_past_the_memory_limit_closes_the_isolates_sockets() {
    let nano = Nano::start(json!({ "apps": [app("ws.test", json!({
        "context_reset": false,
        "limits": { "workers": 1, "memory_mb": 64, "cpu_ms": 5000 }
    }))] }));
    block_on(async {
        let mut bystander = connect(nano.addr, "ws.test", "/echo").await;
        bystander.send(Message::text("hi")).await.unwrap();
        next_message(&mut bystander).await;
        let mut hog = connect(nano.addr, "ws.test", "/echo").await;
        hog.send(Message::text("hog")).await.unwrap();
        // The isolate is replaced: every socket it held goes (1011 for the one whose handler
        // was stopped, 1001 or 1011 for the others), none is left hanging.
        assert_eq!(closed_with(&mut hog).await.0, 1011);
        let code = closed_with(&mut bystander).await.0;
        assert!(code == 1001 || code == 1011, "{code}");
        let mut fresh = connect(nano.addr, "ws.test", "/echo").await;
        fresh.send(Message::text("after")).await.unwrap();
        assert_eq!(next_message(&mut fresh).await, Message::text("echo:after"));
    });
}

#[test]
fn upgrades_past_max_sockets_get_503() {
    let nano = Nano::start(
        json!({ "apps": [app("ws.test", json!({ "websockets": { "max_sockets": 2 } }))] }),
    );
    block_on(async {
        let mut first = connect(nano.addr, "ws.test", "/echo").await;
        let _second = connect(nano.addr, "ws.test", "/echo").await;
        let refused = client_async(
            "ws://ws.test/echo",
            TcpStream::connect(nano.addr).await.unwrap(),
        )
        .await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 503);
                assert_eq!(response.headers()["x-nano-error"], "too-many-websockets");
                let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned();
                assert!(body.contains("websockets.max_sockets"), "{body}");
            }
            other => panic!("a third socket was not refused: {other:?}"),
        }
        // Ordinary requests still get through, and a closed socket frees its place.
        assert_eq!(nano.get("ws.test", "/plain").await.body, "plain");
        first.close(None).await.unwrap();
        eventually("the closed socket's place freed", || async {
            let stream = TcpStream::connect(nano.addr).await.unwrap();
            let attempt = client_async("ws://ws.test/echo", stream).await;
            attempt.map(drop).map_err(|err| err.to_string())
        })
        .await;
    });
}

#[test]
fn a_client_that_never_reads_cannot_grow_the_node() {
    let nano = Nano::start(
        json!({ "apps": [app("ws.test", json!({ "websockets": { "idle_timeout_secs": 2 } }))] }),
    );
    block_on(async {
        let mut socket = connect(nano.addr, "ws.test", "/echo").await;
        socket.send(Message::text("hi")).await.unwrap();
        assert_eq!(next_message(&mut socket).await, Message::text("echo:hi"));
        let before = nano.rss_bytes();
        // 256 MiB of messages to a client that reads none of them.
        socket.send(Message::text("flood:4096")).await.unwrap();
        // The node closes the socket (the client does not read) and forgets it.
        wait_for_metric(&nano, r#"nano_websockets_open{hostname="ws.test"}"#, 0.0).await;
        let grown = nano.rss_bytes().saturating_sub(before);
        assert!(grown < 64 << 20, "RSS grew by {} MiB", grown >> 20);
        nano.log.wait_for("the overflow", |t| {
            t.contains("does not read what the app sends")
        });
        let mut fresh = connect(nano.addr, "ws.test", "/echo").await;
        fresh.send(Message::text("still here")).await.unwrap();
        assert_eq!(
            next_message(&mut fresh).await,
            Message::text("echo:still here")
        );
        drop(socket);
    });
}

#[test]
fn a_thousand_idle_sockets_need_no_thread_each() {
    // With context reset each socket would keep its request's context (about 0.25 MB of heap):
    // an app that holds many sockets runs with Workers semantics.
    let nano = Nano::start(json!({ "apps": [app("ws.test", json!({
        "context_reset": false,
        "limits": { "workers": 1, "queue_per_worker": 2000 },
        "websockets": { "max_sockets": 1000 }
    }))] }));
    block_on(async {
        let mut first = connect(nano.addr, "ws.test", "/echo").await;
        first.send(Message::text("warm")).await.unwrap();
        next_message(&mut first).await;
        let (rss_before, threads_before) = (nano.rss_bytes(), thread_count(&nano));
        let mut sockets = vec![first];
        for _ in 1..1000 {
            sockets.push(connect(nano.addr, "ws.test", "/echo").await);
        }
        wait_for_metric(&nano, r#"nano_websockets_open{hostname="ws.test"}"#, 1000.0).await;
        let per_socket = nano.rss_bytes().saturating_sub(rss_before) / 1000;
        let threads = thread_count(&nano);
        assert!(
            threads <= threads_before + 2,
            "threads {threads_before} -> {threads}"
        );
        assert!(
            per_socket < 64 * 1024,
            "{per_socket} bytes of RSS per idle socket"
        );
        // Every one of them still answers.
        for (i, socket) in sockets.iter_mut().enumerate().step_by(97) {
            socket.send(Message::text(format!("s{i}"))).await.unwrap();
            assert_eq!(
                next_message(socket).await,
                Message::text(format!("echo:s{i}"))
            );
        }
    });
}

fn thread_count(nano: &Nano) -> usize {
    std::fs::read_dir(format!("/proc/{}/task", nano.pid()))
        .unwrap()
        .count()
}

#[test]
fn a_reload_closes_open_sockets_with_1001() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nano.json");
    let write = |greeting: &str| {
        let mut app = app("ws.test", json!({ "env": { "GREETING": greeting } }));
        app["entrypoint"] = fixtures()
            .join("websocket/app.js")
            .to_string_lossy()
            .into_owned()
            .into();
        let text =
            json!({ "server": { "host": "127.0.0.1", "port": 0 }, "apps": [app] }).to_string();
        std::fs::write(config.with_extension("tmp"), text).unwrap();
        std::fs::rename(config.with_extension("tmp"), &config).unwrap();
    };
    write("v1");
    let nano = Nano::start_file(&config, dir);
    block_on(async {
        let mut socket = connect(nano.addr, "ws.test", "/echo").await;
        socket.send(Message::text("hi")).await.unwrap();
        next_message(&mut socket).await;
        write("v2");
        let (code, reason) = closed_with(&mut socket).await;
        assert_eq!(code, 1001, "{reason}");
        // The new version accepts sockets.
        let mut fresh = connect(nano.addr, "ws.test", "/echo").await;
        fresh.send(Message::text("v2")).await.unwrap();
        assert_eq!(next_message(&mut fresh).await, Message::text("echo:v2"));
    });
}

#[test]
fn shutdown_closes_open_sockets_with_1001() {
    let mut nano = Nano::start(json!({ "apps": [app("ws.test", json!({}))] }));
    block_on(async {
        let mut sockets = Vec::new();
        for _ in 0..3 {
            let mut socket = connect(nano.addr, "ws.test", "/echo").await;
            socket.send(Message::text("hi")).await.unwrap();
            next_message(&mut socket).await;
            sockets.push(socket);
        }
        nano.signal(libc::SIGTERM);
        for socket in &mut sockets {
            assert_eq!(closed_with(socket).await.0, 1001);
        }
    });
    assert!(nano.wait_exit().success());
}

/// A WebSocket echo server on loopback (in the test process); its address.
async fn echo_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn an_app_opens_websockets_under_the_subrequest_guard() {
    block_on(async {
        let echo = echo_server().await;
        let nano = Nano::start(json!({ "apps": [
            app("client.test", json!({ "fetch": { "allow_private_networks": true } })),
            app("guarded.test", json!({}))
        ] }));
        let url = format!("ws://{echo}/");
        let seen = |via: &str| {
            let path = format!("/client?to={url}&via={via}");
            let nano = &nano;
            async move { nano.get("client.test", &path).await.json() }
        };
        assert_eq!(
            seen("socket").await,
            json!({ "seen": ["readyState 0", "open", "one", "two", "closed 1000"] })
        );
        assert_eq!(
            seen("fetch").await,
            json!({ "seen": ["status 101", "one", "two", "closed 1000"] })
        );
        // Without allow_private_networks, loopback is refused, as for fetch().
        for via in ["socket", "fetch"] {
            let refused = nano
                .get("guarded.test", &format!("/client?to={url}&via={via}"))
                .await
                .json();
            let error = refused["error"].as_str().unwrap_or_default();
            assert!(error.contains("allow_private_networks"), "{via}: {refused}");
        }
    });
}

/// `wss://`: the app's socket goes over TLS, trusting the roots `fetch()` trusts (here the
/// operator's CA, given with --fetch-ca-cert).
#[test]
fn an_app_opens_wss_sockets_trusting_the_fetch_roots() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (acceptor, ca) = nano_tests::tls_acceptor_for_localhost();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                        return;
                    };
                    while let Some(Ok(message)) = ws.next().await {
                        if message.is_text() && ws.send(message).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca).unwrap();
        let config = json!({ "apps": [app("client.test", json!({ "fetch": { "allow_private_networks": true } }))] });
        let nano = Nano::start_with(config, &["--fetch-ca-cert", ca_file.to_str().unwrap()]);
        let seen = nano
            .get(
                "client.test",
                &format!("/client?to=wss://localhost:{port}/&via=socket"),
            )
            .await
            .json();
        assert_eq!(
            seen,
            json!({ "seen": ["readyState 0", "open", "one", "two", "closed 1000"] })
        );
    });
}

#[test]
fn the_api_answers_wrong_calls_as_workerd() {
    let nano = Nano::start(json!({ "apps": [app("ws.test", json!({}))] }));
    let got = block_on(nano.get("ws.test", "/api")).json();
    let workerd = json!({
        "keys": ["0", "1"],
        "statics": [0, 1, 2, 3],
        "readyState": [1, 1],
        "url": [null, "", "", "blob"],
        "send before accept": "TypeError: You must call one of accept() or state.acceptWebSocket() on this WebSocket before sending messages.",
        "accept": "undefined",
        "readyState after": 1,
        "accept twice": "undefined",
        "close 1005": "DOMException: Invalid WebSocket close code: 1005.",
        "close 999": "DOMException: Invalid WebSocket close code: 999.",
        "close 5000": "DOMException: Invalid WebSocket close code: 5000.",
        "close long reason": "DOMException: WebSocket close reason must not be longer than 123 bytes when UTF-8 encoded.",
        "resp 200 ws": "RangeError: Responses with a WebSocket must have status code 101.",
        "resp webSocket": "null",
        "close ok": "undefined",
        "readyState closing": 2,
        "send after close": "TypeError: Can't call WebSocket send() after close().",
        "close again": "undefined",
        "new WebSocket no url": "TypeError: Failed to construct 'WebSocket': constructor parameter 1 is not of type 'string'.",
        "new WebSocket bad": "DOMException: WebSocket Constructor: The url scheme must be ws or wss.",
        "event classes": "functionfunctionfunction"
    });
    for (key, want) in workerd.as_object().unwrap() {
        assert_eq!(got.get(key), Some(want), "{key} differs from workerd");
    }
}
