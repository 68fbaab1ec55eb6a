//! The HTTP front: accepts HTTP/1.1 and h2c connections, turns requests into pool jobs, and sends
//! back the app's response or a refusal from `rescue`. Stops accepting on shutdown and lets
//! in-flight requests finish within the grace period.

pub mod admin;
pub mod conns;
pub mod rescue;
pub mod websocket;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use std::time::Instant;

use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::job::{Failure, Job, Outcome, ResponseBody};
use crate::limits::cpu::LimitKind;
use crate::metrics::{METRICS, UNKNOWN_HOST};
use crate::router::{Route, Routing};
use rescue::{Body, Refusal};

/// What every connection task shares.
pub struct Front {
    /// The routing table in force (swapped on reload).
    pub router: Arc<Routing>,
    /// `None`: the admin surface is disabled; `Some(token)`: enabled, with an optional token.
    pub admin: Option<Option<String>>,
    /// Set when shutdown starts: readiness turns 503.
    pub draining: AtomicBool,
    /// Set by the control plane's drain command (fleet mode): readiness turns 503.
    pub drained: Arc<AtomicBool>,
    /// Whether this node is a fleet member (its health then shows the control plane link).
    pub fleet: bool,
    pub started: Instant,
    pub max_body_bytes: u64,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Request bodies held across the node.
    pub bodies: Arc<conns::BodyBudget>,
    /// Cancelled when the node stops accepting: long-lived admin streams (tails) end.
    pub stopping: CancellationToken,
}

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Tenant traffic, and `/_admin/*` unless the admin surface has its own listener.
    Tenants { admin_here: bool },
    /// Only `/_admin/*` (the `admin.listen` listener).
    AdminOnly,
}

/// Serves `listener` until `shutdown` fires, then waits up to `grace` for open requests.
/// Returns when it stopped accepting, from which the rest of the shutdown counts its grace.
pub async fn serve(
    listener: TcpListener,
    front: Arc<Front>,
    surface: Surface,
    shutdown: CancellationToken,
    grace: Duration,
) -> Instant {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(front.header_timeout)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS)
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    let conns = conns::Conns::new(front.max_connections);
    let mut refused_logged: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Some(registered) = conns.open() else {
            // At the cap with every connection busy: refuse this one (logged at most once a
            // second).
            drop(stream);
            if refused_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                refused_logged = Some(Instant::now());
                tracing::warn!(
                    max_connections = front.max_connections,
                    open = conns.open_count(),
                    "at server.max_connections with none idle; refusing new connections"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (front, conn) = (front.clone(), registered.conn.clone());
        let (first, idle) = (front.header_timeout, front.idle_timeout);
        let service = service_fn(move |req| {
            let front = front.clone();
            let in_flight = conn.request();
            async move {
                let response = handle(&front, req, peer, surface).await;
                drop(in_flight);
                Ok::<_, Infallible>(response)
            }
        });
        let io = conns::Tracked::new(stream, registered.conn.clone());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            // A connection with nothing in flight is closed once idle past its timeout (which
            // runs from accept), or at once when a newer connection needs its place.
            tokio::select! {
                result = conn => if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                },
                _ = registered.conn.closing(first, idle) => {
                    tracing::debug!(%peer, "closing an idle connection");
                }
            }
            drop(registered);
        });
    }
    drop(listener);
    let stopped = Instant::now();
    front
        .draining
        .store(true, std::sync::atomic::Ordering::Release);
    front.stopping.cancel();
    tracing::info!(
        grace_secs = grace.as_secs(),
        "stopped accepting; draining open connections"
    );
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
    stopped
}

