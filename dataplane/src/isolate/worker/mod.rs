//! The worker thread: one isolate, one single-threaded event loop, the limits around every entry
//! into JS, and the clean-up after a termination.
//!
//! Every entry into a request's JS (dispatch, a timer, the microtasks that follow) is wrapped by
//! [`Worker::run_js`]: the worker clock is armed with what is left of the request's CPU and wall
//! budgets, and the context's microtasks are drained inside the same armed stretch. If a limit
//! fires, the stack is unwound, the termination is cancelled, and the request's context (with its
//! microtask queue, which may still hold the killed request's work) is thrown away — so nothing of
//! the killed request ever runs again.
//!
//! Here: the event loop and requests. `js`: entering JS under the limits, terminations.
//! `memory`: pressure, recycling, eviction. `context`: making contexts.

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

mod context;
mod js;
mod memory;

use super::{AppImage, get_function};
use crate::job::stats::now_ms;
use crate::job::{Command, Failure, IsolateState, Job, WorkerStats, close_slots};
use crate::limits::cpu::{LimitKind, WorkerClock};
use crate::limits::memory::{Budget, Pressure};
use crate::metrics::METRICS;
use crate::webapi;
use crate::webapi::host::{self, Due, JsContext, OwnedQueue, QueuePool, StateRef, WorkerState};

const PRESENT: &str = "the isolate is only absent while it is being replaced";

/// The `.wasm` imports of the app, compiled once per isolate, keyed by the SHA-256 of their bytes
/// (two imports of the same binary share one compiled module).
type WasmCache = RefCell<std::collections::HashMap<String, v8::CompiledWasmModule>>;

/// How often, at most, a busy worker reads its heap statistics.
const STATS_EVERY: Duration = Duration::from_millis(5);

/// Contexts a reset-on worker makes ahead while idle (each about 0.2 MB of RSS, counted in its
/// footprint). Two, not three: a third made a running worker 0.21 MB (10%) larger than workerd's
/// and saved only the third request of a burst of three about 0.3 ms (RESULTS, session 16).
const MAX_SPARE_CONTEXTS: usize = 2;

/// `first` and whatever else is already due, in the order it fell due (timers set for the same
/// moment in the order they were set, as the HTML standard and Node fire them). The queue hands
/// out what falls due within one of its millisecond slots last-in first-out: `setTimeout(a, 0);
/// setTimeout(b, 0)` ran `b` first. Firing one may cancel a later one; its firing then finds it
/// gone.
fn due_in_order(state: &StateRef, first: tokio_util::time::delay_queue::Expired<Due>) -> Vec<Due> {
    let mut due = vec![first];
    // Polled without a waker: the loop polls the queue again, with its own, before it waits.
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    while let std::task::Poll::Ready(Some(next)) = state.borrow_mut().due.poll_expired(&mut cx) {
        due.push(next);
    }
    let sequence = |due: &Due| match *due {
        Due::Timer(id) | Due::Deadline(id) => id,
    };
    due.sort_by_key(|expired| (expired.deadline(), sequence(expired.get_ref())));
    due.into_iter()
        .map(|expired| expired.into_inner())
        .collect()
}

/// How often an idle worker runs V8's pending foreground tasks.
const IDLE_PLATFORM_POLL: Duration = Duration::from_secs(2);

/// How long a worker stays idle before it collects the garbage its requests left (with context
/// reset, every request leaves its context behind), if there is enough of it (see
/// [`IDLE_GARBAGE_MIN`]). Short, so a burst's dead contexts are not held for long; the
/// collection (a few ms) only runs on a worker with nothing to do, at most once per idle spell.
const IDLE_COLLECT_AFTER: Duration = Duration::from_millis(250);

/// How much the heap must have grown since the isolate started or last collected before an idle
/// worker collects (its used heap, or its committed heap at its peak: pages V8's own
/// collections freed stay in its page pool until a memory-reducing one): a full collection
/// costs a few ms, so an app that gets a request now and then pays for one every few requests,
/// not every time (about five dead contexts of a small app).
const IDLE_GARBAGE_MIN: usize = 1024 * 1024;

