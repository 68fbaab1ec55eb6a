//! CPU-time and wall-clock limits for the JS of one request, enforced from outside the worker.
//!
//! Each worker owns two POSIX timers: one on its own thread CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`), one on `CLOCK_MONOTONIC`. Before the worker enters a request's JS
//! it arms both with what is left of that request's budgets; when it leaves it disarms them and
//! adds the CPU it used. Expiry is delivered as a real-time signal to one watchdog thread (never
//! to the worker: V8 must not be interrupted from a signal handler on its own thread), which
//! ends the JS if the worker is still inside it: first through a V8 interrupt, which runs on the
//! worker's thread at the JS's next interrupt check, records where the JS was (its stack, for
//! the live tail) and terminates it; and if that has not happened within [`GRACE`] (JS inside a
//! long native call), with `IsolateHandle::terminate_execution` directly.
//!
//! Linux only (timer_create with SIGEV_THREAD_ID).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Which limit ended a request's JS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    Cpu,
    Wall,
    Memory,
}

impl LimitKind {
    pub fn label(self) -> &'static str {
        match self {
            LimitKind::Cpu => "cpu",
            LimitKind::Wall => "timeout",
            LimitKind::Memory => "memory",
        }
    }
}

/// What the worker and the watchdog share under one lock, so a termination can only be requested
/// while the worker is inside JS, and the worker always learns about it.
#[derive(Default)]
struct Gate {
    armed: bool,
    fired: Option<LimitKind>,
    /// Termination was requested from V8 (by the interrupt or directly).
    terminated: bool,
    /// Where the JS was when the limit ended it (taken by `exit`).
    stack: Option<String>,
}

struct Target {
    gate: Mutex<Gate>,
    handle: v8::IsolateHandle,
}

/// How long the interrupt that records the stack may take before the JS is ended without it.
const GRACE: Duration = Duration::from_millis(5);

/// Frames of the JS stack recorded when a limit ends it.
const STACK_FRAMES: usize = 10;

impl Target {
    /// Records that `kind` ends the JS running now, if any, without ending it yet (see
    /// [`Target::force`]). First reason wins. Returns whether it was recorded.
    fn fire(&self, kind: LimitKind) -> bool {
        let mut gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        if !gate.armed || gate.fired.is_some() {
            return false;
        }
        gate.fired = Some(kind);
        true
    }

    /// Records that `kind` ends the JS running now (as [`Target::fire`]) and asks the JS for its
    /// stack: an interrupt records it and terminates. The caller must call [`Target::force`] after [`GRACE`].
    fn trip_with_stack(self: &Arc<Self>, kind: LimitKind) -> bool {
        let mut gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        if !gate.armed || gate.fired.is_some() {
            return false;
        }
        gate.fired = Some(kind);
        let data = Arc::into_raw(self.clone()) as *mut std::ffi::c_void;
        if !self
            .handle
            .request_interrupt(record_stack_and_terminate, data)
        {
            // SAFETY: the interrupt was not queued, so the reference given to it is ours again.
            drop(unsafe { Arc::from_raw(data as *const Target) });
            gate.terminated = true;
            self.handle.terminate_execution();
        }
        true
    }

    /// Keeps where the JS was for `exit` (on the worker's thread, inside the stretch of JS).
    fn record_stack(&self, stack: Option<String>) {
        self.gate.lock().unwrap_or_else(|p| p.into_inner()).stack = stack;
    }

    /// Terminates JS whose limit fired if the interrupt has not done it yet.
    fn force(&self) {
        let mut gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        if gate.armed && gate.fired.is_some() && !gate.terminated {
            gate.terminated = true;
            self.handle.terminate_execution();
        }
    }
}

thread_local! {
    /// The isolate and context of the request JS this worker thread runs now, for taking its
    /// stack when a limit ends it (null: none, e.g. V8's own tasks).
    static RUNNING_IN: std::cell::Cell<(*mut v8::Isolate, *const v8::Global<v8::Context>)> =
        const { std::cell::Cell::new((std::ptr::null_mut(), std::ptr::null())) };
}

/// Marks the context of the stretch of JS the worker enters, until dropped.
pub struct RunningIn(());

/// The worker is about to run JS of `isolate` in `context` (both outlive the returned guard).
pub fn running_in(isolate: &mut v8::Isolate, context: &v8::Global<v8::Context>) -> RunningIn {
    RUNNING_IN.with(|cell| cell.set((isolate, context)));
    RunningIn(())
}

