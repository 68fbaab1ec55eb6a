//! What each worker publishes about its isolate, read by the admin surface, the metrics
//! collector and the node-wide memory budget without touching the worker thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The life-cycle state of a worker's isolate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum IsolateState {
    Starting = 0,
    Idle = 1,
    Busy = 2,
    /// Finishing in-flight requests before it is replaced.
    Draining = 3,
    /// Ended (isolate and thread) to keep the node's memory budget; the pool starts a worker
    /// again on demand.
    Evicted = 4,
    /// Ended (isolate and thread) after `limits.idle_timeout_secs` without requests.
    Reaped = 5,
}

impl IsolateState {
    pub fn label(self) -> &'static str {
        match self {
            IsolateState::Starting => "starting",
            IsolateState::Idle => "idle",
            IsolateState::Busy => "busy",
            IsolateState::Draining => "draining",
            IsolateState::Evicted => "evicted",
            IsolateState::Reaped => "reaped",
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            1 => IsolateState::Idle,
            2 => IsolateState::Busy,
            3 => IsolateState::Draining,
            4 => IsolateState::Evicted,
            5 => IsolateState::Reaped,
            _ => IsolateState::Starting,
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One worker's published numbers. Written by the worker only.
pub struct WorkerStats {
    pub hostname: Arc<str>,
    pub worker: usize,
    /// Requests held (running or waiting): the pool's slot counter.
    pub load: Arc<AtomicUsize>,
    /// Increments each time the worker creates an isolate.
    pub generation: AtomicU64,
    state: AtomicU8,
    pub heap_used: AtomicU64,
    /// What the isolate costs the machine, in bytes: V8's physical heap and its malloced
    /// memory, external memory, and the worker's own share (V8's structures outside the heap,
    /// thread stack, event loop). What `node.memory_mb` counts.
    pub footprint: AtomicU64,
    /// The app snapshot the isolate reads contexts from: which one (shared by the app's
    /// workers and the snapshot cache, see `prepare::snapshot_identity`) and its size. The node
    /// budget counts each snapshot in memory once.
    pub snapshot_identity: AtomicUsize,
    pub snapshot_bytes: AtomicU64,
    pub heap_limit: AtomicU64,
    pub external: AtomicU64,
    pub pressure: AtomicU8,
    pub requests: AtomicU64,
    pub context_resets: AtomicU64,
    /// Contexts made ahead for the next requests (context reset).
    pub spare_contexts: AtomicU64,
    pub created_ms: AtomicU64,
    pub last_used_ms: AtomicU64,
    /// Whether the app keeps state in its isolate (no context reset): evicted last.
    pub stateful: bool,
    /// When the worker entered the JS it runs now (ms since the epoch; 0 while outside JS).
    pub in_js_since_ms: AtomicU64,
    /// Set when the pool gave up on this worker (stuck in code the limits cannot interrupt)
    /// and started a replacement; the thread exits once that code returns.
    pub stuck: AtomicBool,
}

/// Woken each time a worker has started an isolate and published its first figures, so the
/// node budget (`evict.rs`) looks at once rather than at its next tick: looking only every
/// 500 ms let the budget run over by whatever started in between while many apps woke up.
pub static ISOLATE_STARTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

impl WorkerStats {
    pub fn new(hostname: Arc<str>, worker: usize, load: Arc<AtomicUsize>, stateful: bool) -> Self {
        Self {
            hostname,
            worker,
            load,
            generation: AtomicU64::new(0),
            state: AtomicU8::new(IsolateState::Starting as u8),
            heap_used: AtomicU64::new(0),
            footprint: AtomicU64::new(0),
            snapshot_identity: AtomicUsize::new(0),
            snapshot_bytes: AtomicU64::new(0),
            heap_limit: AtomicU64::new(0),
            external: AtomicU64::new(0),
            pressure: AtomicU8::new(0),
            requests: AtomicU64::new(0),
            context_resets: AtomicU64::new(0),
            spare_contexts: AtomicU64::new(0),
            created_ms: AtomicU64::new(0),
            last_used_ms: AtomicU64::new(0),
            stateful,
            in_js_since_ms: AtomicU64::new(0),
            stuck: AtomicBool::new(false),
        }
    }

    pub fn state(&self) -> IsolateState {
        IsolateState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub fn set_state(&self, state: IsolateState) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// A stable name for the current isolate: `<hostname>/<worker>/<generation>`.
    pub fn isolate_id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.hostname,
            self.worker,
            self.generation.load(Ordering::Acquire)
        )
    }

    /// Heap used plus external memory, in bytes.
    pub fn memory(&self) -> u64 {
        self.heap_used.load(Ordering::Relaxed) + self.external.load(Ordering::Relaxed)
    }

    /// Whether the isolate exists and holds memory.
    pub fn is_live(&self) -> bool {
        !matches!(
            self.state(),
            IsolateState::Starting | IsolateState::Evicted | IsolateState::Reaped
        )
    }

    /// The `/_admin/isolates` entry. Never env values, source or request data.
    pub fn to_json(&self) -> serde_json::Value {
        let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
        serde_json::json!({
            "hostname": &*self.hostname,
            "isolate": self.isolate_id(),
            "worker": self.worker,
            "state": self.state().label(),
            "heap_used_bytes": load(&self.heap_used),
            "footprint_bytes": load(&self.footprint),
            "heap_limit_bytes": load(&self.heap_limit),
            "external_bytes": load(&self.external),
            "pressure": crate::limits::memory::Pressure::from_number(self.pressure.load(Ordering::Relaxed)).label(),
            "in_flight": self.load.load(Ordering::Relaxed),
            "requests_served": load(&self.requests),
            "context_resets": load(&self.context_resets),
            "spare_contexts": load(&self.spare_contexts),
            "created_at_ms": load(&self.created_ms),
            "last_used_at_ms": load(&self.last_used_ms),
        })
    }
}
