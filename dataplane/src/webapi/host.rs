//! The state a worker keeps beside its isolate, which the ops work on: requests in flight,
//! timers and deadlines, and the JS contexts they run in. Ops reach it through the isolate slot;
//! the worker loop (`isolate::worker`) owns and drives it.
//!
//! Borrow rule: a `RefCell` borrow of [`WorkerState`] is never held while V8 runs JS, because
//! JS calls back into ops that borrow it again.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::time::{DelayQueue, delay_queue};

use crate::job::{Failure, Job, Outcome, SlotGuard, SocketEvent, SocketFrame, SocketLink};
use crate::limits::cpu::LimitKind;

pub(crate) type StateRef = Rc<RefCell<WorkerState>>;

/// The worker state stored in the isolate slot.
pub(crate) fn state(scope: &mut v8::HandleScope) -> StateRef {
    scope
        .get_slot::<StateRef>()
        .expect("every NANO isolate gets its worker state before any JS runs")
        .clone()
}

/// Microtask queues are recycled rather than freed: V8 requires a queue to outlive every context
/// that uses it, and a context lives until the garbage collector takes it. Queues of terminated
/// JS are quarantined until the isolate is replaced.
pub(crate) type QueuePool = Rc<RefCell<Queues>>;

#[derive(Default)]
pub(crate) struct Queues {
    pub free: Vec<OwnedQueue>,
    pub quarantined: Vec<OwnedQueue>,
}

/// A microtask queue, freed as C++ `delete` frees it. The v8 crate (137.3.0) drops a
/// `UniqueRef<MicrotaskQueue>` by running the queue's destructor only
/// (`v8__MicrotaskQueue__DESTRUCT`), and never frees the object `MicrotaskQueue::New` made with
/// `new`: 136 bytes per queue, three or more per worker start, unbounded while workers are reaped
/// and started again. This runs the destructor and then V8's own `operator delete` (the one
/// linked with the `new` that made it). If the crate ever frees the queue itself, this must go
/// back to `UniqueRef`, or the queue is freed twice.
pub(crate) struct OwnedQueue(std::ptr::NonNull<v8::MicrotaskQueue>);

unsafe extern "C" {
    /// `operator delete(void*)` of the C++ library linked into V8.
    #[link_name = "_ZdlPv"]
    fn cxx_operator_delete(ptr: *mut std::ffi::c_void);
}

impl OwnedQueue {
    pub fn new(isolate: &mut v8::Isolate) -> Self {
        let queue = v8::MicrotaskQueue::new(isolate, v8::MicrotasksPolicy::Explicit);
        Self(std::ptr::NonNull::new(queue.into_raw()).expect("MicrotaskQueue::New returns a queue"))
    }
}

impl std::ops::Deref for OwnedQueue {
    type Target = v8::MicrotaskQueue;

    fn deref(&self) -> &v8::MicrotaskQueue {
        // SAFETY: the queue lives until this owner drops it.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for OwnedQueue {
    fn drop(&mut self) {
        // SAFETY: this owner is the queue's only one, and the queue came from `new` in
        // `MicrotaskQueue::New`: its destructor (the crate's `Drop`), then the matching delete.
        unsafe {
            std::ptr::drop_in_place(self.0.as_ptr());
            cxx_operator_delete(self.0.as_ptr().cast());
        }
    }
}

/// One V8 context with the runtime's entry points: per request with context reset, per isolate
/// without.
pub(crate) struct JsContext {
    pub context: v8::Global<v8::Context>,
    pub dispatch: v8::Global<v8::Function>,
    pub fire_timer: v8::Global<v8::Function>,
    pub fetch_done: v8::Global<v8::Function>,
    pub env: v8::Global<v8::Object>,
    queue: Option<OwnedQueue>,
    pool: QueuePool,
    /// Set when JS in this context was terminated: its queue may hold microtasks of the killed
    /// request, which must never run, so it is quarantined instead of recycled.
    pub poisoned: std::cell::Cell<bool>,
}

impl JsContext {
    pub fn new(
        context: v8::Global<v8::Context>,
        dispatch: v8::Global<v8::Function>,
        fire_timer: v8::Global<v8::Function>,
        fetch_done: v8::Global<v8::Function>,
        env: v8::Global<v8::Object>,
        queue: OwnedQueue,
        pool: QueuePool,
    ) -> Self {
        Self {
            context,
            dispatch,
            fire_timer,
            fetch_done,
            env,
            queue: Some(queue),
            pool,
            poisoned: std::cell::Cell::new(false),
        }
    }

