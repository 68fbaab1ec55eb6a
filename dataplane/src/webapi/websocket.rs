//! The WebSocket ops: `js/websocket.js` keeps the Workers API (WebSocketPair, accept, send,
//! close, events) and calls these with plain values; the frames travel through the worker's
//! state (`host`) to the front, which owns the connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};

use super::{bytes_of, headers_arg, host, request_id, string_arg};
use crate::job::{SocketEvent, SocketFrame, SocketLink};
use crate::metrics::METRICS;

/// How long the other side has to answer a close frame before the connection is dropped.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(5);

/// tokio-tungstenite's settings for a socket with these bounds.
pub(crate) fn socket_config(limits: &nano_config::WebSockets) -> WebSocketConfig {
    let max = limits.max_message_bytes as usize;
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        // An idle socket holds small buffers: a thousand of them cost little.
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// `wsAccept(requestId, [name, value, ...])`: the app answered the request with a 101 and the
/// client end of a WebSocketPair. Answers the socket's id, or undefined when the request is not
/// a WebSocket upgrade (the request is then answered with the error).
pub(super) fn op_ws_accept(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let id = request_id(scope, &args);
    let headers = headers_arg(scope, args.get(1));
    let accepted = host::state(scope).borrow_mut().accept_socket(id, headers);
    if let Ok(socket) = accepted {
        rv.set(v8::Number::new(scope, socket as f64).into());
    }
}

/// `wsConnect(url, "protocol, ...")`: opens a WebSocket to `url` (ws, wss, http or https) for
/// the request whose JS runs now, under the SSRF guard and the subrequest cap of `fetch()`.
/// Answers the socket's id at once; the worker reports the connection (or its failure) as an
/// event.
pub(super) fn op_ws_connect(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let url = string_arg(scope, &args, 0);
    let protocols = string_arg(scope, &args, 1);
    let state = host::state(scope);
    let opened = state.borrow_mut().open_socket();
    let (link, policy) = match opened {
        Ok(opened) => opened,
        Err(message) => {
            return super::throw_type_error(scope, &format!("new WebSocket: {message}"));
        }
    };
    let id = link.id;
    tokio::task::spawn_local(dial(url, protocols, policy, link));
    rv.set(v8::Number::new(scope, id as f64).into());
}

/// How long each step of opening a WebSocket (connection and TLS, then the upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection made for a socket the app opens, with or without TLS.
enum Dialed {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

/// Connects and upgrades, then carries the socket until it ends; a failure ends the socket
/// with 1006 and the reason (the app sees an error event, then the close).
async fn dial(url: String, protocols: String, policy: super::fetch::Policy, link: SocketLink) {
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, connect(&url, &protocols, &policy)).await;
    let (request, dialed) = match connected {
        Ok(Ok(connected)) => connected,
        Ok(Err(message)) => return report_end(&link, 1006, message, false),
        Err(_) => {
            let message = format!(
                "new WebSocket {url}: no connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            );
            return report_end(&link, 1006, message, false);
        }
    };
    match dialed {
        Dialed::Plain(stream) => upgrade(stream, request, link, &url).await,
        Dialed::Tls(stream) => upgrade(*stream, request, link, &url).await,
    }
}

/// The client's upgrade request and the connection (TLS done) for `url`.
async fn connect(
    url: &str,
    protocols: &str,
    policy: &super::fetch::Policy,
) -> Result<(http::Request<()>, Dialed), String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut parsed =
        url::Url::parse(url).map_err(|e| format!("new WebSocket: invalid URL {url:?}: {e}"))?;
    let tls = match parsed.scheme() {
        "ws" | "http" => false,
        "wss" | "https" => true,
        other => {
            return Err(format!(
                "new WebSocket {url}: the {other}: scheme is not ws or wss"
            ));
        }
    };
    let _ = parsed.set_scheme(if tls { "wss" } else { "ws" });
    let mut request = parsed
        .as_str()
        .into_client_request()
        .map_err(|e| format!("new WebSocket {url}: {e}"))?;
    if !protocols.is_empty()
        && let Ok(value) = http::HeaderValue::from_str(protocols)
    {
        request
            .headers_mut()
            .insert(http::header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    let (tcp, _, bare_host) = super::fetch::connect(&parsed, tls, policy, "new WebSocket").await?;
    if !tls {
        return Ok((request, Dialed::Plain(tcp)));
    }
    let (connector, name) =
        super::fetch::tls_for(&bare_host).map_err(|e| format!("new WebSocket {url}: {e}"))?;
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("new WebSocket {url}: TLS handshake failed: {e}"))?;
    Ok((request, Dialed::Tls(Box::new(stream))))
}

/// The client handshake on `stream`, then the socket's life.
async fn upgrade<S>(stream: S, request: http::Request<()>, link: SocketLink, url: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let config = socket_config(&link.limits);
    let handshake = tokio_tungstenite::client_async_with_config(request, stream, Some(config));
    match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
        Ok(Ok((ws, response))) => {
            let protocol = response
                .headers()
                .get(http::header::SEC_WEBSOCKET_PROTOCOL)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let _ = link.events.send(SocketEvent {
                socket: link.id,
                frame: SocketFrame::Opened { protocol },
                permit: None,
            });
            carry(ws, link, ()).await;
        }
        Ok(Err(err)) => {
            let message = format!("new WebSocket {url}: the upgrade failed: {err}");
            report_end(&link, 1006, message, false);
        }
        Err(_) => {
            let message = format!(
                "new WebSocket {url}: no upgrade within {} s",
                CONNECT_TIMEOUT.as_secs()
            );
            report_end(&link, 1006, message, false);
        }
    }
}

/// `wsSend(socket, data)`: a text (string) or binary (bytes) message to the client. Answers 0
/// when it is on its way, 1 when the socket is closing or gone, 2 when the client has not read
/// enough of what was sent before (the socket is then closed with 1011).
pub(super) fn op_ws_send(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    mut rv: v8::ReturnValue,
) {
    let socket = args.get(0).integer_value(scope).unwrap_or(0) as u64;
    let data = args.get(1);
    let frame = if data.is_string() {
        SocketFrame::Text(data.to_rust_string_lossy(scope))
    } else {
        SocketFrame::Binary(bytes_of(data).unwrap_or_default().into())
    };
    let sent = host::state(scope).borrow_mut().socket_send(socket, frame);
    rv.set_uint32(match sent {
        host::SocketSend::Sent => 0,
        host::SocketSend::Closed => 1,
        host::SocketSend::Overflow => 2,
    });
}

/// `wsClose(socket, code, reason)`: the app's close frame (code and reason checked in JS).
pub(super) fn op_ws_close(
    scope: &mut v8::HandleScope,
    args: v8::FunctionCallbackArguments,
    _rv: v8::ReturnValue,
) {
    let socket = args.get(0).integer_value(scope).unwrap_or(0) as u64;
    let code = args.get(1).uint32_value(scope).unwrap_or(1000) as u16;
    let reason = string_arg(scope, &args, 2);
    host::state(scope)
        .borrow_mut()
        .close_socket(socket, code, &reason);
}

/// Tells the worker the socket ended, and counts the close.
pub(crate) fn report_end(link: &SocketLink, code: u16, reason: String, clean: bool) {
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

/// Carries frames both ways until the socket ends, then tells the worker how it ended; `guard`
/// (what the socket counts against) is released then. Runs on the front's runtime for sockets
/// the app accepted and on the worker's for the ones it opened.
pub(crate) async fn carry<S, G>(mut ws: WebSocketStream<S>, mut link: SocketLink, guard: G)
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
                    // Only ever sent to the worker.
                    Some(SocketFrame::Opened { .. }) => continue,
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
    drop(guard);
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