async fn handle(
    front: &Front,
    req: Request<Incoming>,
    peer: SocketAddr,
    surface: Surface,
) -> Response<Body> {
    if admin::is_admin_path(req.uri().path()) {
        let here = matches!(
            surface,
            Surface::AdminOnly | Surface::Tenants { admin_here: true }
        );
        return admin::respond(front, &req, peer, here);
    }
    if surface == Surface::AdminOnly {
        return Refusal::NotFound {
            what: "this listener serves only /_admin/*".into(),
        }
        .into_response();
    }
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let (label, response) = match route_and_run(front, req, peer).await {
        Ok((hostname, response)) => (hostname, response),
        Err((hostname, refusal)) => {
            if matches!(
                refusal,
                Refusal::Pool {
                    error: crate::pool::PoolError::Full { .. },
                    ..
                }
            ) {
                METRICS
                    .queue_rejections
                    .with_label_values(&[&hostname])
                    .inc();
                queue_full_event(&hostname, &method, &path, &refusal);
            }
            (hostname, refusal.into_response())
        }
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = response.status();
    if crate::metrics::recording() {
        METRICS
            .requests
            .with_label_values(&[&label, status.as_str()])
            .inc();
        METRICS
            .request_duration_ms
            .with_label_values(&[&label])
            .observe(elapsed_ms);
    }
    tracing::debug!(
        hostname = %label, %method, path = %path, status = status.as_u16(), duration_ms = elapsed_ms,
        "request"
    );
    response
}

/// The URL the app sees as `request.url`: serialised here as WHATWG's `new URL(...).href` would
/// (by the same `url` crate the runtime's URL uses), so the request's context takes it as it is
/// instead of parsing it again. A `Host` the URL parser refuses is a 400.
fn request_url(host: &str, req: &Request<Incoming>) -> Result<String, Refusal> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    url::Url::parse(&format!("http://{host}{path}"))
        .map(String::from)
        .map_err(|error| Refusal::BadHost {
            reason: format!("{host:?} does not make a valid URL ({error})"),
        })
}

/// A tail event for a request the app's queue refused (only while someone tails the app).
fn queue_full_event(hostname: &str, method: &http::Method, path: &str, refusal: &Refusal) {
    let hub = crate::tail::hub(hostname);
    let Some(sampled) = hub.draw() else {
        return;
    };
    hub.publish(crate::tail::Event {
        time_ms: crate::job::stats::now_ms(),
        hostname: hostname.to_owned(),
        method: method.to_string(),
        url: format!("http://{hostname}{path}"),
        status: refusal.status().as_u16(),
        wall_ms: 0.0,
        cpu_ms: 0.0,
        outcome: "queue-full",
        exception: None,
        logs: Vec::new(),
        logs_dropped: 0,
        headers: Vec::new(),
        websocket: None,
        sampled,
    });
}

/// Limits of the HTTP front (hyper answers 431 itself past the header limits).
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
pub const MAX_URI_BYTES: usize = 8 * 1024;
pub const MAX_H2_STREAMS: u32 = 256;

/// Refuses request targets longer than `MAX_URI_BYTES`. (Ambiguous body framing is hyper's:
/// with both Content-Length and Transfer-Encoding it reads chunked and closes the connection
/// after the response; different Content-Lengths get 400.)
fn check_target(req: &Request<Incoming>) -> Result<(), Refusal> {
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len > MAX_URI_BYTES {
        return Err(Refusal::UriTooLong {
            limit: MAX_URI_BYTES,
        });
    }
    Ok(())
}

/// The request's host: the authority of an absolute-form target or HTTP/2's `:authority` if
/// there is one (RFC 9112 section 3.2.2), else the one `Host` header. `Ok(None)` when there is
/// neither; an error when there is more than one `Host`, or the host is not `host[:port]`.
pub(crate) fn request_host<B>(req: &Request<B>) -> Result<Option<String>, Refusal> {
    let bad = |reason: &str| Refusal::BadHost {
        reason: reason.to_owned(),
    };
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(bad("the request has more than one Host header"));
    }
    let host = match req.uri().authority() {
        Some(authority) => authority.as_str().to_owned(),
        None => match header {
            Some(value) => value
                .to_str()
                .map_err(|_| bad("the Host header is not ASCII"))?
                .to_owned(),
            None => return Ok(None),
        },
    };
    check_host(&host).map_err(bad)?;
    Ok(Some(host))
}

/// Whether `host` is `name[:port]` or `[ipv6][:port]`: nothing else (no user info, path, query
/// or spaces), so the app's URL is made of exactly what routed the request.
fn check_host(host: &str) -> Result<(), &'static str> {
    if host.is_empty() {
        return Err("it is empty");
    }
    let port = if let Some(rest) = host.strip_prefix('[') {
        let (literal, after) = rest
            .split_once(']')
            .ok_or("an IPv6 literal lacks its ']'")?;
        if literal.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("the IPv6 literal is not valid");
        }
        match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("something follows the IPv6 literal")?,
            ),
        }
    } else {
        let (name, port) = match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if name.is_empty() || !name.chars().all(valid) {
            return Err("the name may only hold letters, digits, '.', '-' and '_'");
        }
        port
    };
    if let Some(port) = port
        && (port.is_empty()
            || port.len() > 5
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u32>().map_or(true, |p| p > 65535))
    {
        return Err("the port is not a number from 0 to 65535");
    }
    Ok(())
}

