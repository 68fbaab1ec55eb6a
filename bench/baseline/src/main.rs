//! `hyper-baseline ADDR`: a bare hyper server (multi-thread tokio, HTTP/1.1) that answers every
//! request with the same bytes as bench/apps/hello.js. The ceiling for NANO's HTTP path.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, service::service_fn};
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!(
        "listening addr={}",
        listener.local_addr().expect("local addr")
    );
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|_req| async {
                let mut response = Response::new(Full::new(Bytes::from_static(b"Hello World!")));
                response.headers_mut().insert(
                    "content-type",
                    "text/plain;charset=UTF-8".parse().expect("static"),
                );
                Ok::<_, Infallible>(response)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
