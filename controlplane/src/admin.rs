//! The control plane's `/_admin` HTTP surface: health, metrics, the fleet's isolates and nodes.
//! Answered for a loopback client or `Authorization: Bearer <operator token>`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Plane;

fn json(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string() + "\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn refusal(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let mut response = json(
        status,
        serde_json::json!({ "error": code, "message": message }),
    );
    response.headers_mut().insert(
        "x-nano-error",
        header::HeaderValue::from_str(code).expect("error codes are ascii"),
    );
    response
}

fn authorized(plane: &Plane, req: &hyper::http::request::Parts, peer: SocketAddr) -> bool {
    let bearer = req
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        Some(token) => bool::from(token.as_bytes().ct_eq(plane.operator_token.as_bytes())),
        None => peer.ip().is_loopback() && peer.ip() != std::net::Ipv4Addr::new(127, 0, 0, 2),
    }
}

/// The answer to one admin request. Blocks (it reads the store).
fn respond(
    plane: &Plane,
    req: &hyper::http::request::Parts,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    if !authorized(plane, req, peer) {
        return refusal(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the admin surface needs a loopback client or `Authorization: Bearer <operator token>`",
        );
    }
    match req.uri.path() {
        "/_admin/health" => {
            let stopping = plane.stopping.load(Ordering::Relaxed);
            let revision = plane.store.revision().unwrap_or(0);
            let store_error = plane
                .store_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            json(
                if stopping {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                },
                serde_json::json!({
                    "status": if stopping { "stopping" } else { "ok" },
                    "version": env!("CARGO_PKG_VERSION"),
                    "revision": revision,
                    "store_id": plane.store.store_id(),
                    "store": {
                        "backend": plane.store.describe(),
                        "ok": store_error.is_none(),
                        "error": store_error,
                    },
                    "uptime_secs": plane.started.elapsed().as_secs(),
                }),
            )
        }
        "/_admin/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(plane.metrics.render(plane))));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/_admin/isolates" => {
            let isolates: Vec<_> = plane
                .isolates(None)
                .unwrap_or_else(|_| plane.fleet.isolates(None))
                .iter()
                .map(nano_proto::json::isolate)
                .collect();
            json(StatusCode::OK, serde_json::json!({ "isolates": isolates }))
        }
        "/_admin/nodes" => {
            let nodes: Vec<_> = plane
                .nodes()
                .unwrap_or_else(|_| plane.fleet.nodes())
                .iter()
                .map(nano_proto::json::node)
                .collect();
            json(StatusCode::OK, serde_json::json!({ "nodes": nodes }))
        }
        other => refusal(
            StatusCode::NOT_FOUND,
            "not-found",
            &format!(
                "no admin endpoint {other:?}; try /_admin/health, /_admin/metrics, \
                 /_admin/isolates or /_admin/nodes"
            ),
        ),
    }
}

/// Serves the admin surface until `shutdown` fires.
pub async fn serve(plane: Arc<Plane>, listener: TcpListener, shutdown: CancellationToken) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "admin accept failed");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let plane = plane.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let plane = plane.clone();
            let (parts, _body) = req.into_parts();
            async move {
                let response = tokio::task::spawn_blocking(move || respond(&plane, &parts, peer))
                    .await
                    .unwrap_or_else(|_| {
                        refusal(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "stopping",
                            "the control plane is shutting down",
                        )
                    });
                Ok::<_, Infallible>(response)
            }
        });
        let connection = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), graceful.shutdown()).await;
}
