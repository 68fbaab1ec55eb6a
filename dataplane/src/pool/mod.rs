//! Per-app pools: up to `limits.workers` OS threads, each owning one isolate, each with a
//! bounded number of request slots. A pool starts with no threads: a worker starts (from the
//! app's snapshot) when a request finds every running worker busy, and ends its thread after
//! `limits.idle_timeout_secs` without requests, or when the node's memory budget evicts it.
//! Dispatch goes to an idle worker, else a new one, else the least busy; when every slot of the
//! app is taken the request is refused at once. Knows nothing about V8 beyond starting
//! `isolate::run_worker`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use tokio::sync::mpsc;

use crate::isolate::{self, AppImage};
use crate::job::{CLOSED, Command, Job, SlotGuard, WorkerStats, stats};

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
    /// Slots held; [`CLOSED`] once the thread has ended.
    load: Arc<AtomicUsize>,
    stats: Arc<WorkerStats>,
}

impl Worker {
    /// Starts worker thread `index` serving `image`; its isolates are numbered on from
    /// `generation` (that of the worker it replaces).
    fn start(
        image: &Arc<AppImage>,
        index: usize,
        generation: u64,
    ) -> (Self, std::thread::JoinHandle<()>) {
        // Slots bound the queue, so the channel itself need not.
        let (jobs, rx) = mpsc::unbounded_channel();
        let load = Arc::new(AtomicUsize::new(0));
        let stats = Arc::new(WorkerStats::new(
            image.hostname.clone(),
            index,
            load.clone(),
            !image.context_reset,
        ));
        stats.generation.store(generation, Ordering::Release);
        let (image, worker_stats) = (image.clone(), stats.clone());
        let thread = std::thread::Builder::new()
            .name(format!("nano-worker-{}-{index}", image.hostname))
            .stack_size(isolate::WORKER_STACK_BYTES)
            .spawn(move || isolate::run_worker(image, worker_stats, rx))
            .expect("the OS can start a worker thread");
        (Self { jobs, load, stats }, thread)
    }