impl Drop for RunningIn {
    fn drop(&mut self) {
        RUNNING_IN.with(|cell| cell.set((std::ptr::null_mut(), std::ptr::null())));
    }
}

/// The top frames of the request JS running on this thread, as `    at f (file:line:col)`
/// lines; `None` outside a stretch of request JS.
///
/// # Safety
///
/// Only where V8 allows calls back into it with JS on the stack: an interrupt, or an
/// allocation V8 makes at a point where it may also collect garbage (never from inside a
/// collection, such as the near-heap-limit callback).
unsafe fn current_stack() -> Option<String> {
    let (isolate, context) = RUNNING_IN.with(std::cell::Cell::get);
    if isolate.is_null() || context.is_null() {
        return None;
    }
    // SAFETY: set by `running_in` on this thread for the stretch of JS running now, and
    // cleared when it ends; the isolate and the context outlive the stretch.
    let (isolate, context) = unsafe { (&mut *isolate, &*context) };
    // A callback scope: the worker's own scopes are open below this call.
    // SAFETY: the caller is on the isolate's thread, inside its JS (see above).
    let scope = &mut unsafe { v8::CallbackScope::new(isolate) };
    let scope = &mut v8::HandleScope::new(scope);
    let context = v8::Local::new(scope, context);
    let scope = &mut v8::ContextScope::new(scope, context);
    let trace = v8::StackTrace::current_stack_trace(scope, STACK_FRAMES)?;
    let mut lines = Vec::new();
    for i in 0..trace.get_frame_count() {
        let Some(frame) = trace.get_frame(scope, i) else {
            continue;
        };
        let name = frame
            .get_function_name(scope)
            .map(|n| n.to_rust_string_lossy(scope))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "<anonymous>".into());
        let script = frame
            .get_script_name_or_source_url(scope)
            .map(|n| n.to_rust_string_lossy(scope))
            .unwrap_or_default();
        lines.push(format!(
            "    at {name} ({script}:{}:{})",
            frame.get_line_number(),
            frame.get_column()
        ));
    }
    Some(lines.join("\n")).filter(|s| !s.is_empty())
}

/// The interrupt of [`Target::trip_with_stack`], on the worker's thread inside its JS: records
/// the stack, then terminates (unless the JS it was for has ended meanwhile).
unsafe extern "C" fn record_stack_and_terminate(
    isolate: &mut v8::Isolate,
    data: *mut std::ffi::c_void,
) {
    // SAFETY: `data` is the reference `trip_with_stack` gave up for this interrupt.
    let target = unsafe { Arc::from_raw(data as *const Target) };
    {
        let mut gate = target.gate.lock().unwrap_or_else(|p| p.into_inner());
        if !gate.armed || gate.fired.is_none() || gate.terminated {
            return;
        }
        gate.terminated = true;
    }
    // SAFETY: V8 runs interrupts on the isolate's thread, at a point where JS may run.
    let stack = unsafe { current_stack() };
    target.record_stack(stack);
    isolate.terminate_execution();
}

struct Watchdog {
    tid: libc::pid_t,
    signo: libc::c_int,
    targets: Mutex<HashMap<usize, Arc<Target>>>,
    /// Limits tripped on a worker's own thread (memory) that asked their JS for its stack: the
    /// watchdog terminates them after [`GRACE`] if the interrupt has not.
    tripped_elsewhere: Mutex<Vec<Arc<Target>>>,
}

impl Watchdog {
    /// Has `target` terminated after [`GRACE`] unless its interrupt does it first.
    fn force_later(&self, target: Arc<Target>) {
        self.tripped_elsewhere
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(target);
        // A bare signal (no timer value) wakes the watchdog to pick it up.
        // SAFETY: tgkill with our own process id and the watchdog's live thread id.
        unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), self.tid, self.signo) };
    }
}

const WALL_BIT: usize = 1;

/// `si_code` of a POSIX timer's signal on Linux (the libc crate does not name it there).
const SI_TIMER: libc::c_int = -2;