/// How often a worker with requests in flight runs V8's pending foreground tasks.
const PLATFORM_POLL: Duration = Duration::from_millis(2);

/// Quarantined microtask queues (of terminated JS) tolerated before the isolate is replaced.
const MAX_QUARANTINED: usize = 32;

struct Worker {
    image: Arc<AppImage>,
    wasm: WasmCache,
    stats: Arc<WorkerStats>,
    fetch_tx: mpsc::UnboundedSender<host::FetchDone>,
    state: StateRef,
    queues: QueuePool,
    budget: Arc<Budget>,
    clock: WorkerClock,
    /// Replace the isolate as soon as no request is in flight (critical memory, too many
    /// quarantined queues).
    recycle: Option<&'static str>,
    cpu_budget: Duration,
    /// Last garbage collection asked for by memory pressure (at most one a second) or by the
    /// worker going idle.
    last_gc: Instant,
    /// When the worker last published its heap statistics.
    last_stats: Instant,
    /// With context reset: the next requests' contexts, made while the worker had nothing to
    /// do (one after every event, more up to [`MAX_SPARE_CONTEXTS`] while idle).
    spare: Vec<Rc<JsContext>>,
    /// The node's memory budget asked this worker to end once it is idle.
    evict: bool,
    /// Heap used after the isolate started or after its last idle collection: what has grown
    /// past it is mostly garbage (see [`IDLE_GARBAGE_MIN`]).
    collected_heap: usize,
    /// V8's committed heap then.
    collected_physical: usize,
    /// V8's committed heap at its highest since the isolate started or last gave its free pages
    /// back (see [`Worker::pages_given_back`]): what a collection frees stays resident in V8's
    /// page pool until then, so this, not the committed heap of the moment, is what the heap
    /// costs the machine.
    physical_peak: usize,
    // Dropped after everything above, which may hold V8 handles or queues of this isolate.
    // `None` only while the isolate is being replaced.
    isolate: Option<v8::OwnedIsolate>,
    /// The app snapshot the isolate reads contexts from (borrowed by V8): dropped after it.
    _snapshot: Arc<[u8]>,
}