    /// Takes one of its slots, unless all `slots` are taken or its thread has ended.
    fn take_slot(&self, slots: usize) -> Option<SlotGuard> {
        if self.load.fetch_add(1, Ordering::AcqRel) >= slots {
            self.load.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(SlotGuard::holding(self.load.clone()))
    }

    fn load(&self) -> usize {
        self.load.load(Ordering::Acquire)
    }

    fn is_running(&self) -> bool {
        self.load() < CLOSED
    }

    /// What stays in the worker's place once its thread has ended: its stats (for
    /// `/_admin/isolates`) and closed slots, but not its channel, whose first block of jobs
    /// (4.9 KB) would otherwise stay with every app requested once and idle since.
    fn ended(&self) -> Self {
        Self {
            jobs: ENDED.clone(),
            load: self.load.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// The channel of every ended worker: nobody receives on it, and no job is sent to it (an
/// ended worker's slots are closed).
static ENDED: LazyLock<mpsc::UnboundedSender<Command>> =
    LazyLock::new(|| mpsc::unbounded_channel().0);

/// The threads of a pool's workers.
#[derive(Default)]
struct Threads {
    /// By worker place: the thread of the worker there now.
    current: Vec<Option<std::thread::JoinHandle<()>>>,
    /// Threads of workers replaced after they closed their slots, still disposing of their
    /// isolate (a stuck worker's thread is let go instead).
    ending: Vec<std::thread::JoinHandle<()>>,
}

impl Threads {
    fn new(places: usize) -> Self {
        Self {
            current: (0..places).map(|_| None).collect(),
            ending: Vec::new(),
        }
    }

    /// Puts `thread` in `place`; the one there before is joined by [`Threads::join_ended`] once
    /// it has ended, or at shutdown.
    fn replace(&mut self, place: usize, thread: std::thread::JoinHandle<()>) {
        self.ending.extend(self.current[place].replace(thread));
    }

    /// Joins the threads that have ended, so their stacks are released.
    fn join_ended(&mut self, hostname: &str) {
        let ended = self
            .current
            .iter_mut()
            .filter(|t| t.as_ref().is_some_and(|t| t.is_finished()))
            .filter_map(Option::take)
            .chain(self.ending.extract_if(.., |t| t.is_finished()));
        for thread in ended.collect::<Vec<_>>() {
            if thread.join().is_err() {
                tracing::error!(%hostname, "a worker thread panicked");
            }
        }
    }

    fn all(self) -> impl Iterator<Item = std::thread::JoinHandle<()>> {
        self.current.into_iter().flatten().chain(self.ending)
    }
}

/// The workers of one app, or why it has none.
pub struct AppPool {
    hostname: Arc<str>,
    image: Option<Arc<AppImage>>,
    /// One place per `limits.workers`: the worker last started there (its thread may have ended,
    /// see [`Worker::is_running`]), or none yet.
    workers: Vec<ArcSwapOption<Worker>>,
    /// The threads to join at shutdown. Held while a worker starts, so two requests never
    /// start one in the same place.
    threads: Mutex<Threads>,
    slots_per_worker: usize,
    failure: Option<String>,
}

impl AppPool {
    /// A pool of up to `workers` workers serving `image`; none runs until a request comes.
    pub fn start(image: Arc<AppImage>, workers: usize, slots_per_worker: usize) -> Self {
        Self {
            hostname: image.hostname.clone(),
            image: Some(image),
            workers: (0..workers).map(|_| ArcSwapOption::empty()).collect(),
            threads: Mutex::new(Threads::new(workers)),
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
            threads: Mutex::new(Threads::default()),
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
        let (Some(image), Some(place)) = (&self.image, self.workers.get(index)) else {
            return false;
        };
        let Some(current) = place.load_full() else {
            return false;
        };
        let since = current.stats.in_js_since_ms.load(Ordering::Acquire);
        let inside = Duration::from_millis(stats::now_ms().saturating_sub(since));
        if since == 0 || inside <= limit || current.stats.stuck.swap(true, Ordering::AcqRel) {
            return false;
        }
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        let generation = current.stats.generation.load(Ordering::Acquire);
        let (fresh, thread) = Worker::start(image, index, generation);
        place.store(Some(Arc::new(fresh)));
        // The stuck thread is let go: it exits when the stuck JS returns.
        drop(threads.current[index].replace(thread));
        drop(threads);
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

    /// Takes a slot: on an idle worker, else on a worker started for it (while the app has
    /// fewer than `limits.workers` running), else on the least busy one; refuses at once when
    /// every slot is taken.
    pub fn reserve(&self) -> Result<(usize, SlotGuard), PoolError> {
        self.check_failure()?;
        // Each pass either takes a slot or finds the pool changed under it (a slot taken, a
        // worker started or ended in between); a few passes settle it.
        for _ in 0..=self.workers.len() + 2 {
            let least_busy = self.least_busy();
            let worker = match least_busy {
                Some((_, ref worker)) if worker.load() == 0 => least_busy,
                _ if self.has_free_place() => self.start_worker(),
                Some((_, ref worker)) if worker.load() < self.slots_per_worker => least_busy,
                _ => return Err(self.full()),
            };
            if let Some((index, worker)) = worker
                && let Some(slot) = worker.take_slot(self.slots_per_worker)
            {
                return Ok((index, slot));
            }
        }
        Err(self.full())
    }

    /// Whether a place has no running worker (so one can start there).
    fn has_free_place(&self) -> bool {
        self.workers
            .iter()
            .any(|place| place.load().as_ref().is_none_or(|w| !w.is_running()))
    }

    /// Whether a slot is free now (without taking one): a full app refuses before a request's
    /// body is read.
    pub fn has_room(&self) -> Result<(), PoolError> {
        self.check_failure()?;
        let room = self.has_free_place()
            || self
                .least_busy()
                .is_some_and(|(_, w)| w.load() < self.slots_per_worker);
        if room { Ok(()) } else { Err(self.full()) }
    }

    fn check_failure(&self) -> Result<(), PoolError> {
        match &self.failure {
            Some(reason) => Err(PoolError::Unavailable {
                reason: reason.clone(),
            }),
            None if self.workers.is_empty() => Err(PoolError::Unavailable {
                reason: "the app has no workers".into(),
            }),
            None => Ok(()),
        }
    }

    /// The running worker holding the fewest requests.
    fn least_busy(&self) -> Option<(usize, Arc<Worker>)> {
        self.workers
            .iter()
            .enumerate()
            .filter_map(|(index, place)| place.load_full().map(|w| (index, w)))
            .filter(|(_, w)| w.is_running())
            .min_by_key(|(_, w)| w.load())
    }

    /// Starts a worker in the first place without a running one; `None` when all run.
    fn start_worker(&self) -> Option<(usize, Arc<Worker>)> {
        let image = self.image.as_ref()?;
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        let (index, generation) =
            self.workers
                .iter()
                .enumerate()
                .find_map(|(index, place)| match &*place.load() {
                    None => Some((index, 0)),
                    Some(w) if !w.is_running() => {
                        Some((index, w.stats.generation.load(Ordering::Acquire)))
                    }
                    Some(_) => None,
                })?;
        let (worker, thread) = Worker::start(image, index, generation);
        let worker = Arc::new(worker);
        self.workers[index].store(Some(worker.clone()));
        threads.replace(index, thread);
        Some((index, worker))
    }

    fn full(&self) -> PoolError {
        PoolError::Full {
            slots: self.slots_per_worker * self.workers.len(),
        }
    }

    /// Hands a job (holding a slot from [`AppPool::reserve`]) to its worker.
    pub fn submit(&self, worker: usize, job: Job) -> Result<(), PoolError> {
        let stopped = || PoolError::Unavailable {
            reason: "the app's worker has stopped".into(),
        };
        // The slot the job holds keeps the worker's thread running until the job is done.
        let place = self.workers[worker].load();
        let worker = place.as_ref().ok_or_else(stopped)?;
        worker.jobs.send(Command::Run(job)).map_err(|_| stopped())
    }

    /// Tells the worker that the client of request `id` went away.
    pub fn cancel(&self, worker: usize, id: u64) {
        if let Some(worker) = &*self.workers[worker].load() {
            let _ = worker.jobs.send(Command::Cancel(id));
        }
    }

    /// Asks worker `index` to end (isolate and thread) if it is idle.
    pub fn evict(&self, index: usize) {
        if let Some(worker) = &*self.workers[index].load() {
            let _ = worker.jobs.send(Command::Evict);
        }
    }

    /// Asks every worker to end if it is idle.
    pub fn evict_all(&self) {
        (0..self.workers.len()).for_each(|index| self.evict(index));
    }

    /// Asks every running worker to close its WebSockets (1001).
    pub fn close_sockets(&self) {
        for place in &self.workers {
            if let Some(worker) = &*place.load() {
                let _ = worker.jobs.send(Command::CloseSockets);
            }
        }
    }

    /// The published stats of every worker started so far (those whose thread has ended show
    /// state `reaped` or `evicted`).
    pub fn stats(&self) -> Vec<Arc<WorkerStats>> {
        self.workers
            .iter()
            .filter_map(|place| place.load().as_ref().map(|w| w.stats.clone()))
            .collect()
    }

    /// Whether the app has settled: it can serve (its snapshot is prepared; workers start on
    /// demand), or it failed to load (and answers 503 deterministically).
    pub fn is_settled(&self) -> bool {
        self.failure.is_some() || self.image.is_some()
    }

    /// Why the app failed to load, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Joins the threads of workers that have ended (reaped or evicted): an ended thread keeps
    /// its stack until it is joined.
    /// Ended workers also let go of their channel (see [`Worker::ended`]).
    pub fn join_ended(&self) {
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        threads.join_ended(&self.hostname);
        // Under the threads lock, so no worker starts in a place meanwhile.
        for place in &self.workers {
            if let Some(worker) = &*place.load()
                && !worker.is_running()
                && !worker.jobs.same_channel(&ENDED)
            {
                place.store(Some(Arc::new(worker.ended())));
            }
        }
    }

    /// Requests held now, across workers.
    pub fn in_flight(&self) -> usize {
        self.workers
            .iter()
            .filter_map(|place| place.load_full())
            .filter(|w| w.is_running())
            .map(|w| w.load())
            .sum()
    }

    /// Stops accepting jobs and waits for the workers to finish what they hold.
    pub fn shutdown(mut self) {
        self.workers.clear();
        let threads = std::mem::take(self.threads.get_mut().unwrap_or_else(|p| p.into_inner()));
        for thread in threads.all() {
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
                .push(ArcSwapOption::from_pointee(Worker { jobs, load, stats }));
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
    fn an_ended_worker_lets_go_of_its_channel_and_keeps_its_stats() {
        let (pool, mut receivers) = pool_without_threads(2, 1);
        let stats = |i: usize| pool.workers[i].load_full().unwrap().stats.clone();
        let before = (stats(0), stats(1));
        // Worker 0's thread ended (reaped): its slots are closed.
        let ended = pool.workers[0].load_full().unwrap();
        assert!(crate::job::close_slots(&ended.load));
        drop(ended);
        pool.join_ended();
        assert_eq!(
            receivers[0].try_recv().err(),
            Some(mpsc::error::TryRecvError::Disconnected),
            "nobody holds the ended worker's channel"
        );
        assert_eq!(
            receivers[1].try_recv().err(),
            Some(mpsc::error::TryRecvError::Empty),
            "the running worker keeps its channel"
        );
        assert!(Arc::ptr_eq(&stats(0), &before.0) && Arc::ptr_eq(&stats(1), &before.1));
        // Place 0 still reads as ended: a request takes the running worker (this pool has no
        // image to start another), and a second look changes nothing.
        assert_eq!(pool.reserve().unwrap().0, 1);
        pool.join_ended();
        assert_eq!(pool.workers[0].load_full().unwrap().load(), CLOSED);
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
            upgrade: false,
            client: "192.0.2.1:1".into(),
        };
        assert_eq!(job.path(), "/x/y?z=1");
    }
}
