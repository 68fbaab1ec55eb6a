//! WebSockets at the front. A request with `Upgrade: websocket` goes to the app like any other;
//! if the app accepts it (a 101 with a `WebSocketPair` end), the front answers 101, takes the
//! upgraded connection (tokio-tungstenite does the framing, masking and close handshake) and
//! carries frames between it and the app's worker until either side closes. The bounds live
//! here: `apps[].websockets` (message size, sockets per app, idle time, session length), what
//! one socket may have waiting for its worker, and how long a close handshake may take.

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::task::TaskTracker;

use super::rescue::{Body, Refusal};
use crate::job::SocketLink;
use crate::webapi::websocket::{carry, report_end, socket_config};

/// Every socket's task, so shutdown can wait for their close frames to go out.
pub static SOCKETS: LazyLock<TaskTracker> = LazyLock::new(TaskTracker::new);

/// Whether `req` asks for a WebSocket (RFC 6455 over HTTP/1.1: GET, `Connection: upgrade`,
/// `Upgrade: websocket`, version 13 and a key). Anything else is an ordinary request.
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    let headers = req.headers();
    req.method() == Method::GET
        && req.version() == Version::HTTP_11
        && has_token(headers, header::CONNECTION, "upgrade")
        && has_token(headers, header::UPGRADE, "websocket")
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v.as_bytes() == b"13")
        && headers.contains_key(header::SEC_WEBSOCKET_KEY)
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// An open socket counted against its app's `max_sockets`; released when dropped.
pub struct SocketPermit {
    count: Arc<AtomicUsize>,
}

impl SocketPermit {
    /// Takes one of the app's sockets, or refuses past `limit`.
    pub fn take(count: &Arc<AtomicUsize>, limit: u32, hostname: &str) -> Result<Self, Refusal> {
        let taken = count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
            (open < limit as usize).then_some(open + 1)
        });
        if taken.is_err() {
            return Err(Refusal::TooManySockets {
                hostname: hostname.to_owned(),
                limit,
            });
        }
        Ok(Self {
            count: count.clone(),
        })
    }
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The 101 for an accepted socket; the socket's task starts once hyper hands over the
/// connection.
pub fn accept(
    key: &HeaderValue,
    on_upgrade: OnUpgrade,
    app_headers: Vec<(String, String)>,
    link: SocketLink,
    permit: SocketPermit,
) -> Response<Body> {
    let mut response = Response::new(super::rescue::full(bytes::Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    for (name, value) in app_headers {
        let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) else {
            continue;
        };
        if super::is_connection_header(&name) || name == header::SEC_WEBSOCKET_ACCEPT {
            continue;
        }
        headers.append(name, value);
    }
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    SOCKETS.spawn(async move {
        let config = socket_config(&link.limits);
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                carry(ws, link, permit).await;
            }
            Err(err) => {
                tracing::debug!(error = %err, "the WebSocket upgrade did not complete");
                report_end(&link, 1006, "the upgrade did not complete".into(), false);
            }
        }
    });
    response
}
