//! `/_admin/*`: health, readiness, Prometheus metrics and the isolate list. Answered only for a
//! loopback client or `Authorization: Bearer <admin.token>`, and never on a tenant hostname;
//! `/_admin` paths are never routed to a tenant.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use http::{HeaderValue, Request, Response, StatusCode, header};
use subtle::ConstantTimeEq;

use super::rescue::{Body, Refusal};
use super::{Front, request_host};
use crate::metrics::METRICS;

pub fn is_admin_path(path: &str) -> bool {
    path == "/_admin" || path.starts_with("/_admin/")
}

/// Answers an admin request. `here` says whether this listener serves the admin surface.
pub fn respond<B>(front: &Front, req: &Request<B>, peer: SocketAddr, here: bool) -> Response<Body> {
    let Some(token) = &front.admin else {
        return Refusal::NotFound {
            what: "the admin surface is disabled (admin.enabled)".into(),
        }
        .into_response();
    };
    if !here {
        return Refusal::NotFound {
            what: "the admin surface is served on its own listener (admin.listen)".into(),
        }
        .into_response();
    }
    if let Ok(Some(host)) = request_host(req)
        && front.router.load().route(&host).is_some()
    {
        return Refusal::NotFound {
            what: "/_admin is not served on tenant hostnames; use the node's own address \
                   (for example Host: 127.0.0.1)"
                .into(),
        }
        .into_response();
    }
    if !authorized(token.as_deref(), req, peer) {
        return Refusal::Unauthorized.into_response();
    }
    match req.uri().path() {
        "/_admin/health" => {
            let mut health = serde_json::json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_secs": front.started.elapsed().as_secs(),
            });
            if front.fleet {
                health["fleet"] = serde_json::json!({
                    "connected": METRICS.fleet_connected.get() == 1,
                    "control_plane": crate::sync::connected_to(),
                    "revision": METRICS.fleet_revision.get(),
                    "drained": front.drained.load(Ordering::Acquire),
                });
            }
            json(StatusCode::OK, health)
        }
        "/_admin/ready" => ready(front),
        "/_admin/metrics" => {
            let router = front.router.load();
            let text = METRICS.render(
                router
                    .routes()
                    .map(|route| (route.pool.hostname(), route.pool.stats())),
            );
            let mut response = Response::new(super::rescue::full(text));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/_admin/tail" => tail(front, req.uri().query().unwrap_or("")),
        "/_admin/isolates" => {
            let isolates: Vec<_> = front
                .router
                .load()
                .routes()
                .flat_map(|route| {
                    route
                        .pool
                        .stats()
                        .iter()
                        .map(|s| s.to_json())
                        .collect::<Vec<_>>()
                })
                .collect();
            json(StatusCode::OK, serde_json::json!({ "isolates": isolates }))
        }
        other => Refusal::NotFound {
            what: format!(
                "no admin endpoint {other:?}; try /_admin/health, /_admin/ready, /_admin/metrics, \
                 /_admin/isolates or /_admin/tail?hostname=..."
            ),
        }
        .into_response(),
    }
}

