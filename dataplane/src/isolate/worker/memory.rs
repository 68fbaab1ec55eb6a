//! Memory and recycling: heap statistics, the pressure levels acted on after every event, and
//! replacing, evicting or disposing of the isolate.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::*;

impl Worker {
    /// Heap used plus external memory. V8's external figure covers ArrayBuffers and WebAssembly
    /// memories (which do not go through our allocator); ours covers buffers V8 has not counted
    /// yet. The larger of the two is the truth.
    pub(super) fn heap_and_external(&mut self) -> (usize, usize) {
        let (heap, external, _) = self.heap_figures();
        (heap, external)
    }

    /// Heap used, external memory, and the isolate's footprint (see [`WorkerStats::footprint`]).
    fn heap_figures(&mut self) -> (usize, usize, usize) {
        let stats = self.isolate().get_heap_statistics();
        // V8 counts the runtime's source among the external memory, but it is a static of the
        // binary that every isolate shares (the lazy scripts an app compiled stay counted: at
        // most 150 KB more than they cost).
        let v8_external = stats
            .external_memory()
            .saturating_sub(webapi::RUNTIME_SOURCE.len());
        let external = v8_external.max(self.budget.external());
        self.physical_peak = self.physical_peak.max(stats.total_physical_size());
        // The app snapshot the isolate reads is shared with the app's other workers and the
        // snapshot cache, so it is not counted per isolate.
        let footprint = self.physical_peak
            + stats.malloced_memory()
            + external
            + super::super::WORKER_OVERHEAD_BYTES;
        (stats.used_heap_size(), external, footprint)
    }

    /// After a memory-reducing collection (a low-memory or memory-pressure notification), which
    /// empties V8's page pool: the heap costs what it commits now.
    pub(super) fn pages_given_back(&mut self) {
        self.physical_peak = 0;
    }

    pub(super) fn memory_used(&mut self) -> usize {
        let (heap, external) = self.heap_and_external();
        heap + external
    }

    pub(super) fn pressure(&mut self) -> Pressure {
        let used = self.memory_used();
        Pressure::of(used, self.budget.limit)
    }

    /// After every event: publish stats, act on memory pressure, recycle the isolate when it is
    /// due and idle.
    pub(super) fn after_event(&mut self) {
        if self.isolate.is_none() {
            return;
        }
        self.prepare_spare_context();
        self.stats
            .spare_contexts
            .store(self.spare.len() as u64, Ordering::Relaxed);
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
            let (heap, external, footprint) = self.heap_figures();
            let pressure = Pressure::of(heap + external, self.budget.limit);
            self.stats.heap_used.store(heap as u64, Ordering::Relaxed);
            self.stats
                .footprint
                .store(footprint as u64, Ordering::Relaxed);
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
                self.pages_given_back();
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
        } else if self.recycle.is_some() && !self.state.borrow().sockets.is_empty() {
            // Open sockets would keep the isolate busy for good: they close (1001), and the
            // isolate is replaced once their requests end.
            self.state
                .borrow_mut()
                .close_sockets("the app's isolate is being replaced");
        }
    }

    /// Once a worker has been idle for a while and its heap (used, or committed at its peak) has
    /// grown by [`IDLE_GARBAGE_MIN`]: a full collection that also gives V8's free pages back.
    /// With context reset every request leaves its context (about 0.2 MB for a small app) for
    /// the collector, and V8 collects the old generation only once it has grown to its limit;
    /// and what V8's own collections free stays in its page pool. Without this an idle worker
    /// would hold megabytes of dead contexts or pooled pages, which its footprint (and so the
    /// node's memory budget) counts.
    pub(super) fn collect_idle_garbage(&mut self) {
        if self.isolate.is_none() {
            return;
        }
        let (before, _, _) = self.heap_figures();
        let peak = self.physical_peak;
        if before < self.collected_heap + IDLE_GARBAGE_MIN
            && peak < self.collected_physical + IDLE_GARBAGE_MIN
        {
            return;
        }
        let began = Instant::now();
        self.last_gc = began;
        // One full collection that shrinks the heap (a low-memory notification makes several).
        self.isolate()
            .memory_pressure_notification(v8::MemoryPressureLevel::Critical);
        self.pages_given_back();
        let (after, _, _) = self.heap_figures();
        (self.collected_heap, self.collected_physical) = (after, self.physical_peak);
        tracing::debug!(
            heap_before = before,
            heap_after = after,
            committed_peak = peak,
            committed_after = self.collected_physical,
            took_us = began.elapsed().as_micros() as u64,
            "an idle worker collected its garbage"
        );
    }

    /// Over 95% of `memory_mb` even after a full collection: the requests in flight end now
    /// (503 memory-limit) and the isolate is replaced.
    pub(super) fn memory_emergency(&mut self) {
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
    pub(super) fn replace_isolate(&mut self) {
        let reason = self.recycle.take().unwrap_or("recycle");
        // The old isolate goes before the new one is created (V8 enters isolates per thread and
        // wants them dropped in reverse order).
        self.retire("replacing the isolate", reason);
        self.restart();
    }

    /// Logs and counts why the isolate goes, then disposes of it.
    pub(super) fn retire(&mut self, what: &'static str, reason: &'static str) {
        tracing::info!(hostname = %self.image.hostname, reason = %reason, "{what}");
        METRICS
            .evictions
            .with_label_values(&[&self.image.hostname, reason])
            .inc();
        self.dispose_isolate();
    }

    /// A fresh isolate (and clock) for this worker; the old one must already be disposed.
    pub(super) fn restart(&mut self) {
        match Worker::new(
            self.image.clone(),
            self.stats.clone(),
            self.fetch_tx.clone(),
        ) {
            Ok(fresh) => *self = fresh,
            // Left without an isolate: the event loop ends the worker.
            Err(err) => {
                tracing::error!(hostname = %self.image.hostname, error = %err, "cannot replace the isolate; ending the worker")
            }
        }
    }

    /// Ends the worker's isolate for good (`Reaped` when idle too long, `Evicted` by the node's
    /// memory budget); its thread ends next and the pool starts a worker again on demand.
    pub(super) fn end(&mut self, state: IsolateState) {
        if state == IsolateState::Reaped {
            tracing::debug!(hostname = %self.image.hostname, "worker idle past limits.idle_timeout_secs; ending it");
            METRICS
                .evictions
                .with_label_values(&[&self.image.hostname, "idle"])
                .inc();
            self.dispose_isolate();
        } else {
            self.retire("evicting the isolate", "node_budget");
        }
        for counter in [
            &self.stats.heap_used,
            &self.stats.external,
            &self.stats.footprint,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        self.stats.set_state(state);
    }

    /// Drops every handle and queue of the isolate, then the isolate itself.
    pub(super) fn dispose_isolate(&mut self) {
        self.spare.clear();
        self.state.borrow_mut().clear();
        {
            let mut queues = self.queues.borrow_mut();
            queues.free.clear();
            queues.quarantined.clear();
        }
        self.isolate = None;
    }
}