/// Routes and runs a request; the `String` is the metrics label (the app's hostname, or
/// `UNKNOWN_HOST`).
async fn route_and_run(
    front: &Front,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<(String, Response<Body>), (String, Refusal)> {
    let unknown = |refusal| (UNKNOWN_HOST.to_owned(), refusal);
    check_target(&req).map_err(unknown)?;
    if req.method() == http::Method::CONNECT {
        return Err(unknown(Refusal::MethodNotAllowed {
            method: "CONNECT".into(),
        }));
    }
    let host = request_host(&req)
        .map_err(unknown)?
        .ok_or(Refusal::MissingHost)
        .map_err(unknown)?;
    let route = front.router.load().route(&host).cloned();
    let route = route.ok_or_else(|| {
        unknown(Refusal::UnknownHost {
            host: nano_config::normalize_host_header(&host),
        })
    })?;
    let hostname = route.pool.hostname().to_owned();
    match run(front, &route, host, req, peer).await {
        Ok(response) => Ok((hostname, response)),
        Err(refusal) => Err((hostname, refusal)),
    }
}

async fn run(
    front: &Front,
    route: &Arc<Route>,
    host: String,
    mut req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Body>, Refusal> {
    let hostname = route.pool.hostname().to_owned();
    let url = request_url(&host, &req)?;
    // A WebSocket upgrade takes one of the app's sockets now (refused past the cap before the
    // app runs); the connection is handed over only if the app accepts with a 101.
    let upgrade = if websocket::is_upgrade(&req) {
        let permit = websocket::SocketPermit::take(
            &route.sockets,
            route.app.websockets.max_sockets,
            &hostname,
        )?;
        let key = req.headers()[header::SEC_WEBSOCKET_KEY].clone();
        Some((permit, key, hyper::upgrade::on(&mut req)))
    } else {
        None
    };

    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > front.max_body_bytes) {
        return Err(Refusal::BodyTooLarge {
            limit: front.max_body_bytes,
        });
    }
    // A full app refuses at once, before the body is read; the slot itself is taken only once
    // the body is in, so a slow upload never holds one.
    route.pool.has_room().map_err(|error| Refusal::Pool {
        hostname: hostname.clone(),
        error,
    })?;
    let (parts, body) = req.into_parts();
    let mut charge = front.bodies.charge();
    if let Some(declared) = declared
        && !charge.grow_to(declared)
    {
        return Err(Refusal::NodeBusy {
            limit: charge.limit(),
        });
    }
    let body = match tokio::time::timeout(
        front.body_timeout,
        read_body(body, front.max_body_bytes, &mut charge),
    )
    .await
    {
        Ok(body) => body?,
        Err(_) => {
            return Err(Refusal::BodyTimeout {
                secs: front.body_timeout.as_secs(),
            });
        }
    };
    let (worker, slot) = route.pool.reserve().map_err(|error| Refusal::Pool {
        hostname: hostname.clone(),
        error,
    })?;

    // The app's `Host` is the host that routed the request (an absolute-form target's or
    // HTTP/2's authority wins over a `Host` header, and HTTP/2 sends none).
    let headers = std::iter::once(("host".to_owned(), host.clone()))
        .chain(
            parts
                .headers
                .iter()
                .filter(|(name, _)| *name != header::HOST)
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                }),
        )
        .collect();
    let (reply, outcome) = oneshot::channel();
    let id = crate::job::next_request_id();
    let job = Job {
        id,
        method: parts.method.as_str().to_owned(),
        url,
        headers,
        body,
        timeout: route.timeout,
        reply,
        slot,
        upgrade: upgrade.is_some(),
        client: peer.to_string(),
    };
    route
        .pool
        .submit(worker, job)
        .map_err(|error| Refusal::Pool {
            hostname: hostname.clone(),
            error,
        })?;
    // If the client goes away, hyper drops this future: tell the worker to drop the request.
    let mut cancel = CancelOnDrop {
        route: route.clone(),
        worker,
        id,
        armed: true,
    };

    let failed = |failure| Refusal::Failed {
        hostname: hostname.clone(),
        failure,
    };
    // The worker enforces the wall clock itself (even on spinning JS); this is a backstop.
    let outcome = match tokio::time::timeout(route.timeout + BACKSTOP, outcome).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => {
            return Err(failed(Failure::Unavailable {
                reason: "the worker stopped while handling the request".into(),
            }));
        }
        Err(_) => {
            // The worker did not answer at its own deadline: if it is stuck inside JS, the pool
            // replaces it so the app keeps serving.
            route.pool.replace_if_stuck(worker, route.timeout);
            return Err(failed(Failure::Limit {
                kind: LimitKind::Wall,
                limit: route.timeout,
                used: route.timeout + BACKSTOP,
            }));
        }
    };
    cancel.armed = false;
    match outcome {
        Outcome::Response {
            status,
            headers,
            body,
        } => {
            let body = match body {
                ResponseBody::Full(bytes) => rescue::full(bytes),
                ResponseBody::Stream(chunks) => {
                    http_body_util::Either::Right(rescue::ChannelBody(chunks))
                }
            };
            build_response(&hostname, status, headers, body)
        }
        Outcome::Upgrade { headers, socket } => match upgrade {
            Some((permit, key, on_upgrade)) => {
                Ok(websocket::accept(&key, on_upgrade, headers, socket, permit))
            }
            // The worker accepts sockets only for upgrade requests.
            None => Err(Refusal::BadAppResponse {
                hostname,
                reason: "a WebSocket accepted for a request that is not an upgrade".into(),
            }),
        },
        Outcome::Failed(failure) => Err(failed(failure)),
    }
}