/// `/_admin/tail?hostname=H[&status=..][&method=..][&path_prefix=..][&search=..][&sample=..]
/// [&headers=1]`:
/// the app's request events as newline-delimited JSON, live, until the client goes away or
/// the node shuts down. The first line names the app; `{"dropped":N}` says the client read too
/// slowly and N events were lost (the app never waits for a tail).
fn tail(front: &Front, query: &str) -> Response<Body> {
    let bad = |reason: String| Refusal::BadQuery { reason }.into_response();
    let (hostname, filter, headers) = match crate::tail::from_query(query) {
        Ok(parsed) => parsed,
        Err(reason) => return bad(reason),
    };
    let Some(hostname) = hostname else {
        return bad("give hostname=<the app to tail>".into());
    };
    let Some(route) = front.router.load().route(&hostname).cloned() else {
        return Refusal::NotFound {
            what: format!("no app is configured for host {hostname:?}"),
        }
        .into_response();
    };
    let hostname = route.pool.hostname().to_owned();
    let mut tail = crate::tail::hub(&hostname).subscribe(filter.sample);
    let (lines, chunks) = tokio::sync::mpsc::channel(TAIL_LINES);
    let stopping = front.stopping.clone();
    tokio::spawn(async move {
        let first = serde_json::json!({ "tailing": hostname }).to_string() + "\n";
        if lines.send(Ok(first.into())).await.is_err() {
            return;
        }
        loop {
            let line = tokio::select! {
                next = tail.next() => match next {
                    crate::tail::Next::Event(event) => {
                        if !filter.sample_hit_given(event.sampled) {
                            continue;
                        }
                        let event = crate::tail::to_json(&event, headers);
                        if !filter.matches(&event) {
                            continue;
                        }
                        event.to_string()
                    }
                    crate::tail::Next::Dropped(lost) => {
                        serde_json::json!({ "dropped": lost }).to_string()
                    }
                },
                _ = lines.closed() => return,
                _ = stopping.cancelled() => {
                    serde_json::json!({ "end": "the node is shutting down" }).to_string()
                }
            };
            let last = stopping.is_cancelled();
            if lines.send(Ok((line + "\n").into())).await.is_err() || last {
                return;
            }
        }
    });
    let mut response = Response::new(http_body_util::Either::Right(super::rescue::ChannelBody(
        crate::job::StreamBody {
            chunks,
            failed: Default::default(),
            length: None,
        },
    )));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// Lines a tail's connection buffers before the tail starts losing events.
const TAIL_LINES: usize = 64;

/// A client on this machine's own loopback address (127.0.0.1 or ::1; other 127.x addresses
/// are often handed to containers and are not trusted), or the configured bearer token
/// (compared in constant time).
fn authorized<B>(token: Option<&str>, req: &Request<B>, peer: SocketAddr) -> bool {
    let local = match peer.ip() {
        std::net::IpAddr::V4(ip) => ip == std::net::Ipv4Addr::LOCALHOST,
        std::net::IpAddr::V6(ip) => {
            ip == std::net::Ipv6Addr::LOCALHOST
                || ip.to_ipv4_mapped() == Some(std::net::Ipv4Addr::LOCALHOST)
        }
    };
    if local {
        return true;
    }
    let Some(token) = token else { return false };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    presented.len() == token.len() && bool::from(presented.as_bytes().ct_eq(token.as_bytes()))
}

/// 200 once every app has settled (an isolate can serve, or it failed to load and answers 503
/// on its own); 503 before that, while draining for shutdown, and while drained by the control
/// plane.
fn ready(front: &Front) -> Response<Body> {
    let draining = front.draining.load(Ordering::Acquire);
    let drained = front.drained.load(Ordering::Acquire);
    let router = front.router.load();
    let pending: Vec<&str> = router
        .routes()
        .filter(|route| !route.pool.is_settled())
        .map(|route| route.pool.hostname())
        .collect();
    let failed: Vec<_> = router
        .routes()
        .filter_map(|route| {
            route
                .pool
                .failure()
                .map(|why| serde_json::json!({ "hostname": route.pool.hostname(), "error": why }))
        })
        .collect();
    let ready = !draining && !drained && pending.is_empty();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(
        status,
        serde_json::json!({
            "ready": ready, "draining": draining, "drained": drained,
            "starting": pending, "failed": failed,
        }),
    )
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(super::rescue::full(format!("{value}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(auth: Option<&str>) -> Request<()> {
        let mut builder = Request::get("/_admin/health");
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn access_needs_loopback_or_the_token() {
        let loopback: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let remote: SocketAddr = "192.0.2.1:1".parse().unwrap();
        assert!(authorized(None, &req(None), loopback));
        assert!(authorized(None, &req(None), "[::1]:1".parse().unwrap()));
        assert!(!authorized(
            None,
            &req(None),
            "127.0.0.2:1".parse().unwrap()
        ));
        assert!(!authorized(None, &req(None), remote));
        assert!(!authorized(Some("s3cret"), &req(None), remote));
        assert!(!authorized(
            Some("s3cret"),
            &req(Some("Bearer wrong!")),
            remote
        ));
        assert!(!authorized(Some("s3cret"), &req(Some("s3cret")), remote));
        assert!(authorized(
            Some("s3cret"),
            &req(Some("Bearer s3cret")),
            remote
        ));
    }

    #[test]
    fn admin_paths() {
        assert!(is_admin_path("/_admin"));
        assert!(is_admin_path("/_admin/metrics"));
        assert!(!is_admin_path("/_administrator"));
        assert!(!is_admin_path("/x/_admin/metrics"));
    }
}
