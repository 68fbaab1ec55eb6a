//! Per-app pools: `limits.workers` OS threads, each owning one isolate, each with a bounded number
//! of request slots. Dispatch goes to the least-busy worker; when every slot of the app is taken
//! the request is refused at once. Knows nothing about V8 beyond starting `isolate::run_worker`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use tokio::sync::mpsc;

use crate::isolate::{self, AppImage};
use crate::job::{Command, IsolateState, Job, SlotGuard, WorkerStats, stats};

/// Why a pool did not take a request.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    #[error("all {slots} request slots of the app are taken")]
    Full { slots: usize },
    #[error("{reason}")]
    Unavailable { reason: String },
}

struct Worker {
    jobs: mpsc::UnboundedSender<Command>,
    load: Arc<AtomicUsize>,
    stats: Arc<WorkerStats>,
}

impl Worker {
    /// Starts worker thread `index` serving `image`.
    fn start(image: &Arc<AppImage>, index: usize) -> (Self, std::thread::JoinHandle<()>) {
        // Slots bound the queue, so the channel itself need not.
        let (jobs, rx) = mpsc::unbounded_channel();
        let load = Arc::new(AtomicUsize::new(0));
        let stats = Arc::new(WorkerStats::new(
            image.hostname.clone(),
            index,
            load.clone(),
            !image.context_reset,
        ));
        let (image, worker_stats) = (image.clone(), stats.clone());
        let thread = std::thread::Builder::new()
            .name(format!("nano-worker-{}-{index}", image.hostname))
            .stack_size(isolate::WORKER_STACK_BYTES)
            .spawn(move || isolate::run_worker(image, worker_stats, rx))
            .expect("the OS can start a worker thread");
        (Self { jobs, load, stats }, thread)
    }
}

/// The running workers of one app, or why it has none.
pub struct AppPool {
    hostname: Arc<str>,
    image: Option<Arc<AppImage>>,
    /// A worker found stuck is swapped for a fresh one in its place.
    workers: Vec<ArcSwap<Worker>>,
    /// The threads to join at shutdown, by worker index (a stuck worker's thread is let go).
    threads: Mutex<Vec<Option<std::thread::JoinHandle<()>>>>,
    slots_per_worker: usize,
    failure: Option<String>,
}

impl AppPool {
    /// Starts `workers` threads serving `image`.
    pub fn start(image: Arc<AppImage>, workers: usize, slots_per_worker: usize) -> Self {
        let (workers, threads): (Vec<_>, Vec<_>) = (0..workers)
            .map(|index| {
                let (worker, thread) = Worker::start(&image, index);
                (ArcSwap::from_pointee(worker), Some(thread))
            })
            .unzip();
        Self {
            hostname: image.hostname.clone(),
            image: Some(image),
            workers,
            threads: Mutex::new(threads),
            slots_per_worker,
            failure: None,
        }
    }

    /// A pool for an app that could not be loaded: every request is refused with the reason.
    pub fn failed(hostname: Arc<str>, reason: String) -> Self {
        Self {
            hostname,
            image: None,
            workers: Vec::new(),
            threads: Mutex::new(Vec::new()),
            slots_per_worker: 0,
            failure: Some(reason),
        }
    }

    /// Called when a request to worker `index` got no answer within the app's wall-clock limit
    /// (plus the front's backstop). If the worker has been inside one stretch of JS for longer
    /// than that, the termination V8 was asked for has not landed: the JS is stuck in a builtin
    /// that never checks for it. The worker is taken out of the pool and a fresh one starts in
    /// its place at once, so the app keeps its capacity; the stuck thread exits when that code
    /// returns. Returns whether the worker was replaced.
    pub fn replace_if_stuck(&self, index: usize, limit: Duration) -> bool {
        let (Some(image), Some(slot)) = (&self.image, self.workers.get(index)) else {
            return false;
        };
        let current = slot.load_full();
        let since = current.stats.in_js_since_ms.load(Ordering::Acquire);
        let inside = Duration::from_millis(stats::now_ms().saturating_sub(since));
        if since == 0 || inside <= limit || current.stats.stuck.swap(true, Ordering::AcqRel) {
            return false;
        }
        let (fresh, thread) = Worker::start(image, index);
        fresh.stats.generation.store(
            current.stats.generation.load(Ordering::Acquire),
            Ordering::Release,
        );
        slot.store(Arc::new(fresh));
        if let Some(old) = self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(index)
            .and_then(|t| t.replace(thread))
        {
            drop(old); // detached: it exits when the stuck JS returns
        }
        crate::metrics::METRICS
            .stuck_workers
            .with_label_values(&[&self.hostname])
            .inc();
        tracing::error!(
            hostname = %self.hostname, worker = index, in_js_ms = inside.as_millis() as u64,
            limit_ms = limit.as_millis() as u64,
            "worker stuck in JS that cannot be interrupted; started a replacement"
        );
        true
    }

    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// Takes a slot on the least-busy worker, or refuses at once.
    pub fn reserve(&self) -> Result<(usize, SlotGuard), PoolError> {
        let (index, worker) = self.least_busy()?;
        if worker.load.fetch_add(1, Ordering::AcqRel) >= self.slots_per_worker {
            worker.load.fetch_sub(1, Ordering::AcqRel);
            return Err(self.full());
        }
        Ok((index, SlotGuard::holding(worker.load.clone())))
    }