/// The worker thread's body: runs until the pool closes its channel and in-flight work is done.
pub(crate) fn run_worker(
    image: Arc<AppImage>,
    stats: Arc<WorkerStats>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let span = tracing::info_span!("worker", hostname = %image.hostname, worker = stats.worker);
    let _entered = span.enter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    let (fetch_tx, mut fetch_done) = mpsc::unbounded_channel();
    let (socket_tx, mut socket_events) = mpsc::unbounded_channel();
    let mut worker = match Worker::new(image, stats.clone(), fetch_tx) {
        Ok(worker) => worker,
        Err(err) => {
            tracing::error!(error = %err, "worker stopped; the next request starts another");
            stop_unstarted(&stats, commands);
            return;
        }
    };
    tracing::debug!("worker started");
    worker.state.borrow_mut().socket_events = Some(socket_tx);

    // A worker without requests for this long ends (isolate and thread).
    let idle_timeout = Duration::from_secs(worker.image.limits.idle_timeout_secs.into());
    // Why the worker ends before its pool closes, if it does.
    let mut ending = None;
    // Subrequests run as local tasks on this thread's runtime.
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let mut closed = false;
        // Counts from the last event while the worker is idle.
        let idle_timer = tokio::time::sleep(idle_timeout);
        tokio::pin!(idle_timer);
        // V8 does not say when background work (async WebAssembly compilation) leaves a task for
        // this isolate, so while requests are in flight the loop looks every couple of ms.
        let mut platform_tick = tokio::time::interval(PLATFORM_POLL);
        platform_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // An idle worker still runs V8's delayed tasks now and then: memory reduction, and the
        // release of pages other isolates left in V8's process-wide pool when they were
        // disposed (V8 posts that to a live isolate's task runner, which may be this one).
        let mut idle_pump = tokio::time::interval(IDLE_PLATFORM_POLL);
        idle_pump.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_event = tokio::time::Instant::now();
        // Fires IDLE_COLLECT_AFTER into an idle spell; `collect_due` is cleared once it has.
        let collect_timer = tokio::time::sleep(IDLE_COLLECT_AFTER);
        tokio::pin!(collect_timer);
        let mut collect_due = true;
        loop {
            if closed && worker.state.borrow().requests.is_empty() {
                break;
            }
            let has_due = !worker.state.borrow().due.is_empty();
            let busy = !worker.state.borrow().requests.is_empty();
            // Busy with more than open WebSockets waiting for their next message.
            let active = worker.state.borrow().has_active_requests();
            if worker.isolate.is_none() {
                // Its isolate could not be made again (logged): the worker ends.
                break;
            }
            let idle = !busy && !has_due && !closed;
            if idle && std::mem::take(&mut worker.evict) && close_slots(&worker.stats.load) {
                ending = Some(IsolateState::Evicted);
                break;
            }
            if idle {
                idle_timer.as_mut().reset(last_event + idle_timeout);
                if collect_due {
                    collect_timer.as_mut().reset(last_event + IDLE_COLLECT_AFTER);
                }
            }
            let mut event = true;
            let state = worker.state.clone();
            tokio::select! {
                Some(expired) = poll_fn(|cx| state.borrow_mut().due.poll_expired(cx)), if has_due => {
                    for due in due_in_order(&state, expired) {
                        match due {
                            Due::Timer(id) => worker.fire_timer(id),
                            Due::Deadline(id) => {
                                let limit = Duration::from_secs(worker.image.limits.timeout_secs.into());
                                state.borrow_mut().expire(id, limit);
                            }
                        }
                    }
                }
                command = commands.recv(), if !closed => match command {
                    Some(command) => {
                        worker.handle(command);
                        // Take whatever else already waits without another trip through the
                        // scheduler: under load this saves a poll and a wake-up per request.
                        while let Ok(command) = commands.try_recv() {
                            worker.handle(command);
                        }
                    }
                    None => {
                        closed = true;
                        // Reloaded, removed or shutting down: open sockets go away (1001), so
                        // their requests end and the worker can stop.
                        worker
                            .state
                            .borrow_mut()
                            .close_sockets("the app was reloaded or the node is shutting down");
                    }
                },
                _ = platform_tick.tick(), if active => worker.pump_platform(),
                _ = idle_pump.tick(), if !active && !closed => {
                    worker.pump_platform();
                    event = false;
                }
                _ = &mut collect_timer, if idle && collect_due => {
                    collect_due = false;
                    worker.collect_idle_garbage();
                    event = false;
                }
                // Always ready, so select! may pick it over another ready branch (it picks at
                // random); it then makes no spare if a job is waiting, and the loop comes back.
                _ = std::future::ready(()), if idle && worker.wants_spare_context() => {
                    if commands.is_empty() {
                        worker.add_spare_context();
                    }
                    event = false;
                }
                Some(done) = fetch_done.recv() => worker.fetch_done(done),
                Some(event) = socket_events.recv() => worker.socket_event(event),
                _ = &mut idle_timer, if idle => {
                    // Unless a request has just taken a slot: then its job is on the way.
                    if close_slots(&worker.stats.load) {
                        ending = Some(IsolateState::Reaped);
                        break;
                    }
                }
                else => break,
            }
            if event {
                last_event = tokio::time::Instant::now();
                collect_due = true;
            }
            worker.after_event();
        }
    });

    if worker.isolate.is_none() {
        let stats = worker.stats.clone();
        drop(worker);
        stop_unstarted(&stats, commands);
        return;
    }
    if let Some(state) = ending {
        worker.end(state);
        drop(worker);
        // Hand the worker's freed memory back to the system now: glibc keeps freed chunks in
        // the arena of the thread that used them, and this thread is about to end.
        // SAFETY: malloc_trim only walks the allocator's own free lists.
        unsafe {
            libc::malloc_trim(0);
        }
        tracing::debug!("worker ended");
        return;
    }
    worker.state.borrow_mut().clear();
    if worker.stats.stuck.load(Ordering::Acquire) {
        METRICS
            .stuck_workers
            .with_label_values(&[&worker.image.hostname])
            .dec();
        tracing::warn!("a worker replaced while stuck has finished and exits");
    }
    tracing::debug!("worker stopped");
}