/// Reads a request body of at most `limit` bytes, counting it against the node's budget.
async fn read_body(
    mut body: Incoming,
    limit: u64,
    charge: &mut conns::BodyCharge,
) -> Result<bytes::Bytes, Refusal> {
    let mut buffer = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| Refusal::BadBody {
            reason: err.to_string(),
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let total = (buffer.len() + data.len()) as u64;
        if total > limit {
            return Err(Refusal::BodyTooLarge { limit });
        }
        if !charge.grow_to(total) {
            return Err(Refusal::NodeBusy {
                limit: charge.limit(),
            });
        }
        buffer.extend_from_slice(&data);
    }
    Ok(buffer.freeze())
}

/// How long past `timeout_secs` the front waits for a worker before answering 504 itself (a
/// worker answers at its deadline unless it is stuck in JS that cannot be interrupted).
const BACKSTOP: Duration = Duration::from_millis(250);

struct CancelOnDrop {
    route: Arc<Route>,
    worker: usize,
    id: u64,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.route.pool.cancel(self.worker, self.id);
        }
    }
}

/// Headers the front sets itself: an app's value would contradict the real framing.
fn is_connection_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length" | "transfer-encoding" | "connection" | "keep-alive" | "upgrade"
    )
}

fn build_response(
    hostname: &str,
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
) -> Result<Response<Body>, Refusal> {
    let bad = |reason: String| Refusal::BadAppResponse {
        hostname: hostname.to_owned(),
        reason,
    };
    // The Response constructor takes 200 to 599 (101 only with a WebSocket, which is answered
    // elsewhere); anything else reached here through the runtime's state, not its API.
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|status| (200..=599).contains(&status.as_u16()))
        .ok_or_else(|| {
            bad(format!(
                "status {status} is not valid (a response's status is 200 to 599)"
            ))
        })?;
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let map = response.headers_mut();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad(format!("header name {name:?} is not valid")))?;
        if is_connection_header(&name) {
            continue;
        }
        let value = HeaderValue::from_str(&value)
            .map_err(|_| bad(format!("header {name} has a value that is not valid")))?;
        map.append(name, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(status: u16) -> Result<u16, String> {
        build_response("app.test", status, Vec::new(), rescue::full(""))
            .map(|response| response.status().as_u16())
            .map_err(|refusal| refusal.message())
    }

    /// An app's answer has a status the Response constructor takes: an informational one (a 101
    /// without its WebSocket) or one past 599 is refused, with what is wrong.
    #[test]
    fn an_app_response_status_is_200_to_599() {
        assert_eq!(status_of(200), Ok(200));
        assert_eq!(status_of(599), Ok(599));
        for status in [0, 100, 101, 199, 600, 999, u16::MAX] {
            let refusal = status_of(status).expect_err("refused");
            assert!(
                refusal.contains(&format!("status {status} is not valid")),
                "{refusal}"
            );
        }
    }
}
