//! WebSockets at the front. A request with `Upgrade: websocket` goes to the app like any other;
//! if the app accepts it (a 101 with a `WebSocketPair` end), the front answers 101, takes the
//! upgraded connection (tokio-tungstenite does the framing, masking and close handshake) and
//! carries frames between it and the app's worker until either side closes. The bounds live
//! here: `apps[].websockets` (message size, sockets per app, idle time, session length), what
//! one socket may have waiting for its worker, and how long a close handshake may take.

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_util::task::TaskTracker;

use super::rescue::{Body, Refusal};
use crate::job::{SocketEvent, SocketFrame, SocketLink};
use crate::metrics::METRICS;

/// Every socket's task, so shutdown can wait for their close frames to go out.
pub static SOCKETS: LazyLock<TaskTracker> = LazyLock::new(TaskTracker::new);

/// How long the other side has to answer a close frame before the connection is dropped.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(5);

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
        let max = link.limits.max_message_bytes as usize;
        let config = WebSocketConfig::default()
            .max_message_size(Some(max))
            .max_frame_size(Some(max))
            // An idle socket holds small buffers: a thousand of them cost little.
            .read_buffer_size(4096)
            .write_buffer_size(0);
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

/// Tells the worker the socket ended, and counts the close.
fn report_end(link: &SocketLink, code: u16, reason: String, clean: bool) {
    METRICS
        .websocket_closes
        .with_label_values(&[&*link.hostname, &code.to_string()])
        .inc();
    let _ = link.events.send(SocketEvent {
        socket: link.id,
        frame: SocketFrame::Close {
            code,
            reason,
            clean,
        },
        permit: None,
    });
}

fn close_message(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_owned().into(),
    }))
}

/// Carries frames both ways until the socket ends, then tells the worker how it ended.
async fn carry<S>(mut ws: WebSocketStream<S>, mut link: SocketLink, permit: SocketPermit)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let hostname = link.hostname.clone();
    let open = METRICS.websockets_open.with_label_values(&[&hostname]);
    open.inc();
    let messages_in = METRICS
        .websocket_messages
        .with_label_values(&[&hostname, "in"]);
    let messages_out = METRICS
        .websocket_messages
        .with_label_values(&[&hostname, "out"]);
    let limits = link.limits.clone();
    let idle = Duration::from_secs(limits.idle_timeout_secs.into());
    let session_end =
        tokio::time::Instant::now() + Duration::from_secs(limits.max_session_secs.into());
    // Bytes of this socket's messages that wait for the worker: past them the socket is not
    // read (the client waits), so a slow app cannot make the node buffer a fast client.
    let budget = (limits.max_message_bytes as usize * 2).max(64 * 1024);
    let inbound = Arc::new(Semaphore::new(budget));
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    let session_timer = tokio::time::sleep_until(session_end);
    tokio::pin!(session_timer);
    // Set once a close frame went out: the other side then has CLOSE_HANDSHAKE to answer.
    let mut closing_since: Option<tokio::time::Instant> = None;
    let mut sent_code = None;
    let close_deadline = tokio::time::sleep(Duration::from_secs(86400 * 365));
    tokio::pin!(close_deadline);
    // How the socket ended: (code, reason, clean).
    let ended: (u16, String, bool) = loop {
        tokio::select! {
            frame = link.outgoing.recv(), if closing_since.is_none() => {
                let (message, len) = match frame {
                    Some(SocketFrame::Text(text)) => {
                        let len = text.len();
                        (Message::text(text), len)
                    }
                    Some(SocketFrame::Binary(bytes)) => {
                        let len = bytes.len();
                        (Message::Binary(bytes), len)
                    }
                    Some(SocketFrame::Close { code, reason, .. }) => (close_message(code, &reason), 0),
                    // The worker dropped the socket without a close (its request ended).
                    None => (close_message(1011, "the app's handler ended"), 0),
                };
                let closing = matches!(message, Message::Close(_));
                if let Message::Close(Some(frame)) = &message {
                    sent_code = Some(u16::from(frame.code));
                }
                // A client that reads nothing for the idle time is dropped.
                match tokio::time::timeout(idle, ws.send(message)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => break (1006, format!("sending failed: {err}"), false),
                    Err(_) => break (1006, "the client did not read for the idle timeout".into(), false),
                }
                if len > 0 || !closing {
                    link.queued.fetch_sub(len, Ordering::AcqRel);
                    messages_out.inc();
                    idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                }
                if closing {
                    let now = tokio::time::Instant::now();
                    closing_since = Some(now);
                    close_deadline.as_mut().reset(now + CLOSE_HANDSHAKE);
                }
            }
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    messages_in.inc();
                    idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                    let text = text.as_str().to_owned();
                    forward(&link, &inbound, SocketFrame::Text(text)).await;
                }
                Some(Ok(Message::Binary(bytes))) => {
                    messages_in.inc();
                    idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                    forward(&link, &inbound, SocketFrame::Binary(bytes)).await;
                }
                // Pings are answered by tungstenite; pongs and raw frames carry nothing.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(frame))) => {
                    // Their close (tungstenite answers it, or it answers ours): the socket ends
                    // cleanly once the stream does.
                    let (code, reason) = frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.as_str().to_owned())
                    });
                    let _ = ws.flush().await;
                    break (code, reason, true);
                }
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                    let reason = format!("message of {size} bytes over the limit of {max_size}");
                    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, ws.send(close_message(1009, &reason))).await;
                    break (1009, reason, false);
                }
                Some(Err(err)) => break (1006, err.to_string(), false),
                None => break (sent_code.unwrap_or(1006), String::new(), sent_code.is_some()),
            },
            _ = &mut idle_timer, if closing_since.is_none() => {
                let reason = format!("no message for {} s (websockets.idle_timeout_secs)", idle.as_secs());
                start_close(&mut ws, 1001, &reason, &mut closing_since, &mut sent_code, close_deadline.as_mut()).await;
            }
            _ = &mut session_timer, if closing_since.is_none() => {
                let reason = format!("open for {} s (websockets.max_session_secs)", limits.max_session_secs);
                start_close(&mut ws, 1001, &reason, &mut closing_since, &mut sent_code, close_deadline.as_mut()).await;
            }
            _ = &mut close_deadline, if closing_since.is_some() => {
                break (sent_code.unwrap_or(1006), "the other side did not answer the close".into(), false);
            }
        }
    };
    open.dec();
    let (code, reason, clean) = ended;
    report_end(&link, code, reason, clean);
    drop(permit);
}

/// Sends a close frame from the front (a bound was reached).
async fn start_close<S>(
    ws: &mut WebSocketStream<S>,
    code: u16,
    reason: &str,
    closing_since: &mut Option<tokio::time::Instant>,
    sent_code: &mut Option<u16>,
    deadline: std::pin::Pin<&mut tokio::time::Sleep>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, ws.send(close_message(code, reason))).await;
    let now = tokio::time::Instant::now();
    *closing_since = Some(now);
    *sent_code = Some(code);
    deadline.reset(now + CLOSE_HANDSHAKE);
}

/// Hands a client's message to the worker once the socket's budget has room for it.
async fn forward(link: &SocketLink, inbound: &Arc<Semaphore>, frame: SocketFrame) {
    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    let Ok(permit) = inbound.clone().acquire_many_owned(len).await else {
        return;
    };
    let _ = link.events.send(SocketEvent {
        socket: link.id,
        frame,
        permit: Some(permit),
    });
}