/// A worker that has no isolate: answers what waits for it with "worker stopped" and closes its
/// slots, so the pool starts a fresh worker for the next request.
fn stop_unstarted(stats: &WorkerStats, mut commands: mpsc::UnboundedReceiver<Command>) {
    commands.close();
    loop {
        while commands.try_recv().is_ok() {}
        if close_slots(&stats.load) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    stats.set_state(IsolateState::Evicted);
}

impl Worker {
    fn isolate(&mut self) -> &mut v8::OwnedIsolate {
        self.isolate.as_mut().expect(PRESENT)
    }

    fn new(
        image: Arc<AppImage>,
        stats: Arc<WorkerStats>,
        fetch_tx: mpsc::UnboundedSender<host::FetchDone>,
    ) -> Result<Self, String> {
        let budget = Arc::new(Budget::new(image.limits.memory_mb));
        let (mut isolate, snapshot) = image
            .new_isolate(&budget)
            .map_err(|err| format!("cannot start the app's isolate: {err}"))?;
        let clock = WorkerClock::new(isolate.thread_safe_handle())
            .map_err(|err| format!("cannot start the worker's CPU timers: {err}"))?;
        budget.arm(clock.tripwire());
        let mut worker_state = WorkerState::new(image.hostname.clone(), budget.limit);
        worker_state.budget = Some(budget.clone());
        worker_state.websockets = image.websockets.clone();
        worker_state.tail = Some(crate::tail::hub(&image.hostname));
        worker_state.cpu_time = crate::metrics::recording()
            .then(|| METRICS.cpu_time_ms.with_label_values(&[&image.hostname]));
        worker_state.fetch = Some(host::FetchContext {
            done: fetch_tx.clone(),
            policy: crate::webapi::fetch::Policy {
                allow_private_networks: image.fetch.allow_private_networks,
                max_response_bytes: image.fetch.max_response_bytes,
                budget: Some(budget.clone()),
                non_public: crate::webapi::fetch::is_private,
            },
            max_subrequests: image.fetch.max_subrequests,
            next_id: 0,
        });
        let state: StateRef = Rc::new(RefCell::new(worker_state));
        isolate.set_slot(state.clone());
        let queues: QueuePool = Rc::default();
        let cpu_budget = Duration::from_millis(image.limits.cpu_ms.into());
        stats.generation.fetch_add(1, Ordering::AcqRel);
        stats.created_ms.store(now_ms(), Ordering::Relaxed);
        stats.snapshot_identity.store(
            crate::isolate::prepare::snapshot_identity(&snapshot),
            Ordering::Relaxed,
        );
        stats
            .snapshot_bytes
            .store(snapshot.len() as u64, Ordering::Relaxed);
        stats
            .heap_limit
            .store(budget.limit as u64, Ordering::Relaxed);
        stats.set_state(IsolateState::Idle);
        let mut worker = Self {
            image,
            wasm: WasmCache::default(),
            stats,
            fetch_tx,
            state,
            queues,
            budget,
            clock,
            recycle: None,
            cpu_budget,
            last_gc: Instant::now(),
            last_stats: Instant::now(),
            spare: Vec::new(),
            evict: false,
            collected_heap: 0,
            collected_physical: 0,
            physical_peak: 0,
            isolate: Some(isolate),
            _snapshot: snapshot,
        };
        worker.ensure_shared_context();
        worker.after_event();
        worker.collected_heap = worker.stats.heap_used.load(Ordering::Relaxed) as usize;
        worker.collected_physical = worker.physical_peak;
        crate::job::ISOLATE_STARTED.notify_one();
        Ok(worker)
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Run(job) => self.start_request(job),
            Command::Cancel(id) => self.state.borrow_mut().cancel(id),
            Command::Evict => {
                self.evict = true;
                // Open sockets would keep it busy for good: they go first.
                self.state
                    .borrow_mut()
                    .close_sockets("the app's isolates are being replaced");
            }
            Command::CloseSockets => self
                .state
                .borrow_mut()
                .close_sockets("the node is being drained"),
        }
    }

    fn start_request(&mut self, job: Job) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.stats.last_used_ms.store(now_ms(), Ordering::Relaxed);
        let js = {
            let shared = self.state.borrow().shared.clone();
            match shared {
                Some(shared) => shared,
                None => {
                    self.stats.context_resets.fetch_add(1, Ordering::Relaxed);
                    if crate::metrics::recording() {
                        METRICS
                            .context_resets
                            .with_label_values(&[&self.image.hostname])
                            .inc();
                    }
                    match self.spare.pop() {
                        Some(spare) => spare,
                        None => {
                            let scope =
                                &mut v8::HandleScope::new(self.isolate.as_mut().expect(PRESENT));
                            context::new_js_context(scope, &self.image, &self.queues, &self.wasm)
                        }
                    }
                }
            }
        };
        let id = job.id;
        let args = {
            let scope = &mut v8::HandleScope::new(self.isolate.as_mut().expect(PRESENT));
            let context = v8::Local::new(scope, &js.context);
            let scope = &mut v8::ContextScope::new(scope, context);
            let method = v8::String::new(scope, &job.method).expect("method fits in a string");
            let url = v8::String::new(scope, &job.url).expect("url fits in a string");
            let mut flat: Vec<v8::Local<v8::Value>> = Vec::with_capacity(job.headers.len() * 2);
            for (name, value) in &job.headers {
                flat.push(v8::String::new(scope, name).expect("header fits").into());
                flat.push(v8::String::new(scope, value).expect("header fits").into());
            }
            let headers = v8::Array::new_with_elements(scope, &flat);
            let body: v8::Local<v8::Value> = if job.body.is_empty() {
                v8::null(scope).into()
            } else {
                webapi::uncharged_uint8_array(scope, job.body.to_vec()).into()
            };
            let env = v8::Local::new(scope, &js.env);
            let id_value = v8::Number::new(scope, id as f64);
            let client = v8::String::new(scope, &job.client).expect("an address fits in a string");
            [
                id_value.into(),
                method.into(),
                url.into(),
                headers.into(),
                body,
                env.into(),
                client.into(),
            ]
            .map(|value| v8::Global::new(scope, value))
        };
        self.state.borrow_mut().accept(job, js.clone());
        let dispatch = js.dispatch.clone();
        self.run_js(id, &js, move |scope| {
            let dispatch = v8::Local::new(scope, dispatch);
            let args = args.map(|arg| v8::Local::new(scope, arg));
            let undefined = v8::undefined(scope).into();
            dispatch.call(scope, undefined, &args);
        });
    }

    fn fire_timer(&mut self, timer: u64) {
        let Some((js, request)) = self.state.borrow_mut().take_timer(timer) else {
            return;
        };
        let fire = js.fire_timer.clone();
        let run = move |scope: &mut v8::HandleScope| {
            let fire = v8::Local::new(scope, fire);
            let id = v8::Number::new(scope, timer as f64);
            let undefined = v8::undefined(scope).into();
            fire.call(scope, undefined, &[id.into()]);
        };
        // Every timer belongs to the request that set it and is cancelled when that request ends.
        if let Some(request) = request {
            self.run_js(request, &js, run);
        }
    }

    /// A message from a socket's client, or the socket's end: an event for the JS of the request
    /// that accepted the socket, under its own CPU budget (`cpu_ms` per event, as a request).
    fn socket_event(&mut self, event: crate::job::SocketEvent) {
        use crate::job::SocketFrame;
        let socket = event.socket;
        let ended = matches!(event.frame, SocketFrame::Close { .. });
        let owner = {
            let mut state = self.state.borrow_mut();
            let request = state.sockets.get(&socket).map(|end| end.request);
            if ended {
                state.sockets.remove(&socket);
            }
            request.and_then(|id| {
                let inflight = state.requests.get_mut(&id)?;
                inflight.cpu_used = Duration::ZERO;
                Some((id, inflight.js.clone()))
            })
        };
        let Some((request, js)) = owner else {
            return;
        };
        let kind = if ended { "close" } else { "message" };
        let opened = matches!(event.frame, SocketFrame::Opened { .. });
        if !opened {
            self.state.borrow_mut().tail_socket_event(request, kind);
        }
        self.run_js(request, &js, move |scope| {
            let Some(internals) = webapi::internals(scope) else {
                return;
            };
            let callback = get_function(scope, internals, "socketEvent");
            let id = v8::Number::new(scope, socket as f64).into();
            let args: Vec<v8::Local<v8::Value>> = match event.frame {
                SocketFrame::Text(text) => {
                    let Some(text) = v8::String::new(scope, &text) else {
                        return;
                    };
                    vec![id, v8::Integer::new(scope, 0).into(), text.into()]
                }
                SocketFrame::Binary(bytes) => {
                    let bytes = webapi::uint8_array(scope, bytes.to_vec()).into();
                    vec![id, v8::Integer::new(scope, 0).into(), bytes]
                }
                SocketFrame::Opened { protocol } => {
                    let protocol = v8::String::new(scope, &protocol)
                        .unwrap_or_else(|| v8::String::empty(scope));
                    vec![id, v8::Integer::new(scope, 2).into(), protocol.into()]
                }
                SocketFrame::Close {
                    code,
                    reason,
                    clean,
                } => {
                    let reason =
                        v8::String::new(scope, &reason).unwrap_or_else(|| v8::String::empty(scope));
                    vec![
                        id,
                        v8::Integer::new(scope, 1).into(),
                        v8::Integer::new(scope, i32::from(code)).into(),
                        reason.into(),
                        v8::Boolean::new(scope, clean).into(),
                    ]
                }
            };
            let undefined = v8::undefined(scope).into();
            callback.call(scope, undefined, &args);
        });
        self.state.borrow_mut().finish_tail_socket_event(request);
        // The event is handled: the socket may have more waiting for the worker.
        drop(event.permit);
    }

    /// A subrequest finished: hand the result to the JS of its request.
    fn fetch_done(&mut self, done: host::FetchDone) {
        let Some(js) = self
            .state
            .borrow()
            .requests
            .get(&done.request)
            .map(|r| r.js.clone())
        else {
            return;
        };
        let callback = js.fetch_done.clone();
        self.run_js(done.request, &js, move |scope| {
            let callback = v8::Local::new(scope, callback);
            let id = v8::Number::new(scope, done.fetch as f64).into();
            let args: Vec<v8::Local<v8::Value>> = match done.result {
                Ok(response) => {
                    let ok = v8::Boolean::new(scope, true).into();
                    let status = v8::Number::new(scope, f64::from(response.status)).into();
                    let text = v8::String::new(scope, &response.status_text)
                        .expect("short")
                        .into();
                    let mut flat = Vec::with_capacity(response.headers.len() * 2);
                    for (name, value) in &response.headers {
                        flat.push(v8::String::new(scope, name).expect("header fits").into());
                        flat.push(v8::String::new(scope, value).expect("header fits").into());
                    }
                    let headers = v8::Array::new_with_elements(scope, &flat).into();
                    let body = webapi::uint8_array(scope, response.body).into();
                    let url = v8::String::new(scope, &response.url)
                        .expect("url fits")
                        .into();
                    let redirected = v8::Boolean::new(scope, response.redirected).into();
                    vec![id, ok, status, text, headers, body, url, redirected]
                }
                Err(message) => {
                    let ok = v8::Boolean::new(scope, false).into();
                    let message = v8::String::new(scope, &message)
                        .expect("message fits")
                        .into();
                    vec![id, ok, message]
                }
            };
            let undefined = v8::undefined(scope).into();
            callback.call(scope, undefined, &args);
        });
    }
}
