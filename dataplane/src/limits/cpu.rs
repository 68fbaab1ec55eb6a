//! CPU-time and wall-clock limits for the JS of one request, enforced from outside the worker.
//!
//! Each worker owns two POSIX timers: one on its own thread CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`), one on `CLOCK_MONOTONIC`. Before the worker enters a request's JS
//! it arms both with what is left of that request's budgets; when it leaves it disarms them and
//! adds the CPU it used. Expiry is delivered as a real-time signal to one watchdog thread (never
//! to the worker: V8 must not be interrupted from a signal handler on its own thread), which
//! calls `IsolateHandle::terminate_execution` if the worker is still inside that JS.
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
}

struct Target {
    gate: Mutex<Gate>,
    handle: v8::IsolateHandle,
}

impl Target {
    /// Requests termination of the JS running now, if any. First reason wins.
    fn trip(&self, kind: LimitKind) -> bool {
        let mut gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        if !gate.armed || gate.fired.is_some() {
            return false;
        }
        gate.fired = Some(kind);
        self.handle.terminate_execution();
        true
    }
}

struct Watchdog {
    tid: libc::pid_t,
    signo: libc::c_int,
    targets: Mutex<HashMap<usize, Arc<Target>>>,
}

const WALL_BIT: usize = 1;

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
                }));
                tx.send(dog).expect("the starter waits for the watchdog");
                loop {
                    // SAFETY: `info` is written by sigwaitinfo before it is read.
                    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                    // SAFETY: `set` is a valid, initialised signal set.
                    if unsafe { libc::sigwaitinfo(&set, &mut info) } != signo {
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
                    if let Some(target) = target {
                        target.trip(kind);
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

/// What one stretch of JS used, and whether a limit ended it.
#[derive(Debug, Clone, Copy)]
pub struct Spent {
    pub cpu: Duration,
    pub tripped: Option<LimitKind>,
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
        let tripped = {
            let mut gate = self.target.gate.lock().unwrap_or_else(|p| p.into_inner());
            gate.armed = false;
            gate.fired.take()
        };
        if std::mem::take(&mut self.wall_armed) {
            self.wall.set(None);
        }
        let cpu = self.entered_with.take().map_or(Duration::ZERO, |armed| {
            armed.saturating_sub(self.cpu.remaining())
        });
        Spent { cpu, tripped }
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

/// Ends the JS running now on a worker, for a reason found outside the timers.
#[derive(Clone)]
pub struct Tripwire(Arc<Target>);

impl Tripwire {
    pub fn trip(&self, kind: LimitKind) -> bool {
        self.0.trip(kind)
    }
}
