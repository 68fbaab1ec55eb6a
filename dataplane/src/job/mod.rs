//! What passes between the HTTP front, an app's pool and a worker thread: a request ([`Job`]),
//! what became of it ([`Outcome`], [`Failure`]), the slot it holds, and the stats each worker
//! publishes. Below both `pool` and `isolate`, so neither imports the other's internals.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::limits::cpu::LimitKind;

pub mod stats;

pub use stats::{ISOLATE_STARTED, IsolateState, WorkerStats};

/// One HTTP request handed to a worker.
pub struct Job {
    /// Unique in the process; names the request in a later [`Command::Cancel`].
    pub id: u64,
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub timeout: Duration,
    pub reply: oneshot::Sender<Outcome>,
    pub slot: SlotGuard,
    /// The request asks for a WebSocket (HTTP/1.1 `Upgrade: websocket`): the app may accept it
    /// with a 101 and a `WebSocketPair` end, which the front then upgrades.
    pub upgrade: bool,
    /// The address the connection came from (`ip:port`), the app's `request.cf.clientIp`.
    pub client: String,
}

impl Job {
    /// The path part of the URL, for logs.
    pub fn path(&self) -> &str {
        let after_scheme = self
            .url
            .split_once("://")
            .map_or(&*self.url, |(_, rest)| rest);
        after_scheme.find('/').map_or("/", |i| &after_scheme[i..])
    }
}

/// What a worker is told to do.
pub enum Command {
    Run(Job),
    /// The client went away before the response: drop the request.
    Cancel(u64),
    /// Dispose the isolate and end the thread if the worker is idle (node memory budget); the
    /// pool starts a worker again on demand. Open WebSockets are closed (1001) first.
    Evict,
    /// Close every open WebSocket with 1001 (the node is being drained).
    CloseSockets,
}

/// What the control plane asks of the node as a whole, for the reconciler (which holds the
/// routing table) to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeCommand {
    /// Replace the app's isolates (`nanoctl evict`).
    Evict(String),
    /// The node was drained: its WebSockets go (1001) so their clients reconnect elsewhere.
    CloseSockets,
}

/// A worker's `load` once its thread has ended (reaped when idle, or evicted): far above any
/// slot count, so no slot can be taken on it again and the pool starts a fresh worker instead.
pub const CLOSED: usize = usize::MAX / 2;

/// Closes a worker's slots if none is held: afterwards the pool hands it no more work, so its
/// thread may end. `false` when a request holds or has just taken a slot.
pub fn close_slots(load: &AtomicUsize) -> bool {
    load.compare_exchange(0, CLOSED, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// A process-wide request id.
pub fn next_request_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What became of a request.
#[derive(Debug)]
pub enum Outcome {
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: ResponseBody,
    },
    /// The app accepted a WebSocket: the front answers 101 and carries the socket's frames.
    Upgrade {
        headers: Vec<(String, String)>,
        socket: SocketLink,
    },
    Failed(Failure),
}

/// A WebSocket message or close, either way between a client and its app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketFrame {
    Text(String),
    Binary(Bytes),
    /// A close frame with its code and reason (to the client); from the client, the socket
    /// ended: `clean` when the closing handshake completed.
    Close {
        code: u16,
        reason: String,
        clean: bool,
    },
    /// To the worker: a socket the app opened is connected (with the subprotocol the server
    /// chose).
    Opened {
        protocol: String,
    },
}

impl SocketFrame {
    /// Bytes it carries.
    pub fn len(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Binary(bytes) => bytes.len(),
            Self::Close { reason, .. } => reason.len() + 2,
            Self::Opened { protocol } => protocol.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the front tells a worker about one of its sockets: a message or the socket's end.
#[derive(Debug)]
pub struct SocketEvent {
    pub socket: u64,
    pub frame: SocketFrame,
    /// Held until the worker has handled it: bounds what one socket has waiting for its worker.
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// The worker's side of an accepted WebSocket, handed to the front with the 101.
#[derive(Debug)]
pub struct SocketLink {
    pub id: u64,
    /// To the worker: the client's messages and the socket's end.
    pub events: tokio::sync::mpsc::UnboundedSender<SocketEvent>,
    /// From the worker: what the app sends, and its close.
    pub outgoing: tokio::sync::mpsc::UnboundedReceiver<SocketFrame>,
    /// Bytes the app has sent that are not yet written to the client (the worker refuses more
    /// past the socket's bound: a client that does not read cannot grow the node's memory).
    pub queued: Arc<AtomicUsize>,
    pub limits: nano_config::WebSockets,
    /// The app's hostname, for metrics.
    pub hostname: Arc<str>,
}

/// The body of an app's response.
#[derive(Debug)]
pub enum ResponseBody {
    Full(Bytes),
    /// Chunks as the app's stream produces them; an `Err` aborts the response.
    Stream(StreamBody),
}

/// A streamed body: chunks through a bounded channel ([`STREAM_CHUNKS`]; the app's stream waits
/// while it is full), an `Err` chunk aborting it. `failed` is set when the stream broke while the
/// channel had no room for the error: the end of the channel is then an error, not the end of
/// the body.
#[derive(Debug)]
pub struct StreamBody {
    pub chunks: tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
    pub failed: Arc<std::sync::atomic::AtomicBool>,
    /// The body's exact length, if the app promised one (the response's Content-Length).
    pub length: Option<u64>,
}

/// Chunks of a streamed response buffered between the app and the client; past them the app's
/// stream waits until the client reads (a client that never reads holds at most this much).
pub const STREAM_CHUNKS: usize = 8;

/// Why a request produced no response of the app's own. Mapped to HTTP in `http::rescue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    HandlerException {
        message: String,
    },
    BadResponse {
        message: String,
    },
    NoResponse,
    /// A limit ended the request: CPU, memory or wall clock.
    Limit {
        kind: LimitKind,
        limit: Duration,
        used: Duration,
    },
    /// A memory limit, in bytes.
    Memory {
        limit: usize,
        used: usize,
    },
    Unavailable {
        reason: String,
    },
}

impl Failure {
    /// The HTTP status a request that failed this way gets (504 past the wall clock, 503 for
    /// the other limits and an unavailable app, else 500).
    pub fn http_status(&self) -> u16 {
        match self {
            Failure::Limit {
                kind: LimitKind::Wall,
                ..
            } => 504,
            Failure::Limit { .. } | Failure::Memory { .. } | Failure::Unavailable { .. } => 503,
            _ => 500,
        }
    }
}

/// Holds one of a worker's slots; released on drop, whatever happens to the request.
#[derive(Debug)]
pub struct SlotGuard(Arc<AtomicUsize>);

impl SlotGuard {
    /// Takes over one slot already counted in `load` (the pool counted it when it reserved it).
    pub fn holding(load: Arc<AtomicUsize>) -> Self {
        Self(load)
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
