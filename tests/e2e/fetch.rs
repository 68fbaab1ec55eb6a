//! `fetch()` subrequests against an upstream server in the test: bodies and headers both ways,
//! redirects (followed and manual), the SSRF guard, the subrequest cap, the response size cap.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use nano_tests::{Nano, block_on};
use serde_json::json;

/// Serves HTTP/1.1 with `service` on 127.0.0.1 (a port the OS chose) until the test's runtime
/// ends; returns the address.
async fn serve<S>(service: S) -> SocketAddr
where
    S: hyper::service::Service<
            Request<hyper::body::Incoming>,
            Response = Response<Full<Bytes>>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// An upstream on 127.0.0.1: /json echoes the request as JSON, /redirect sends 302 to /json,
/// /big answers 2 MB. Runs until the test's runtime ends.
async fn upstream() -> SocketAddr {
    serve(hyper::service::service_fn(
        |req: Request<hyper::body::Incoming>| async move {
            let path = req.uri().path().to_owned();
            let method = req.method().to_string();
            let test = req
                .headers()
                .get("x-test")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let response = match path.as_str() {
                "/redirect" => Response::builder()
                    .status(302)
                    .header("location", "/json")
                    .body(Full::new(Bytes::new())),
                "/big" => {
                    Response::builder().body(Full::new(Bytes::from(vec![b'x'; 2 * 1024 * 1024])))
                }
                _ => {
                    let echo = json!({ "hello": "upstream", "method": method, "test": test,
                                               "body": String::from_utf8_lossy(&body) });
                    Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(echo.to_string())))
                }
            };
            Ok::<_, Infallible>(response.unwrap())
        },
    ))
    .await
}

/// An https upstream on 127.0.0.1 whose certificate (for "localhost") a private CA signed;
/// answers "hello over tls". Returns its address and the CA's PEM.
async fn tls_upstream() -> (SocketAddr, String) {
    let (acceptor, ca) = nano_tests::tls_acceptor_for_localhost();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello over tls"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, ca)
}

#[test]
fn https_subrequests_trust_the_public_roots_and_the_operators_ca() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (up, ca) = tls_upstream().await;
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca).unwrap();
        let config = json!({ "apps": [{ "hostname": "open.example", "entrypoint": "fetch-client/app.js",
                                        "fetch": { "allow_private_networks": true } }] });
        let url = format!("/?url=https://localhost:{}/", up.port());

        // Without the CA, the certificate is refused and the app sees a TypeError.
        let plain = Nano::start(config.clone());
        let reply = plain.get("open.example", &url).await;
        assert_eq!(reply.status, 502, "{}", reply.body);
        let body = reply.json();
        assert_eq!(body["error"], "TypeError", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("certificate"),
            "{body}"
        );

        // With --fetch-ca-cert, the same subrequest succeeds over TLS.
        let trusting = Nano::start_with(config, &["--fetch-ca-cert", ca_file.to_str().unwrap()]);
        let reply = trusting.get("open.example", &url).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "hello over tls"));
        trusting.log.wait_for("the trust line", |t| {
            t.contains("fetch() trusts extra CA certificates") && t.contains("certificates=1")
        });
    });

    // A file that is not PEM certificates stops the node before it serves, saying why.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let out = nano_tests::output_within(
        std::process::Command::new(nano_tests::binary("nano"))
            .args(["--fetch-ca-cert", junk.to_str().unwrap()]),
    );
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--fetch-ca-cert") && err.contains("no CERTIFICATE"),
        "{err}"
    );
}

fn node() -> Nano {
    Nano::start(json!({ "apps": [
        { "hostname": "open.example", "entrypoint": "fetch-client/app.js",
          "fetch": { "allow_private_networks": true, "max_subrequests": 2, "max_response_bytes": 1048576 } },
        { "hostname": "guarded.example", "entrypoint": "fetch-client/app.js" }
    ]}))
}

