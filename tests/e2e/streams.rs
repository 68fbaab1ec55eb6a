//! Streams end to end: a streamed response arrives chunk by chunk (the first chunk before the
//! last is produced), piping and transforms, tee, the text streams, a request body as a stream,
//! and a stream that fails mid-way aborts the response instead of truncating it silently.

use bytes::Bytes;
use http_body_util::BodyExt;
use nano_tests::{Nano, block_on, body, request};
use serde_json::json;

fn node() -> Nano {
    Nano::start(
        json!({ "apps": [{ "hostname": "s.example", "entrypoint": "streams/app.js", "limits": { "workers": 1 } }] }),
    )
}

/// A GET whose body is read by the caller, frame by frame.
async fn open(nano: &Nano, path: &str) -> hyper::Response<hyper::body::Incoming> {
    try_open(nano, path).await.unwrap()
}

/// Like `open`, but a connection that breaks before the response head arrives is an error.
async fn try_open(
    nano: &Nano,
    path: &str,
) -> hyper::Result<hyper::Response<hyper::body::Incoming>> {
    let stream = tokio::net::TcpStream::connect(nano.addr).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let req = request("GET", "s.example", path).body(body("")).unwrap();
    sender.send_request(req).await
}

#[test]
fn a_streamed_response_arrives_chunk_by_chunk() {
    let nano = node();
    block_on(async {
        let response = open(&nano, "/stream?n=3&gap=300").await;
        assert_eq!(response.status(), 200);
        assert!(
            response.headers().get("content-length").is_none(),
            "no length: the body is streamed"
        );
        let mut body = response.into_body();
        // The first frame is the first chunk alone: the runtime did not wait for the whole body.
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, Bytes::from("chunk 0\n"));
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(rest, Bytes::from("chunk 1\nchunk 2\n"));
    });
}

/// A FixedLengthStream's readable goes out with its Content-Length, as on workerd; too few or
/// too many bytes break the body instead of passing a short or long one off as complete. An
/// IdentityTransformStream's goes out chunked.
#[test]
fn a_fixed_length_stream_is_sent_with_its_content_length() {
    let nano = node();
    block_on(async {
        let response = open(&nano, "/fixed?n=11").await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response
                .headers()
                .get("content-length")
                .map(|v| v.to_str().unwrap()),
            Some("11")
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, Bytes::from("hello world"));

        let response = open(&nano, "/identity?n=11").await;
        assert!(response.headers().get("content-length").is_none());
        assert_eq!(
            response
                .headers()
                .get("transfer-encoding")
                .map(|v| v.to_str().unwrap()),
            Some("chunked")
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, Bytes::from("hello world"));

        for path in ["/fixed?n=11&send=5", "/fixed?n=5&send=11"] {
            let broken = match try_open(&nano, path).await {
                Ok(response) => response.into_body().collect().await.is_err(),
                Err(_) => true,
            };
            assert!(broken, "{path}: the body ends in an error");
        }
        let reply = nano.get("s.example", "/").await;
        assert_eq!(reply.body, "ok streams", "the worker serves on");
    });
}

#[test]
fn pipes_transforms_tee_and_request_streams() {
    let nano = node();
    block_on(async {
        let reply = nano.get("s.example", "/upper").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ABC"));

        let reply = nano.get("s.example", "/tee").await;
        assert_eq!(
            reply.json(),
            json!({ "left": [1, 2, 3], "right": [10, 20, 30], "decoded": "✓", "written": ["x", "y"], "locked": [true, false] })
        );

        let req = request("POST", "s.example", "/echo-stream")
            .body(body(&"z".repeat(5000)))
            .unwrap();
        let reply = nano.send(req).await;
        assert_eq!(reply.json(), json!({ "chunks": true, "total": 5000 }));

        let req = request("POST", "s.example", "/byob")
            .body(body(&"b".repeat(3000)))
            .unwrap();
        let reply = nano.send(req).await;
        assert_eq!(
            reply.json(),
            json!({
                // A BYOB read fills its view from everything queued, across chunks.
                "queued": [[1, 2, 3, 4], [5]], "direct": [[9, 8], [9, 8]], "auto": [[7, 7, 7], true],
                "wide": [1, 2], "bodyBytes": 3000, "blob": [[104, 101], [121]],
                "notBytes": "TypeError", "badType": "TypeError"
            })
        );

        // A stream that errors after its first chunk: the client sees a broken body, not a
        // short one passed off as complete.
        // Under load the error can reach the HTTP side before the head is written; then the
        // connection breaks before any response, which is just as broken (seen once in CI).
        let broken = match try_open(&nano, "/broken").await {
            Ok(response) => response.into_body().collect().await.is_err(),
            Err(_) => true,
        };
        assert!(broken, "the body ends in an error");

        let reply = nano.get("s.example", "/").await;
        assert_eq!(reply.body, "ok streams", "the worker serves on");
    });
}