    pub fn queue(&self) -> &v8::MicrotaskQueue {
        self.queue
            .as_ref()
            .expect("the queue is only taken on drop")
    }
}

impl Drop for JsContext {
    fn drop(&mut self) {
        if let Some(queue) = self.queue.take() {
            let mut pool = self.pool.borrow_mut();
            if self.poisoned.get() {
                pool.quarantined.push(queue);
            } else {
                pool.free.push(queue);
            }
        }
    }
}

/// The app's end of a streamed body.
struct StreamSender {
    chunks: tokio::sync::mpsc::Sender<Result<bytes::Bytes, String>>,
    failed: Arc<std::sync::atomic::AtomicBool>,
}

impl StreamSender {
    /// Ends the body with an error: in the channel if it has room, else through the flag the
    /// HTTP side reads when the channel closes.
    fn fail(self, error: String) {
        if self.chunks.try_send(Err(error)).is_err() {
            self.failed
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

/// What became of a chunk of a streamed response.
pub(crate) enum StreamSend {
    Sent,
    /// Queued behind a full channel: the JS waits for this ticket (see `stream_chunk`).
    Wait(u64),
    Gone,
}

/// A subrequest that finished (or failed).
pub(crate) struct FetchDone {
    pub request: u64,
    pub fetch: u64,
    pub result: Result<super::fetch::FetchResponse, String>,
}

/// The worker's side of `fetch()`.
pub(crate) struct FetchContext {
    pub done: tokio::sync::mpsc::UnboundedSender<FetchDone>,
    pub policy: super::fetch::Policy,
    pub max_subrequests: u32,
    pub next_id: u64,
}

/// What a request's JS produced, as reported by the ops.
pub(crate) enum Reply {
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// The head of a streamed response; chunks follow through `stream_chunk`.
    StreamStart {
        status: u16,
        headers: Vec<(String, String)>,
        /// The body's exact length, when the app's stream promised one.
        length: Option<u64>,
    },
    Exception {
        message: String,
        stack: String,
    },
    BadResponse {
        message: String,
    },
}

/// A request the worker has accepted and not yet finished.
pub(crate) struct Inflight {
    reply: Option<tokio::sync::oneshot::Sender<Outcome>>,
    pub js: Rc<JsContext>,
    pub path: String,
    deadline: delay_queue::Key,
    /// When the wall-clock limit passes.
    pub deadline_at: std::time::Instant,
    pub started: std::time::Instant,
    /// CPU its JS has used so far, across every entry.
    pub cpu_used: Duration,
    /// Subrequests made so far.
    pub subrequests: u32,
    /// With context reset: the WebAssembly memories its JS made (they go with its context).
    wasm_memories: WasmMemories,
    /// Console bytes written, and lines dropped past the caps.
    log_bytes: usize,
    log_dropped: u64,
    /// Where a streamed response's chunks go.
    body: Option<StreamSender>,
    /// Cancels the request's subrequests when it ends.
    pub cancel: tokio_util::sync::CancellationToken,
    /// The request asked for a WebSocket (the app may answer with one).
    upgrade: bool,
    /// The app accepted a WebSocket: the request lasts as long as the socket, and its CPU
    /// budget counts per event (each message, the close) instead of in total.
    pub socket: bool,
    /// What a live tail will show of it (only while someone tails the app).
    pub tail: Option<Box<TailCapture>>,
    _slot: SlotGuard,
}

/// What a request's tail event collects while it runs.
pub(crate) struct TailCapture {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    logs: Vec<crate::tail::Line>,
    logs_dropped: u64,
    status: Option<u16>,
    outcome: Option<&'static str>,
    pub(crate) exception: Option<crate::tail::Exception>,
    /// For a WebSocket event: which (`message`, `close`), and when it began.
    websocket: Option<(&'static str, std::time::Instant)>,
    /// The probability it was recorded with (`tail::Hub::draw`).
    sampled: f64,
}

impl TailCapture {
    /// Keeps a console line (up to `tail::EVENT_LINES` of `tail::LINE_BYTES`).
    pub fn log(&mut self, level: i32, text: &str) {
        if self.logs.len() < crate::tail::EVENT_LINES {
            self.logs.push(crate::tail::Line {
                level: crate::tail::level_name(level),
                text: crate::tail::cut(text, crate::tail::LINE_BYTES),
            });
        } else {
            self.logs_dropped += 1;
        }
    }
}

/// The worker's end of an accepted WebSocket; it belongs to the request that accepted it, which
/// lasts until the socket closes.
pub(crate) struct SocketEnd {
    pub request: u64,
    out: tokio::sync::mpsc::UnboundedSender<SocketFrame>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
    /// The app or the worker has sent its close frame.
    closing: bool,
}

/// What became of a message the app sends on a WebSocket.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SocketSend {
    Sent,
    /// The socket is closing or gone: nothing is sent.
    Closed,
    /// The client has not read what was sent before: past the bound the socket is closed.
    Overflow,
}

/// Bytes the app may have sent on one socket that the client has not read yet: four of the
/// largest messages a client may send, and at least 1 MiB.
pub(crate) fn max_queued(limits: &nano_config::WebSockets) -> usize {
    (limits.max_message_bytes as usize * 4).max(1024 * 1024)
}

/// Something the worker's event loop must act on when its time comes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Due {
    Timer(u64),
    Deadline(u64),
}

struct Timer {
    key: delay_queue::Key,
    js: Rc<JsContext>,
    /// The request that set it; the timer dies with it.
    request: Option<u64>,
    interval: Option<Duration>,
}

pub(crate) struct WorkerState {
    pub hostname: Arc<str>,
    /// The isolate's memory limit in bytes (unbounded while the app snapshot is made).
    pub memory_limit: usize,
    /// What bytes made by ops are charged to (absent while the app snapshot is made).
    pub budget: Option<Arc<crate::limits::memory::Budget>>,
    /// `nano_cpu_time_ms` of this app (absent while the app snapshot is made).
    pub cpu_time: Option<prometheus::Histogram>,
    /// Where finished subrequests are reported, and what they may do (absent while the app
    /// snapshot is made: no subrequests at start-up).
    pub fetch: Option<FetchContext>,
    pub requests: HashMap<u64, Inflight>,
    /// The request whose JS is running now (set by the worker around every entry into JS).
    pub current_request: Option<u64>,
    /// Without context reset: the isolate's one context.
    pub shared: Option<Rc<JsContext>>,
    pub due: DelayQueue<Due>,
    timers: HashMap<u64, Timer>,
    next_timer: u64,
    /// Timers of the shared context cancelled because their request ended (`timersEnded` op).
    pub ended_timers: Vec<u64>,
    /// Streaming text decoders and compression streams of this isolate's JS.
    pub codecs: super::codec::Codecs,
    /// Without context reset: the WebAssembly memories of the shared context that V8 has not
    /// collected (a FinalizationRegistry reports them); with it, each request counts its own.
    wasm_memories: WasmMemories,
    /// Console bytes this worker may still write now (refilled at `LOG_BYTES_PER_SEC`).
    log_tokens: f64,
    log_refilled: std::time::Instant,
    /// Open WebSockets by id, and where the front reports their messages (absent while the
    /// app snapshot is made).
    pub sockets: HashMap<u64, SocketEnd>,
    next_socket: u64,
    pub socket_events: Option<tokio::sync::mpsc::UnboundedSender<SocketEvent>>,
    pub websockets: nano_config::WebSockets,
    /// The app's live-tail hub (absent while the app snapshot is made).
    pub tail: Option<Arc<crate::tail::Hub>>,
    /// Tail events of requests that ended inside their own JS: published once that stretch's
    /// CPU is known (`publish_tail`).
    tail_pending: Vec<(u64, crate::tail::Event)>,
}

/// WebAssembly memories one isolate may hold at once.
pub const WASM_MEMORIES_PER_ISOLATE: usize = 256;
/// WebAssembly memories the whole node may hold at once. Each one reserves a large stretch of
/// address space in two or three mappings; the kernel allows about 65 000 mappings a process
/// (`vm.max_map_count`), past which V8 aborts the process. This keeps far from it.
pub const WASM_MEMORIES_PER_NODE: usize = 8192;

static NODE_WASM_MEMORIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The WebAssembly memories of one isolate, counted against the isolate's and the node's bounds.
#[derive(Default)]
pub struct WasmMemories {
    open: usize,
}

impl WasmMemories {
    /// Counts a new memory; false (nothing counted) past either bound.
    pub fn open(&mut self) -> bool {
        use std::sync::atomic::Ordering;
        if self.open >= WASM_MEMORIES_PER_ISOLATE {
            return false;
        }
        if NODE_WASM_MEMORIES.fetch_add(1, Ordering::AcqRel) >= WASM_MEMORIES_PER_NODE {
            NODE_WASM_MEMORIES.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        self.open += 1;
        true
    }

    /// A memory was collected.
    pub fn close(&mut self) {
        if self.open > 0 {
            self.open -= 1;
            NODE_WASM_MEMORIES.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

impl Drop for WasmMemories {
    /// The isolate is going away with every memory it still holds.
    fn drop(&mut self) {
        NODE_WASM_MEMORIES.fetch_sub(self.open, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Console output one request may write; past it lines are dropped (and counted).
pub const LOG_BYTES_PER_REQUEST: usize = 256 * 1024;
/// Console output one worker may write per second (and in one burst).
pub const LOG_BYTES_PER_SEC: f64 = 1024.0 * 1024.0;

impl WorkerState {
    pub fn new(hostname: Arc<str>, memory_limit: usize) -> Self {
        Self {
            hostname,
            memory_limit,
            budget: None,
            cpu_time: None,
            fetch: None,
            requests: HashMap::new(),
            current_request: None,
            shared: None,
            due: DelayQueue::new(),
            timers: HashMap::new(),
            next_timer: 1,
            ended_timers: Vec::new(),
            codecs: Default::default(),
            wasm_memories: WasmMemories::default(),
            log_tokens: LOG_BYTES_PER_SEC,
            log_refilled: std::time::Instant::now(),
            sockets: HashMap::new(),
            next_socket: 1,
            socket_events: None,
            websockets: Default::default(),
            tail: None,
            tail_pending: Vec::new(),
        }
    }

    /// Counts a WebAssembly memory the running JS makes; false past the bounds.
    pub fn open_wasm_memory(&mut self) -> bool {
        match self.current_request {
            Some(id) if self.shared.is_none() && self.requests.contains_key(&id) => {
                // The isolate's bound applies to what its requests hold together.
                let held: usize = self.requests.values().map(|r| r.wasm_memories.open).sum();
                held < WASM_MEMORIES_PER_ISOLATE
                    && self
                        .requests
                        .get_mut(&id)
                        .is_some_and(|r| r.wasm_memories.open())
            }
            _ => self.wasm_memories.open(),
        }
    }

    /// A memory of the shared context was collected (with context reset, a request's memories
    /// are released when it ends, with its context).
    pub fn close_wasm_memory(&mut self) {
        if self.shared.is_some() {
            self.wasm_memories.close();
        }
    }

    /// Whether a console line of `len` bytes may be written now: within what the running request
    /// may log and what this worker may log per second. A dropped line is counted, and reported
    /// when its request ends.
    pub fn admit_log(&mut self, len: usize) -> bool {
        let now = std::time::Instant::now();
        let refill = now.duration_since(self.log_refilled).as_secs_f64() * LOG_BYTES_PER_SEC;
        self.log_tokens = (self.log_tokens + refill).min(LOG_BYTES_PER_SEC);
        self.log_refilled = now;
        let request = self
            .current_request
            .and_then(|id| self.requests.get_mut(&id));
        let within_request = request
            .as_ref()
            .is_none_or(|r| r.log_bytes + len <= LOG_BYTES_PER_REQUEST);
        let admitted = within_request && self.log_tokens >= len as f64;
        if let Some(request) = request {
            if admitted {
                request.log_bytes += len;
            } else {
                request.log_dropped += 1;
            }
        }
        if admitted {
            self.log_tokens -= len as f64;
        }
        admitted
    }

    /// Registers a job; the caller then runs its JS.
    pub fn accept(&mut self, job: Job, js: Rc<JsContext>) -> u64 {
        let id = job.id;
        let now = std::time::Instant::now();
        let deadline = self.due.insert(Due::Deadline(id), job.timeout);
        let path = job.path().to_owned();
        let inflight = Inflight {
            reply: Some(job.reply),
            js,
            path,
            deadline,
            deadline_at: now + job.timeout,
            started: now,
            cpu_used: Duration::ZERO,
            subrequests: 0,
            wasm_memories: WasmMemories::default(),
            log_bytes: 0,
            log_dropped: 0,
            body: None,
            cancel: tokio_util::sync::CancellationToken::new(),
            upgrade: job.upgrade,
            socket: false,
            tail: self
                .tail
                .as_ref()
                .and_then(|hub| hub.draw())
                .map(|sampled| {
                    Box::new(TailCapture {
                        sampled,
                        method: job.method.clone(),
                        url: job.url.clone(),
                        headers: crate::tail::masked_headers(&job.headers),
                        logs: Vec::new(),
                        logs_dropped: 0,
                        status: None,
                        outcome: None,
                        exception: None,
                        websocket: None,
                    })
                }),
            _slot: job.slot,
        };
        self.requests.insert(id, inflight);
        id
    }

    /// Sends a failure the runtime decided on (a limit, a reset) and releases the request.
    pub fn fail(&mut self, id: u64, failure: Failure) {
        self.end(id, failure);
    }

    /// Sends the request's outcome to the HTTP side (once; later replies are ignored).
    pub fn reply(&mut self, id: u64, reply: Reply) {
        let Some(inflight) = self.requests.get_mut(&id) else {
            return;
        };
        let Some(sender) = inflight.reply.take() else {
            return;
        };
        if let Some(tail) = &mut inflight.tail {
            let (status, outcome) = match &reply {
                Reply::Response { status, .. } | Reply::StreamStart { status, .. } => {
                    (*status, "ok")
                }
                Reply::Exception { message, stack } => {
                    tail.exception = Some(crate::tail::Exception {
                        message: crate::tail::cut(message, crate::tail::LINE_BYTES),
                        stack: crate::tail::cut(stack, crate::tail::STACK_BYTES),
                    });
                    (500, "exception")
                }
                Reply::BadResponse { message } => {
                    tail.exception = Some(crate::tail::Exception {
                        message: crate::tail::cut(message, crate::tail::LINE_BYTES),
                        stack: String::new(),
                    });
                    (500, "bad-response")
                }
            };
            tail.status = Some(status);
            tail.outcome = Some(outcome);
        }
        let outcome = match reply {
            Reply::Response {
                status,
                headers,
                body,
            } => Outcome::Response {
                status,
                headers,
                body: crate::job::ResponseBody::Full(body.into()),
            },
            Reply::StreamStart {
                status,
                headers,
                length,
            } => {
                let (chunks, receiver) = tokio::sync::mpsc::channel(crate::job::STREAM_CHUNKS);
                let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
                inflight.body = Some(StreamSender {
                    chunks,
                    failed: failed.clone(),
                });
                Outcome::Response {
                    status,
                    headers,
                    body: crate::job::ResponseBody::Stream(crate::job::StreamBody {
                        chunks: receiver,
                        failed,
                        length,
                    }),
                }
            }
            Reply::Exception { message, stack } => {
                tracing::warn!(
                    hostname = %self.hostname, path = %inflight.path, error = %message, stack = ?stack,
                    "handler threw an exception"
                );
                Outcome::Failed(Failure::HandlerException { message })
            }
            Reply::BadResponse { message } => {
                tracing::warn!(
                    hostname = %self.hostname, path = %inflight.path, error = %message,
                    "handler returned something that is not a Response"
                );
                Outcome::Failed(Failure::BadResponse { message })
            }
        };
        // The client may have gone away; its work simply ends here.
        let _ = sender.send(outcome);
    }

    /// A chunk of a streamed response. With room in the channel it is sent now; when the client
    /// reads slower than the app writes, a local task waits for room, sends it, and reports
    /// through the subrequest channel under the returned ticket (the JS waits on it, as on a
    /// fetch). `Gone` if the client went away (the request is dropped).
    pub fn stream_chunk(&mut self, id: u64, chunk: Vec<u8>) -> StreamSend {
        use tokio::sync::mpsc::error::TrySendError;
        let Some(inflight) = self.requests.get_mut(&id) else {
            return StreamSend::Gone;
        };
        let Some(body) = &inflight.body else {
            return StreamSend::Gone;
        };
        let chunk = match body.chunks.try_send(Ok(chunk.into())) {
            Ok(()) => return StreamSend::Sent,
            Err(TrySendError::Closed(_)) => {
                self.cancel(id);
                return StreamSend::Gone;
            }
            Err(TrySendError::Full(chunk)) => chunk,
        };
        let (body, cancel) = (body.chunks.clone(), inflight.cancel.clone());
        let Some(fetch) = &mut self.fetch else {
            return StreamSend::Gone;
        };
        fetch.next_id += 1;
        let (ticket, done) = (fetch.next_id, fetch.done.clone());
        tokio::task::spawn_local(async move {
            tokio::select! {
                sent = body.send(chunk) => if sent.is_err() { return },
                _ = cancel.cancelled() => return,
            }
            let _ = done.send(FetchDone {
                request: id,
                fetch: ticket,
                result: Err(String::new()),
            });
        });
        StreamSend::Wait(ticket)
    }

    /// The streamed response is complete (or failed with `error`).
    pub fn stream_end(&mut self, id: u64, error: Option<String>) {
        if let Some(body) = self.requests.get_mut(&id).and_then(|r| r.body.take())
            && let Some(error) = error
        {
            body.fail(error);
        }
    }

    /// The app accepted a WebSocket for request `id` (a 101 with the client end of a pair): the
    /// front gets the socket with the 101, and the request lasts until the socket closes, under
    /// the session limit instead of `timeout_secs`. `Err` (the request answered) when the
    /// request is not a WebSocket upgrade.
    pub fn accept_socket(&mut self, id: u64, headers: Vec<(String, String)>) -> Result<u64, ()> {
        let Some(inflight) = self.requests.get_mut(&id) else {
            return Err(());
        };
        let Some(events) = self.socket_events.clone() else {
            return Err(());
        };
        if !inflight.upgrade {
            self.reply(
                id,
                Reply::BadResponse {
                    message: "the fetch handler answered 101 with a WebSocket, but the request \
                              is not a WebSocket upgrade (GET with Upgrade: websocket)"
                        .into(),
                },
            );
            return Err(());
        }
        let Some(sender) = inflight.reply.take() else {
            return Err(());
        };
        // The session limit replaces the request's wall-clock limit; the front closes the
        // socket at it, this is the backstop.
        let session =
            Duration::from_secs(self.websockets.max_session_secs.into()) + SOCKET_BACKSTOP;
        self.due.try_remove(&inflight.deadline);
        inflight.socket = true;
        inflight.deadline = self.due.insert(Due::Deadline(id), session);
        inflight.deadline_at = std::time::Instant::now() + session;
        let link = self.add_socket(id, events);
        let socket = link.id;
        if sender
            .send(Outcome::Upgrade {
                headers,
                socket: link,
            })
            .is_err()
        {
            // The client went away before the 101: the socket ends at once.
            self.sockets.remove(&socket);
            return Err(());
        }
        Ok(socket)
    }

    /// A WebSocket the running request's JS opens (`new WebSocket(url)`): counted as one of its
    /// subrequests, ended with it. Answers the link for the socket's task and the SSRF policy
    /// to connect under; `Err` (a message for the app) outside a request or past the cap.
    pub fn open_socket(&mut self) -> Result<(SocketLink, super::fetch::Policy), String> {
        let request = self
            .current_request
            .filter(|r| *r != 0)
            .ok_or("it can only be opened while handling a request")?;
        let (Some(fetch), Some(events)) = (self.fetch.as_ref(), self.socket_events.clone()) else {
            return Err("it is not available during start-up".into());
        };
        let (limit, policy) = (fetch.max_subrequests, fetch.policy.clone());
        let inflight = self
            .requests
            .get_mut(&request)
            .ok_or("the request has already finished")?;
        if inflight.subrequests >= limit {
            return Err(format!(
                "this request already made {limit} subrequests, the limit (apps[].fetch.max_subrequests)"
            ));
        }
        inflight.subrequests += 1;
        Ok((self.add_socket(request, events), policy))
    }

    /// Registers a new socket of `request`; the link is the other end, for the socket's task.
    fn add_socket(
        &mut self,
        request: u64,
        events: tokio::sync::mpsc::UnboundedSender<SocketEvent>,
    ) -> SocketLink {
        let socket = self.next_socket;
        self.next_socket += 1;
        let (out, outgoing) = tokio::sync::mpsc::unbounded_channel();
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        self.sockets.insert(
            socket,
            SocketEnd {
                request,
                out,
                queued: queued.clone(),
                closing: false,
            },
        );
        SocketLink {
            id: socket,
            events,
            outgoing,
            queued,
            limits: self.websockets.clone(),
            hostname: self.hostname.clone(),
        }
    }

    /// A message (or the close) the app sends on `socket`.
    pub fn socket_send(&mut self, socket: u64, frame: SocketFrame) -> SocketSend {
        use std::sync::atomic::Ordering;
        let limit = max_queued(&self.websockets);
        let Some(end) = self.sockets.get_mut(&socket) else {
            return SocketSend::Closed;
        };
        if end.closing {
            return SocketSend::Closed;
        }
        let closing = matches!(frame, SocketFrame::Close { .. });
        if !closing {
            let len = frame.len();
            if end.queued.load(Ordering::Acquire) + len > limit {
                tracing::warn!(
                    hostname = %self.hostname, queued_bytes = end.queued.load(Ordering::Acquire),
                    limit_bytes = limit,
                    "closing a WebSocket whose client does not read what the app sends"
                );
                self.close_socket(socket, 1011, "the client does not read its messages");
                return SocketSend::Overflow;
            }
            end.queued.fetch_add(len, Ordering::AcqRel);
        }
        end.closing = closing;
        if end.out.send(frame).is_err() {
            return SocketSend::Closed;
        }
        SocketSend::Sent
    }

    /// Closes `socket` from this side (the front sends the close frame and reports the end).
    pub fn close_socket(&mut self, socket: u64, code: u16, reason: &str) {
        if let Some(end) = self.sockets.get_mut(&socket)
            && !end.closing
        {
            end.closing = true;
            let _ = end.out.send(SocketFrame::Close {
                code,
                reason: reason.to_owned(),
                clean: true,
            });
        }
    }

    /// Whether a request other than an open socket waiting for its next event is in flight.
    pub fn has_active_requests(&self) -> bool {
        self.requests.values().any(|r| !r.socket)
    }

    /// Closes every open socket (the worker is going away): 1001, going away.
    pub fn close_sockets(&mut self, reason: &str) {
        let open: Vec<u64> = self.sockets.keys().copied().collect();
        for socket in open {
            self.close_socket(socket, 1001, reason);
        }
    }

    /// The request's JS is done (response sent and `waitUntil` work settled): release it.
    pub fn finish(&mut self, id: u64) {
        self.end(id, Failure::NoResponse);
    }

    /// The client went away: drop the request's work and its slot.
    pub fn cancel(&mut self, id: u64) {
        let Some(inflight) = self.requests.get_mut(&id) else {
            return;
        };
        let path = inflight.path.clone();
        if let Some(tail) = &mut inflight.tail
            && tail.outcome.is_none()
        {
            tail.outcome = Some("client-gone");
            tail.status = Some(499);
        }
        self.end(id, Failure::NoResponse);
        // Logged once the slot is free, so whoever reads the log can rely on it.
        tracing::debug!(hostname = %self.hostname, path = %path, "client disconnected");
    }

    /// The request's wall-clock deadline passed while it waited (not while its JS ran).
    pub fn expire(&mut self, id: u64, limit: Duration) {
        let Some(inflight) = self.requests.get(&id) else {
            return;
        };
        let (used, path) = (inflight.started.elapsed(), inflight.path.clone());
        crate::metrics::METRICS
            .terminations
            .with_label_values(&[&self.hostname, "timeout"])
            .inc();
        self.end(
            id,
            Failure::Limit {
                kind: LimitKind::Wall,
                limit,
                used,
            },
        );
        // Logged once the slot is free, so whoever reads the log can rely on it.
        tracing::warn!(
            hostname = %self.hostname, path = %path, limit = %"timeout",
            limit_ms = limit.as_millis() as u64, used_ms = used.as_millis() as u64,
            "request terminated"
        );
    }

    fn end(&mut self, id: u64, unanswered: Failure) {
        let Some(mut inflight) = self.requests.remove(&id) else {
            return;
        };
        if let Some(tail) = inflight.tail.take() {
            let timing = (inflight.started, inflight.cpu_used);
            self.tail_event(id, timing, *tail, &unanswered);
        }
        // Its sockets end with it: 1011 if a limit or a failure ended it, 1001 if the worker
        // is going away.
        let (code, reason) = match &unanswered {
            Failure::Unavailable { .. } => (1001, "the app's worker is going away"),
            Failure::NoResponse => (1000, ""),
            _ => (
                1011,
                "the app's handler ended with an error or past a limit",
            ),
        };
        inflight.cancel.cancel();
        if let Some(body) = inflight.body.take() {
            body.fail("the response stream ended before it was complete".into());
        }
        self.due.try_remove(&inflight.deadline);
        if inflight.log_dropped > 0 {
            crate::metrics::METRICS
                .console_dropped
                .with_label_values(&[&self.hostname])
                .inc_by(inflight.log_dropped);
            tracing::warn!(
                hostname = %self.hostname, path = %inflight.path, dropped_lines = inflight.log_dropped,
                "console output dropped: over {} KiB for the request or {} KiB/s for the worker",
                LOG_BYTES_PER_REQUEST / 1024, LOG_BYTES_PER_SEC as usize / 1024
            );
        }
        // A request that ends inside its own JS is measured by the worker when that JS returns.
        if self.current_request != Some(id)
            && let Some(histogram) = &self.cpu_time
        {
            histogram.observe(inflight.cpu_used.as_secs_f64() * 1000.0);
        }
        if let Some(sender) = inflight.reply.take() {
            let _ = sender.send(Outcome::Failed(unanswered));
        }
        let owned: Vec<u64> = self
            .timers
            .iter()
            .filter(|(_, t)| t.request == Some(id))
            .map(|(id, _)| *id)
            .collect();
        for timer in owned {
            self.cancel_timer(timer);
            if self.shared.is_some() {
                self.ended_timers.push(timer);
            }
        }
        self.codecs.close_request(id);
        let owned: Vec<u64> = self
            .sockets
            .iter()
            .filter(|(_, end)| end.request == id)
            .map(|(socket, _)| *socket)
            .collect();
        for socket in owned {
            self.close_socket(socket, code, reason);
            self.sockets.remove(&socket);
        }
    }

    /// Builds the tail event of a request that ended (`unanswered`: why, if it did not answer
    /// or a limit ended it); publishes it now, or once its last stretch of JS is counted.
    fn tail_event(
        &mut self,
        id: u64,
        (started, cpu_used): (std::time::Instant, Duration),
        tail: TailCapture,
        unanswered: &Failure,
    ) {
        let killed = match unanswered {
            Failure::Limit {
                kind: LimitKind::Cpu,
                ..
            } => Some("cpu-limit"),
            Failure::Limit {
                kind: LimitKind::Memory,
                ..
            }
            | Failure::Memory { .. } => Some("memory-limit"),
            Failure::Limit {
                kind: LimitKind::Wall,
                ..
            } => Some("timeout"),
            Failure::Unavailable { .. } => Some("unavailable"),
            _ => None,
        }
        .map(|outcome| (outcome, unanswered.http_status()));
        let (outcome, status) = match (killed, tail.outcome) {
            (Some(killed), _) => killed,
            (None, Some(outcome)) => (outcome, tail.status.unwrap_or(500)),
            (None, None) => ("no-response", 500),
        };
        let event = crate::tail::Event {
            time_ms: crate::job::stats::now_ms(),
            hostname: self.hostname.to_string(),
            method: tail.method,
            url: tail.url,
            status,
            wall_ms: tail
                .websocket
                .map_or(started, |(_, began)| began)
                .elapsed()
                .as_secs_f64()
                * 1000.0,
            cpu_ms: cpu_used.as_secs_f64() * 1000.0,
            outcome,
            exception: tail.exception,
            logs: tail.logs,
            logs_dropped: tail.logs_dropped,
            headers: tail.headers,
            websocket: tail.websocket.map(|(kind, _)| kind),
            sampled: tail.sampled,
        };
        if self.current_request == Some(id) {
            self.tail_pending.push((id, event));
        } else if let Some(hub) = &self.tail {
            hub.publish(event);
        }
    }

    /// While someone tails the app: starts the tail event of one event of `request`'s open
    /// WebSocket (`message` or `close`), which the request's next stretch of JS fills in.
    pub fn tail_socket_event(&mut self, request: u64, kind: &'static str) {
        let Some(sampled) = self.tail.as_ref().and_then(|hub| hub.draw()) else {
            return;
        };
        let hostname = self.hostname.clone();
        // Only accepted sockets: a socket the app opened belongs to a request with its own
        // event.
        if let Some(inflight) = self.requests.get_mut(&request).filter(|r| r.socket) {
            inflight.tail = Some(Box::new(TailCapture {
                method: "GET".into(),
                url: format!("http://{hostname}{}", inflight.path),
                headers: Vec::new(),
                logs: Vec::new(),
                logs_dropped: 0,
                status: Some(101),
                outcome: Some("ok"),
                exception: None,
                websocket: Some((kind, std::time::Instant::now())),
                sampled,
            }));
        }
    }

    /// Publishes the tail event of a WebSocket event whose JS has returned (the socket's
    /// request goes on; if the event ended it, its end published the event).
    pub fn finish_tail_socket_event(&mut self, request: u64) {
        let Some(inflight) = self.requests.get_mut(&request).filter(|r| r.socket) else {
            return;
        };
        let Some(tail) = inflight.tail.take() else {
            return;
        };
        let timing = (inflight.started, inflight.cpu_used);
        self.tail_event(request, timing, *tail, &Failure::NoResponse);
    }

    /// Publishes the tail event of `request`, which ended inside the stretch of JS that just
    /// returned, adding that stretch's CPU.
    pub fn publish_tail(&mut self, request: u64, stretch: Duration) {
        if self.tail_pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.tail_pending);
        for (id, mut event) in pending {
            if id == request {
                event.cpu_ms += stretch.as_secs_f64() * 1000.0;
            }
            if let Some(hub) = &self.tail {
                hub.publish(event);
            }
        }
    }

    /// The request that owns what the running JS opens now: with context reset, the request
    /// (it dies with it); without, none (the isolate's one context keeps it).
    pub fn owner(&self) -> Option<u64> {
        if self.shared.is_some() {
            None
        } else {
            self.current_request
        }
    }

    /// Cancels every timer that would fire into `js` (a context being thrown away).
    pub fn cancel_timers_of(&mut self, js: &Rc<JsContext>) {
        let doomed: Vec<u64> = self
            .timers
            .iter()
            .filter(|(_, t)| Rc::ptr_eq(&t.js, js))
            .map(|(id, _)| *id)
            .collect();
        for timer in doomed {
            self.cancel_timer(timer);
        }
    }

    pub fn cancel_timer(&mut self, id: u64) {
        if let Some(timer) = self.timers.remove(&id) {
            self.due.try_remove(&timer.key);
        }
    }

    /// The context a due timer fires in, rescheduling it if it repeats.
    pub fn take_timer(&mut self, id: u64) -> Option<(Rc<JsContext>, Option<u64>)> {
        let timer = self.timers.get_mut(&id)?;
        let found = (timer.js.clone(), timer.request);
        match timer.interval {
            Some(every) => timer.key = self.due.insert(Due::Timer(id), every.max(MIN_INTERVAL)),
            None => {
                self.timers.remove(&id);
            }
        }
        Some(found)
    }

    /// Stops everything still in flight (used when the worker exits).
    pub fn clear(&mut self) {
        let ids: Vec<u64> = self.requests.keys().copied().collect();
        for id in ids {
            self.end(
                id,
                Failure::Unavailable {
                    reason: "the worker is shutting down".into(),
                },
            );
        }
        self.timers.clear();
        self.due.clear();
        self.shared = None;
    }
}

/// How long past `apps[].websockets.max_session_secs` a socket's request may last before the
/// worker ends it itself (the front closes the socket at the limit).
const SOCKET_BACKSTOP: Duration = Duration::from_secs(10);

/// `setInterval(f, 0)` still yields to other work.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Starts a timer for the JS running now. A timer belongs to the request whose JS set it and is
/// cancelled when that request ends (its response sent and its `waitUntil` work settled), with
/// or without context reset, as on Workers: no tenant JS runs outside a request's budgets.
/// Timers set while no request runs (at module evaluation, inside the snapshot) never fire.
pub(crate) fn start_timer(scope: &mut v8::HandleScope, delay: Duration, repeat: bool) -> u64 {
    let state = state(scope);
    let mut state = state.borrow_mut();
    let id = state.next_timer;
    state.next_timer += 1;
    let owner = state.current_request.and_then(|request| {
        let inflight = state.requests.get(&request)?;
        let js = state.shared.clone().unwrap_or_else(|| inflight.js.clone());
        Some((js, request))
    });
    let Some((js, request)) = owner else {
        tracing::warn!(hostname = %state.hostname, "a timer set outside a request never fires");
        return id;
    };
    let key = state.due.insert(Due::Timer(id), delay);
    let interval = repeat.then_some(delay);
    state.timers.insert(
        id,
        Timer {
            key,
            js,
            request: Some(request),
            interval,
        },
    );
    id
}