#[test]
fn subrequests_work_and_are_guarded() {
    let nano = node();
    block_on(async {
        let up = upstream().await;
        let get = |host: &'static str, path: String| {
            let nano = &nano;
            async move { nano.get(host, &path).await }
        };

        let reply = get("open.example", format!("/get?url=http://{up}/json")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let body = reply.json();
        assert_eq!(body["status"], 200);
        assert_eq!(body["type"], "application/json");
        assert_eq!(body["body"]["method"], "GET");
        assert_eq!(body["redirected"], false);

        let reply = get("open.example", format!("/post?url=http://{up}/json")).await;
        assert_eq!(
            reply.json()["body"],
            json!({ "hello": "upstream", "method": "POST", "test": "1", "body": "ping" })
        );

        // A stream body is sent, not dropped: an app's own stream, and a request's forwarded.
        let reply = get("open.example", format!("/post-stream?url=http://{up}/json")).await;
        assert_eq!(
            reply.json()["body"],
            json!({ "hello": "upstream", "method": "POST", "test": "stream", "body": "streamed body" })
        );
        let reply = get("open.example", format!("/proxy?url=http://{up}/json")).await;
        let body = reply.json();
        assert_eq!(
            (body["body"]["method"].clone(), body["body"]["body"].clone()),
            (json!("POST"), json!("proxied body"))
        );

        let reply = get("open.example", format!("/get?url=http://{up}/redirect")).await;
        let body = reply.json();
        assert_eq!(
            (body["redirected"].clone(), body["url"].clone()),
            (json!(true), json!(format!("http://{up}/json")))
        );

        let reply = get("open.example", format!("/manual?url=http://{up}/redirect")).await;
        assert_eq!(reply.json(), json!({ "status": 302, "location": "/json" }));

        // max_subrequests is 2: the third fetch of the same request is refused.
        let reply = get("open.example", format!("/many?url=http://{up}/json")).await;
        let outcomes = reply.json();
        assert_eq!(outcomes[0], "ok");
        assert_eq!(outcomes[1], "ok");
        assert!(
            outcomes[2].as_str().unwrap().contains("max_subrequests"),
            "{outcomes}"
        );

        // max_response_bytes is 1 MiB; /big is 2 MiB.
        let reply = get("open.example", format!("/text?url=http://{up}/big")).await;
        assert_eq!(reply.status, 502);
        assert!(
            reply.json()["message"]
                .as_str()
                .unwrap()
                .contains("max_response_bytes"),
            "{}",
            reply.body
        );

        // The default SSRF guard refuses loopback.
        let reply = get("guarded.example", format!("/get?url=http://{up}/json")).await;
        assert_eq!(reply.status, 502);
        let err = reply.json();
        assert_eq!(err["error"], "TypeError");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("non-public address"),
            "{err}"
        );

        // A hostname is checked by what it resolves to: localhost is loopback.
        let reply = get(
            "guarded.example",
            format!("/get?url=http://localhost:{}/json", up.port()),
        )
        .await;
        assert_eq!(reply.status, 502);
        let message = reply.json()["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains("localhost resolves to a non-public address"),
            "{message}"
        );
        // (Redirects to private addresses: webapi::fetch's unit test, which needs a "public"
        // address on this machine.)

        let reply = get("open.example", "/get?url=ftp://example.com/".into()).await;
        assert!(
            reply.json()["message"]
                .as_str()
                .unwrap()
                .contains("scheme is not supported"),
            "{}",
            reply.body
        );
    });
}

/// `navigator.sendBeacon` answers true at once and POSTs its data after the handler has
/// returned: the request keeps running until the beacon has gone (as with waitUntil), so the
/// upstream, which takes its time to answer, still receives it.
#[test]
fn a_beacon_is_sent_after_the_response() {
    let nano = node();
    block_on(async {
        let (seen, mut beacons) = tokio::sync::mpsc::unbounded_channel();
        let up = serve(hyper::service::service_fn(
            move |req: Request<hyper::body::Incoming>| {
                let seen = seen.clone();
                async move {
                    let method = req.method().to_string();
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    let _ = seen.send((method, String::from_utf8_lossy(&body).into_owned()));
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                }
            },
        ))
        .await;
        let reply = nano
            .get("open.example", &format!("/beacon?url=http://{up}/collect"))
            .await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "true"));
        let beacon = tokio::time::timeout(nano_tests::PATIENCE, beacons.recv())
            .await
            .expect("the beacon arrives");
        assert_eq!(beacon, Some(("POST".to_owned(), "beacon body".to_owned())));
    });
}