fn watchdog() -> &'static Watchdog {
    static WATCHDOG: OnceLock<&'static Watchdog> = OnceLock::new();
    WATCHDOG.get_or_init(|| {
        let signo = libc::SIGRTMIN() + 3;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("nano-watchdog".into())
            .spawn(move || {
                // SAFETY: plain signal-mask calls on this thread's own mask.
                let set = unsafe {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, signo);
                    libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                    set
                };
                // SAFETY: gettid has no preconditions.
                let tid = unsafe { libc::gettid() };
                let dog: &'static Watchdog = Box::leak(Box::new(Watchdog {
                    tid,
                    signo,
                    targets: Mutex::new(HashMap::new()),
                    tripped_elsewhere: Mutex::new(Vec::new()),
                }));
                tx.send(dog).expect("the starter waits for the watchdog");
                // Limits that fired and asked their JS for its stack: terminated directly if
                // the interrupt has not run by then.
                let mut pending: Vec<(std::time::Instant, Arc<Target>)> = Vec::new();
                loop {
                    let now = std::time::Instant::now();
                    pending.retain(|(due, target)| {
                        if *due <= now {
                            target.force();
                            return false;
                        }
                        true
                    });
                    let wait = pending
                        .iter()
                        .map(|(due, _)| due.saturating_duration_since(now))
                        .min()
                        .unwrap_or(Duration::from_secs(3600));
                    let timeout = libc::timespec {
                        tv_sec: wait.as_secs() as libc::time_t,
                        tv_nsec: wait.subsec_nanos() as libc::c_long,
                    };
                    // SAFETY: `info` is written by sigtimedwait before it is read.
                    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                    // SAFETY: `set` is a valid, initialised signal set; `timeout` is valid.
                    if unsafe { libc::sigtimedwait(&set, &mut info, &timeout) } != signo {
                        continue;
                    }
                    let due = std::time::Instant::now() + GRACE;
                    pending.extend(
                        std::mem::take(
                            &mut *dog
                                .tripped_elsewhere
                                .lock()
                                .unwrap_or_else(|p| p.into_inner()),
                        )
                        .into_iter()
                        .map(|target| (due, target)),
                    );
                    if info.si_code != SI_TIMER {
                        // The wake-up of `force_later`.
                        continue;
                    }
                    // SAFETY: timer signals carry the sigval given to timer_create.
                    let value = unsafe { info.si_value().sival_ptr } as usize;
                    let kind = if value & WALL_BIT != 0 {
                        LimitKind::Wall
                    } else {
                        LimitKind::Cpu
                    };
                    let target = dog
                        .targets
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(&(value >> 1))
                        .cloned();
                    if let Some(target) = target
                        && target.trip_with_stack(kind)
                    {
                        pending.push((std::time::Instant::now() + GRACE, target));
                    }
                }
            })
            .expect("the OS can start the watchdog thread");
        rx.recv().expect("the watchdog starts")
    })
}

/// A POSIX timer that signals the watchdog.
struct Timer(libc::timer_t);

impl Timer {
    fn new(clock: libc::clockid_t, value: usize) -> std::io::Result<Self> {
        let dog = watchdog();
        // SAFETY: a zeroed sigevent is valid; we fill the fields timer_create reads.
        let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
        event.sigev_notify = libc::SIGEV_THREAD_ID;
        event.sigev_signo = dog.signo;
        event.sigev_notify_thread_id = dog.tid;
        event.sigev_value = libc::sigval {
            sival_ptr: value as *mut libc::c_void,
        };
        let mut timer: libc::timer_t = std::ptr::null_mut();
        // SAFETY: `event` and `timer` are valid for the call.
        if unsafe { libc::timer_create(clock, &mut event, &mut timer) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self(timer))
    }

    /// Arms for `after` (zero disarms). A budget already spent fires at once.
    fn set(&self, after: Option<Duration>) {
        let after = after.map(|d| d.max(Duration::from_micros(1)));
        let value = after.map_or(
            libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            |d| libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            },
        );
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        // SAFETY: the timer is live until Drop; `spec` is valid for the call.
        unsafe { libc::timer_settime(self.0, 0, &spec, std::ptr::null_mut()) };
    }
}

impl Timer {
    /// Time left before expiry (zero once expired or disarmed).
    fn remaining(&self) -> Duration {
        // SAFETY: a zeroed itimerspec is valid output space; the timer is live until Drop.
        let mut spec: libc::itimerspec = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::timer_gettime(self.0, &mut spec) };
        Duration::new(spec.it_value.tv_sec as u64, spec.it_value.tv_nsec as u32)
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        // SAFETY: created by timer_create and deleted once.
        unsafe { libc::timer_delete(self.0) };
    }
}