    /// Whether a slot is free now (without taking one): a full app refuses before a request's
    /// body is read.
    pub fn has_room(&self) -> Result<(), PoolError> {
        let (_, worker) = self.least_busy()?;
        if worker.load.load(Ordering::Acquire) >= self.slots_per_worker {
            return Err(self.full());
        }
        Ok(())
    }

    /// The worker holding the fewest requests, or why the app has none to offer.
    fn least_busy(&self) -> Result<(usize, arc_swap::Guard<Arc<Worker>>), PoolError> {
        if let Some(reason) = &self.failure {
            return Err(PoolError::Unavailable {
                reason: reason.clone(),
            });
        }
        self.workers
            .iter()
            .map(ArcSwap::load)
            .enumerate()
            .min_by_key(|(_, w)| w.load.load(Ordering::Acquire))
            .ok_or_else(|| PoolError::Unavailable {
                reason: "the app has no workers".into(),
            })
    }

    fn full(&self) -> PoolError {
        PoolError::Full {
            slots: self.slots_per_worker * self.workers.len(),
        }
    }

    /// Hands a job (holding a slot from [`AppPool::reserve`]) to its worker.
    pub fn submit(&self, worker: usize, job: Job) -> Result<(), PoolError> {
        self.workers[worker]
            .load()
            .jobs
            .send(Command::Run(job))
            .map_err(|_| PoolError::Unavailable {
                reason: "the app's worker has stopped".into(),
            })
    }

    /// Tells the worker that the client of request `id` went away.
    pub fn cancel(&self, worker: usize, id: u64) {
        let _ = self.workers[worker].load().jobs.send(Command::Cancel(id));
    }

    /// Asks worker `index` to dispose its isolate if it is idle.
    pub fn evict(&self, index: usize) {
        let _ = self.workers[index].load().jobs.send(Command::Evict);
    }

    /// The published stats of every worker.
    pub fn stats(&self) -> Vec<Arc<WorkerStats>> {
        self.workers
            .iter()
            .map(|w| w.load().stats.clone())
            .collect()
    }

    /// Whether the app has settled: at least one worker can serve, or it failed to load (and
    /// answers 503 deterministically).
    pub fn is_settled(&self) -> bool {
        self.failure.is_some()
            || self
                .workers
                .iter()
                .any(|w| w.load().stats.state() != IsolateState::Starting)
    }

    /// Why the app failed to load, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Requests held now, across workers.
    pub fn in_flight(&self) -> usize {
        self.workers
            .iter()
            .map(|w| w.load().load.load(Ordering::Acquire))
            .sum()
    }

    /// Stops accepting jobs and waits for the workers to finish what they hold.
    pub fn shutdown(mut self) {
        self.workers.clear();
        let threads = std::mem::take(self.threads.get_mut().unwrap_or_else(|p| p.into_inner()));
        for thread in threads.into_iter().flatten() {
            if thread.join().is_err() {
                tracing::error!(hostname = %self.hostname, "a worker thread panicked");
            }
        }
    }
}

impl Drop for AppPool {
    /// A pool replaced by a reload stops here, once the last request holding it is done: closing
    /// the channels lets each worker finish what it holds and exit (its thread is not joined).
    fn drop(&mut self) {
        self.workers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio::sync::oneshot;

    fn pool_without_threads(
        workers: usize,
        slots: usize,
    ) -> (AppPool, Vec<mpsc::UnboundedReceiver<Command>>) {
        let mut receivers = Vec::new();
        let mut pool = AppPool::failed("t".into(), String::new());
        pool.failure = None;
        pool.slots_per_worker = slots;
        for _ in 0..workers {
            let (jobs, rx) = mpsc::unbounded_channel();
            receivers.push(rx);
            let load = Arc::new(AtomicUsize::new(0));
            let stats = Arc::new(WorkerStats::new("t".into(), 0, load.clone(), false));
            pool.workers
                .push(ArcSwap::from_pointee(Worker { jobs, load, stats }));
        }
        (pool, receivers)
    }

    #[test]
    fn reserve_spreads_load_and_refuses_when_full() {
        let (pool, _rx) = pool_without_threads(2, 2);
        let mut guards = Vec::new();
        let mut used = [0; 2];
        for _ in 0..4 {
            let (index, guard) = pool.reserve().unwrap();
            used[index] += 1;
            guards.push(guard);
        }
        assert_eq!(used, [2, 2]);
        assert_eq!(pool.reserve().unwrap_err(), PoolError::Full { slots: 4 });
        guards.pop();
        assert!(pool.reserve().is_ok(), "a released slot is free again");
    }

    #[test]
    fn failed_pool_refuses_with_reason() {
        let pool = AppPool::failed("t".into(), "syntax error".into());
        assert_eq!(
            pool.reserve().unwrap_err(),
            PoolError::Unavailable {
                reason: "syntax error".into()
            }
        );
    }

    #[test]
    fn job_path_is_extracted() {
        let (reply, _) = oneshot::channel();
        let (pool, _rx) = pool_without_threads(1, 1);
        let (_, slot) = pool.reserve().unwrap();
        let job = Job {
            id: 1,
            method: "GET".into(),
            url: "http://a.example/x/y?z=1".into(),
            headers: vec![],
            body: Bytes::new(),
            timeout: Duration::from_secs(1),
            reply,
            slot,
        };
        assert_eq!(job.path(), "/x/y?z=1");
    }
}
