//! The worker thread: one isolate, one single-threaded event loop, the limits around every entry
//! into JS, and the clean-up after a termination.
//!
//! Every entry into a request's JS (dispatch, a timer, the microtasks that follow) is wrapped by
//! [`Worker::run_js`]: the worker clock is armed with what is left of the request's CPU and wall
//! budgets, and the context's microtasks are drained inside the same armed stretch. If a limit
//! fires, the stack is unwound, the termination is cancelled, and the request's context (with its
//! microtask queue, which may still hold the killed request's work) is thrown away — so nothing of
//! the killed request ever runs again.

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{AppImage, get_function, internals_key};
use crate::job::stats::now_ms;
use crate::job::{Command, Failure, IsolateState, Job, WorkerStats};
use crate::limits::cpu::{LimitKind, WorkerClock};
use crate::limits::memory::{Budget, Pressure};
use crate::metrics::METRICS;
use crate::webapi;
use crate::webapi::host::{self, Due, JsContext, QueuePool, StateRef, WorkerState};

const PRESENT: &str = "the isolate is only absent while evicted, and recreated before use";

/// The `.wasm` imports of the app, compiled once per isolate, keyed by the SHA-256 of their bytes
/// (two imports of the same binary share one compiled module).
type WasmCache = RefCell<std::collections::HashMap<String, v8::CompiledWasmModule>>;

/// How often, at most, a busy worker reads its heap statistics.
const STATS_EVERY: Duration = Duration::from_millis(5);

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
    /// Last garbage collection asked for by memory pressure (at most one a second).
    last_gc: Instant,
    /// When the worker last published its heap statistics.
    last_stats: Instant,
    /// With context reset: the next request's context, made while the worker had nothing to do.
    spare: Option<Rc<JsContext>>,
    // Dropped last: everything above may hold V8 handles or queues of this isolate. `None`
    // only while the isolate is being replaced.
    isolate: Option<v8::OwnedIsolate>,
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
    let mut worker = match Worker::new(image, stats, fetch_tx) {
        Ok(worker) => worker,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the worker's CPU timers; worker stopped");
            return;
        }
    };
    tracing::debug!("worker started");

    // Subrequests run as local tasks on this thread's runtime.
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let mut closed = false;
        // V8 does not say when background work (async WebAssembly compilation) leaves a task for
        // this isolate, so while requests are in flight the loop looks every couple of ms.
        let mut platform_tick = tokio::time::interval(PLATFORM_POLL);
        platform_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if closed && worker.state.borrow().requests.is_empty() {
                break;
            }
            let has_due = !worker.state.borrow().due.is_empty();
            let busy = !worker.state.borrow().requests.is_empty();
            let state = worker.state.clone();
            tokio::select! {
                Some(expired) = poll_fn(|cx| state.borrow_mut().due.poll_expired(cx)), if has_due => {
                    match expired.into_inner() {
                        Due::Timer(id) => worker.fire_timer(id),
                        Due::Deadline(id) => {
                            let limit = Duration::from_secs(worker.image.limits.timeout_secs.into());
                            state.borrow_mut().expire(id, limit);
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
                    None => closed = true,
                },
                _ = platform_tick.tick(), if busy => worker.pump_platform(),
                Some(done) = fetch_done.recv() => worker.fetch_done(done),
                else => break,
            }
            worker.after_event();
        }
    });

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

impl Worker {
    fn isolate(&mut self) -> &mut v8::OwnedIsolate {
        self.isolate.as_mut().expect(PRESENT)
    }