/// The limits of one worker thread. Create on the worker thread (the CPU timer measures the
/// thread that creates it).
pub struct WorkerClock {
    id: usize,
    target: Arc<Target>,
    cpu: Timer,
    wall: Timer,
    wall_armed: bool,
    /// The CPU budget the timer was armed with on entry.
    entered_with: Option<Duration>,
}

/// What one stretch of JS used, and whether a limit ended it (and where the JS was then, when
/// it could say).
#[derive(Debug, Clone)]
pub struct Spent {
    pub cpu: Duration,
    pub tripped: Option<LimitKind>,
    pub stack: Option<String>,
}

impl WorkerClock {
    pub fn new(handle: v8::IsolateHandle) -> std::io::Result<Self> {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let target = Arc::new(Target {
            gate: Mutex::new(Gate::default()),
            handle,
        });
        watchdog()
            .targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, target.clone());
        Ok(Self {
            id,
            cpu: Timer::new(libc::CLOCK_THREAD_CPUTIME_ID, id << 1)?,
            wall: Timer::new(libc::CLOCK_MONOTONIC, (id << 1) | WALL_BIT)?,
            target,
            wall_armed: false,
            entered_with: None,
        })
    }

    /// About to run a request's JS with `cpu_left` CPU and `wall_left` wall time remaining.
    pub fn enter(&mut self, cpu_left: Duration, wall_left: Duration) {
        {
            let mut gate = self.target.gate.lock().unwrap_or_else(|p| p.into_inner());
            gate.armed = true;
            gate.fired = None;
            gate.terminated = false;
        }
        // One syscall to arm; the exit reads back what is left (no clock reads, no disarm: a
        // late expiry finds the gate closed and is ignored).
        let cpu_left = cpu_left.max(Duration::from_micros(1));
        self.entered_with = Some(cpu_left);
        self.cpu.set(Some(cpu_left));
        // A thread's CPU clock never runs faster than the wall clock, so when the CPU budget
        // is the smaller one its timer fires first anyway: save the two syscalls.
        self.wall_armed = wall_left < cpu_left;
        if self.wall_armed {
            self.wall.set(Some(wall_left));
        }
    }

    /// Left JS (the stack is fully unwound). If a limit fired, the caller must
    /// `cancel_terminate_execution` before running JS again.
    pub fn exit(&mut self) -> Spent {
        let (tripped, stack) = {
            let mut gate = self.target.gate.lock().unwrap_or_else(|p| p.into_inner());
            gate.armed = false;
            let tripped = gate.fired.take();
            (tripped, gate.stack.take().filter(|_| tripped.is_some()))
        };
        if std::mem::take(&mut self.wall_armed) {
            self.wall.set(None);
        }
        let cpu = self.entered_with.take().map_or(Duration::ZERO, |armed| {
            armed.saturating_sub(self.cpu.remaining())
        });
        Spent {
            cpu,
            tripped,
            stack,
        }
    }

    /// A handle for tripping a limit from inside V8 callbacks (memory).
    pub fn tripwire(&self) -> Tripwire {
        Tripwire(self.target.clone())
    }
}

impl Drop for WorkerClock {
    fn drop(&mut self) {
        watchdog()
            .targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Ends the JS running now on a worker, for a reason found outside the timers (memory, found
/// on the worker's own thread, inside an allocation or a garbage collection).
#[derive(Clone)]
pub struct Tripwire(Arc<Target>);

impl Tripwire {
    /// From inside a garbage collection (V8's heap at its limit), where V8 cannot be called:
    /// asks the JS for its stack and ends it, as the timers do. If the limit had already fired
    /// and the JS still runs (it reached the limit again before its interrupt could run), ends
    /// it at once.
    pub fn trip_in_collection(&self, kind: LimitKind) {
        if self.0.trip_with_stack(kind) {
            watchdog().force_later(self.0.clone());
        } else {
            self.0.force();
        }
    }

    /// From an allocation V8 makes where it may collect garbage (an ArrayBuffer's memory):
    /// records the stack here, since the JS may unwind (with the RangeError of the refused
    /// allocation) before an interrupt could run, and ends the JS.
    pub fn trip_at_allocation(&self, kind: LimitKind) {
        if self.0.fire(kind) {
            // SAFETY: V8 asks for an ArrayBuffer's memory only where it may collect garbage
            // (`Heap::AllocateExternalBackingStore` collects around the call).
            let stack = unsafe { current_stack() };
            self.0.record_stack(stack);
        }
        self.0.force();
    }
}