    fn new(
        image: Arc<AppImage>,
        stats: Arc<WorkerStats>,
        fetch_tx: mpsc::UnboundedSender<host::FetchDone>,
    ) -> std::io::Result<Self> {
        let budget = Arc::new(Budget::new(image.limits.memory_mb));
        let mut isolate = image.new_isolate(&budget);
        let clock = WorkerClock::new(isolate.thread_safe_handle())?;
        budget.arm(clock.tripwire());
        let mut worker_state = WorkerState::new(image.hostname.clone(), budget.limit);
        worker_state.budget = Some(budget.clone());
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
            spare: None,
            isolate: Some(isolate),
        };
        worker.ensure_shared_context();
        worker.after_event();
        Ok(worker)
    }

    /// With context reset, makes the next request's context now, so that request does not wait
    /// for it: on an idle worker this takes context creation off the request's latency; under
    /// load it is the work the next request would do anyway. Not while the isolate is going
    /// away or its heap is under pressure. Called by `after_event` before it publishes the heap,
    /// so the published figure (which the node's memory budget reads) includes the spare.
    fn prepare_spare_context(&mut self) {
        if !self.image.context_reset
            || self.spare.is_some()
            || self.isolate.is_none()
            || self.recycle.is_some()
            || self.stats.pressure.load(Ordering::Relaxed) != Pressure::Normal.as_number()
        {
            return;
        }
        let spare = {
            let scope = &mut v8::HandleScope::new(self.isolate.as_mut().expect(PRESENT));
            new_js_context(scope, &self.image, &self.queues, &self.wasm)
        };
        self.spare = Some(spare);
    }

    /// Without context reset, the isolate keeps one context for all requests.
    fn ensure_shared_context(&mut self) {
        if self.image.context_reset || self.state.borrow().shared.is_some() {
            return;
        }
        let scope = &mut v8::HandleScope::new(self.isolate.as_mut().expect(PRESENT));
        let shared = new_js_context(scope, &self.image, &self.queues, &self.wasm);
        self.state.borrow_mut().shared = Some(shared);
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Run(job) => {
                if self.isolate.is_none() {
                    // Evicted earlier to free memory: start afresh.
                    self.restart();
                }
                self.start_request(job)
            }
            Command::Cancel(id) => self.state.borrow_mut().cancel(id),
            Command::Evict => self.evict("node_budget"),
        }
    }

    /// Disposes the isolate if nothing is in flight; the next request recreates it.
    fn evict(&mut self, reason: &'static str) {
        if self.isolate.is_none() || !self.state.borrow().requests.is_empty() {
            return;
        }
        self.retire("evicting the isolate", reason);
        self.stats.set_state(IsolateState::Evicted);
        for counter in [&self.stats.heap_used, &self.stats.external] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// Drops every handle and queue of the isolate, then the isolate itself.
    fn dispose_isolate(&mut self) {
        self.spare = None;
        self.state.borrow_mut().clear();
        {
            let mut queues = self.queues.borrow_mut();
            queues.free.clear();
            queues.quarantined.clear();
        }
        self.isolate = None;
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
                    match self.spare.take() {
                        Some(spare) => spare,
                        None => {
                            let scope =
                                &mut v8::HandleScope::new(self.isolate.as_mut().expect(PRESENT));
                            new_js_context(scope, &self.image, &self.queues, &self.wasm)
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
            [
                id_value.into(),
                method.into(),
                url.into(),
                headers.into(),
                body,
                env.into(),
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

    /// Enters JS for `request` under its remaining CPU and wall budgets, drains the context's
    /// microtasks, and deals with a termination.
    fn run_js(
        &mut self,
        request: u64,
        js: &Rc<JsContext>,
        call: impl FnOnce(&mut v8::HandleScope),
    ) {
        let (cpu_before, cpu_left, wall_left) = {
            let state = self.state.borrow();
            match state.requests.get(&request) {
                Some(inflight) => (
                    inflight.cpu_used,
                    self.cpu_budget.saturating_sub(inflight.cpu_used),
                    inflight
                        .deadline_at
                        .saturating_duration_since(Instant::now()),
                ),
                None => (
                    Duration::ZERO,
                    self.cpu_budget,
                    Duration::from_secs(self.image.limits.timeout_secs.into()),
                ),
            }
        };
        self.state.borrow_mut().current_request = Some(request);
        self.stats.in_js_since_ms.store(now_ms(), Ordering::Release);
        self.clock.enter(cpu_left, wall_left);
        let runtime_fault = {
            let scope = &mut v8::HandleScope::new(self.isolate.as_mut().expect(PRESENT));
            let context = v8::Local::new(scope, &js.context);
            let scope = &mut v8::ContextScope::new(scope, context);
            let tc = &mut v8::TryCatch::new(scope);
            call(tc);
            if !tc.has_terminated() {
                js.queue().perform_checkpoint(tc);
            }
            match tc.exception() {
                Some(exception) if !tc.has_terminated() => Some(exception.to_rust_string_lossy(tc)),
                _ => None,
            }
        };
        let spent = self.clock.exit();
        self.stats.in_js_since_ms.store(0, Ordering::Release);
        self.state.borrow_mut().current_request = None;
        let mut state = self.state.borrow_mut();
        match state.requests.get_mut(&request) {
            Some(inflight) => inflight.cpu_used += spent.cpu,
            None if request != 0 => {
                // The request finished inside this stretch of JS.
                if let Some(histogram) = &state.cpu_time {
                    histogram.observe((cpu_before + spent.cpu).as_secs_f64() * 1000.0);
                }
            }
            None => {}
        }
        drop(state);
        if let Some(kind) = self.termination(spent) {
            self.after_termination(request, js, kind);
        } else if let Some(message) = runtime_fault {
            tracing::error!(hostname = %self.image.hostname, error = %message, "runtime fault");
            self.state.borrow_mut().reply(
                request,
                host::Reply::Exception {
                    message: format!("internal runtime error: {message}"),
                    stack: String::new(),
                },
            );
        }
    }

    /// Which limit ended the stretch of JS that used `spent`, if one did; the termination is then
    /// cancelled so JS can run again.
    fn termination(&mut self, spent: crate::limits::cpu::Spent) -> Option<LimitKind> {
        let kind = spent.tripped.or_else(|| {
            // Ended by V8 without a recorded reason (should not happen): treat it as CPU.
            self.isolate()
                .is_execution_terminating()
                .then_some(LimitKind::Cpu)
        })?;
        self.isolate().cancel_terminate_execution();
        Some(kind)
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

    /// Runs V8's pending foreground tasks; if any ran, drains the microtasks they may have queued
    /// for each request in flight, under that request's budgets.
    ///
    /// A task can run tenant JS itself (a FinalizationRegistry callback, a WebAssembly start
    /// function reached through an asynchronous step), so the tasks run under the tightest
    /// budget left among the requests in flight, and the CPU they use is charged to each of
    /// them. If a limit ends a task, no request can be singled out: every request in flight on
    /// this worker ends with that limit (they are the same app's).
    fn pump_platform(&mut self) {
        if self.isolate.is_none() {
            return;
        }
        let now = Instant::now();
        let (cpu_left, wall_left) = {
            let state = self.state.borrow();
            state.requests.values().fold(
                (
                    self.cpu_budget,
                    Duration::from_secs(self.image.limits.timeout_secs.into()),
                ),
                |(cpu, wall), r| {
                    (
                        cpu.min(self.cpu_budget.saturating_sub(r.cpu_used)),
                        wall.min(r.deadline_at.saturating_duration_since(now)),
                    )
                },
            )
        };
        self.stats.in_js_since_ms.store(now_ms(), Ordering::Release);
        self.clock.enter(cpu_left, wall_left);
        let ran = super::pump_platform(self.isolate());
        let spent = self.clock.exit();
        self.stats.in_js_since_ms.store(0, Ordering::Release);
        let in_flight: Vec<(u64, Rc<JsContext>)> = self
            .state
            .borrow()
            .requests
            .iter()
            .map(|(id, r)| (*id, r.js.clone()))
            .collect();
        for request in self.state.borrow_mut().requests.values_mut() {
            request.cpu_used += spent.cpu;
        }
        if let Some(kind) = self.termination(spent) {
            tracing::warn!(
                hostname = %self.image.hostname, limit = %kind.label(), requests = in_flight.len(),
                "JS run by a V8 task (a finalizer or an asynchronous WebAssembly step) went past the limits; ending the requests in flight"
            );
            for (id, js) in in_flight {
                if self.state.borrow().requests.contains_key(&id) {
                    self.after_termination(id, &js, kind);
                }
            }
            return;
        }
        if !ran {
            return;
        }
        for (id, js) in in_flight {
            if self.state.borrow().requests.contains_key(&id) {
                self.run_js(id, &js, |_| {});
            }
        }
    }

    /// A limit ended `request`'s JS: answer it, throw its context away, keep the worker serving.
    fn after_termination(&mut self, request: u64, js: &Rc<JsContext>, kind: LimitKind) {
        js.poisoned.set(true);
        let hostname = self.image.hostname.clone();
        let (path, cpu_used, wall_used) = {
            let state = self.state.borrow();
            match state.requests.get(&request) {
                Some(inflight) => (
                    inflight.path.clone(),
                    inflight.cpu_used,
                    inflight.started.elapsed(),
                ),
                None => ("(timer)".to_owned(), Duration::ZERO, Duration::ZERO),
            }
        };
        let failure = match kind {
            LimitKind::Cpu => Failure::Limit {
                kind,
                limit: self.cpu_budget,
                used: cpu_used,
            },
            LimitKind::Wall => Failure::Limit {
                kind,
                limit: Duration::from_secs(self.image.limits.timeout_secs.into()),
                used: wall_used,
            },
            LimitKind::Memory => {
                let used = self.memory_used().max(
                    self.budget
                        .refused
                        .load(std::sync::atomic::Ordering::Relaxed),
                );
                Failure::Memory {
                    limit: self.budget.limit,
                    used,
                }
            }
        };
        METRICS
            .terminations
            .with_label_values(&[&hostname, kind.label()])
            .inc();
        let memory = match &failure {
            Failure::Memory { limit, used } => Some((*limit, *used)),
            _ => None,
        };
        self.state.borrow_mut().fail(request, failure);
        // Logged once the request (and its slot) is released, so whoever reads the log can rely
        // on it.
        match memory {
            Some((limit, used)) => tracing::warn!(
                hostname = %hostname, path = %path, limit = %kind.label(), limit_bytes = limit,
                used_bytes = used, "request terminated"
            ),
            None => tracing::warn!(
                hostname = %hostname, path = %path, limit = %kind.label(),
                limit_ms = self.cpu_budget.as_millis() as u64, cpu_ms = cpu_used.as_millis() as u64,
                wall_ms = wall_used.as_millis() as u64, "request terminated"
            ),
        }

        // Without context reset the one context may be half-way through anything: replace it,
        // and the requests still using it end with it.
        let shared = self.state.borrow().shared.clone();
        if let Some(shared) = shared
            && Rc::ptr_eq(&shared, js)
        {
            let victims: Vec<u64> = self.state.borrow().requests.keys().copied().collect();
            for id in victims {
                self.state.borrow_mut().fail(
                    id,
                    Failure::Unavailable {
                        reason: format!(
                            "the isolate was reset because another request exceeded its {} limit; retry",
                            kind.label()
                        ),
                    },
                );
            }
            self.state.borrow_mut().cancel_timers_of(js);
            self.state.borrow_mut().shared = None;
            self.ensure_shared_context();
        }
        if kind == LimitKind::Memory {
            // The heap got headroom past its limit; collect what the killed request held and
            // decide whether this isolate can go on.
            self.isolate().low_memory_notification();
            if self.pressure() >= Pressure::Critical {
                self.recycle = Some("memory");
            }
        }
    }

    /// Heap used plus external memory. V8's external figure covers ArrayBuffers and WebAssembly
    /// memories (which do not go through our allocator); ours covers buffers V8 has not counted
    /// yet. The larger of the two is the truth.
    fn heap_and_external(&mut self) -> (usize, usize) {
        let stats = self.isolate().get_heap_statistics();
        (
            stats.used_heap_size(),
            stats.external_memory().max(self.budget.external()),
        )
    }

    fn memory_used(&mut self) -> usize {
        let (heap, external) = self.heap_and_external();
        heap + external
    }

    fn pressure(&mut self) -> Pressure {
        let used = self.memory_used();
        Pressure::of(used, self.budget.limit)
    }

    /// After every event: publish stats, act on memory pressure, recycle the isolate when it is
    /// due and idle.
    fn after_event(&mut self) {
        if self.isolate.is_none() {
            return;
        }
        self.prepare_spare_context();
        let busy = !self.state.borrow().requests.is_empty();
        self.stats.set_state(match (self.recycle.is_some(), busy) {
            (true, _) => IsolateState::Draining,
            (false, true) => IsolateState::Busy,
            (false, false) => IsolateState::Idle,
        });
        // Heap statistics cost a walk over V8's spaces: a busy worker looks at most every few
        // ms (the heap limit itself is enforced by V8 and the allocator, not here).
        if !busy || self.last_stats.elapsed() >= STATS_EVERY {
            self.last_stats = Instant::now();
            let (heap, external) = self.heap_and_external();
            let pressure = Pressure::of(heap + external, self.budget.limit);
            self.stats.heap_used.store(heap as u64, Ordering::Relaxed);
            self.stats
                .external
                .store(external as u64, Ordering::Relaxed);
            self.stats
                .pressure
                .store(pressure.as_number(), Ordering::Relaxed);
            let emergency = pressure == Pressure::Emergency;
            if pressure >= Pressure::Warning
                && (emergency || self.last_gc.elapsed() >= Duration::from_secs(1))
            {
                self.last_gc = Instant::now();
                self.isolate().low_memory_notification();
                match self.pressure() {
                    Pressure::Emergency => self.memory_emergency(),
                    // Live data, not garbage: finish what is in flight, then start afresh.
                    Pressure::Critical => _ = self.recycle.get_or_insert("memory"),
                    _ => {}
                }
            }
        }
        let busy = !self.state.borrow().requests.is_empty();
        if self.queues.borrow().quarantined.len() >= MAX_QUARANTINED {
            self.recycle.get_or_insert("terminations");
        }
        if self.recycle.is_some() && !busy {
            self.replace_isolate();
        }
    }

    /// Over 95% of `memory_mb` even after a full collection: the requests in flight end now
    /// (503 memory-limit) and the isolate is replaced.
    fn memory_emergency(&mut self) {
        let used = self.memory_used();
        let victims: Vec<u64> = self.state.borrow().requests.keys().copied().collect();
        tracing::warn!(
            hostname = %self.image.hostname, limit = %"memory", limit_bytes = self.budget.limit,
            used_bytes = used, in_flight = victims.len(),
            "memory emergency: ending the requests in flight and replacing the isolate"
        );
        for id in victims {
            METRICS
                .terminations
                .with_label_values(&[&self.image.hostname, "memory"])
                .inc();
            self.state.borrow_mut().fail(
                id,
                Failure::Memory {
                    limit: self.budget.limit,
                    used,
                },
            );
        }
        self.recycle.get_or_insert("memory");
    }

    /// Disposes the isolate and starts a fresh one from the app snapshot.
    fn replace_isolate(&mut self) {
        let reason = self.recycle.take().unwrap_or("recycle");
        // The old isolate goes before the new one is created (V8 enters isolates per thread and
        // wants them dropped in reverse order).
        self.retire("replacing the isolate", reason);
        self.restart();
    }

    /// Logs and counts why the isolate goes, then disposes of it.
    fn retire(&mut self, what: &'static str, reason: &'static str) {
        tracing::info!(hostname = %self.image.hostname, reason = %reason, "{what}");
        METRICS
            .evictions
            .with_label_values(&[&self.image.hostname, reason])
            .inc();
        self.dispose_isolate();
    }

    /// A fresh isolate (and clock) for this worker; the old one must already be disposed.
    fn restart(&mut self) {
        match Worker::new(
            self.image.clone(),
            self.stats.clone(),
            self.fetch_tx.clone(),
        ) {
            Ok(fresh) => *self = fresh,
            Err(err) => panic!("cannot recreate the worker's CPU timers: {err}"),
        }
    }
}

/// Creates a context from the app snapshot, with its own microtask queue.
fn new_js_context(
    scope: &mut v8::HandleScope<()>,
    image: &AppImage,
    queues: &QueuePool,
    wasm: &WasmCache,
) -> Rc<JsContext> {
    let pooled = queues.borrow_mut().free.pop();
    let queue =
        pooled.unwrap_or_else(|| v8::MicrotaskQueue::new(scope, v8::MicrotasksPolicy::Explicit));
    let queue_ptr = &*queue as *const v8::MicrotaskQueue as *mut v8::MicrotaskQueue;
    let options = v8::ContextOptions {
        microtask_queue: Some(queue_ptr),
        ..Default::default()
    };
    let context = v8::Context::new(scope, options);
    let scope = &mut v8::ContextScope::new(scope, context);
    let global = context.global(scope);
    let key = internals_key(scope);
    let internals = global
        .get_private(scope, key)
        .and_then(|v| v.to_object(scope))
        .expect("the app snapshot holds the runtime internals");
    let dispatch = get_function(scope, internals, "dispatch");
    let fire_timer = get_function(scope, internals, "fireTimer");
    let fetch_done = get_function(scope, internals, "fetchDone");
    if !image.wasm.is_empty() {
        let set_wasm = get_function(scope, internals, "setWasm");
        let mut compiled = wasm.borrow_mut();
        for (name, key, bytes) in &image.wasm {
            if !compiled.contains_key(key) {
                match v8::WasmModuleObject::compile(scope, bytes) {
                    Some(module) => {
                        compiled.insert(key.clone(), module.get_compiled_module());
                    }
                    None => {
                        tracing::error!(hostname = %image.hostname, module = %name, "WebAssembly compilation failed");
                        continue;
                    }
                }
            }
            let Some(module) = v8::WasmModuleObject::from_compiled_module(scope, &compiled[key])
            else {
                continue;
            };
            let name = v8::String::new(scope, name).expect("a file name fits in a string");
            let undefined = v8::undefined(scope).into();
            set_wasm.call(scope, undefined, &[name.into(), module.into()]);
        }
    }
    let env = v8::Object::new(scope);
    for (name, value) in &image.env {
        let name = v8::String::new(scope, name).expect("env name fits in a string");
        let value = v8::String::new(scope, value).expect("env value fits in a string");
        env.set(scope, name.into(), value.into());
    }
    Rc::new(JsContext::new(
        v8::Global::new(scope, context),
        v8::Global::new(scope, dispatch),
        v8::Global::new(scope, fire_timer),
        v8::Global::new(scope, fetch_done),
        v8::Global::new(scope, env),
        queue,
        queues.clone(),
    ))
}
