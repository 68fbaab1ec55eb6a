//! Entering JS under the limits: the armed clock around every stretch of a request's JS, V8's
//! platform tasks under the tightest budget in flight, and what follows a termination.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::*;

impl Worker {
    /// Enters JS for `request` under its remaining CPU and wall budgets, drains the context's
    /// microtasks, and deals with a termination.
    pub(super) fn run_js(
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
        let running_in = crate::limits::cpu::running_in(self.isolate(), &js.context);
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
        drop(running_in);
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
                state.publish_tail(request, spent.cpu);
            }
            None => {}
        }
        drop(state);
        if let Some(kind) = self.termination(&spent) {
            self.record_kill_stack(request, kind, spent.stack);
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
    pub(super) fn termination(&mut self, spent: &crate::limits::cpu::Spent) -> Option<LimitKind> {
        let kind = spent.tripped.or_else(|| {
            // Ended by V8 without a recorded reason (should not happen): treat it as CPU.
            self.isolate()
                .is_execution_terminating()
                .then_some(LimitKind::Cpu)
        })?;
        self.isolate().cancel_terminate_execution();
        Some(kind)
    }

    /// Runs V8's pending foreground tasks; if any ran, drains the microtasks they may have queued
    /// for each request in flight, under that request's budgets.
    ///
    /// A task can run tenant JS itself (a FinalizationRegistry callback, a WebAssembly start
    /// function reached through an asynchronous step), so the tasks run under the tightest
    /// budget left among the requests in flight, and the CPU they use is charged to each of
    /// them. If a limit ends a task, no request can be singled out: every request in flight on
    /// this worker ends with that limit (they are the same app's).
    pub(super) fn pump_platform(&mut self) {
        if self.isolate.is_none() {
            return;
        }
        let now = Instant::now();
        // Open WebSockets between events are not charged: their budget counts per event.
        let (cpu_left, wall_left) = {
            let state = self.state.borrow();
            state.requests.values().filter(|r| !r.socket).fold(
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
        let ran = crate::isolate::pump_platform(self.isolate());
        let spent = self.clock.exit();
        self.stats.in_js_since_ms.store(0, Ordering::Release);
        if !ran {
            // No task ran, so no JS used the time: the pump's own cost is not a request's (a
            // request awaiting a long timer would otherwise pay for every pump meanwhile).
            if spent.tripped.is_some() {
                self.isolate().cancel_terminate_execution();
            }
            return;
        }
        let in_flight: Vec<(u64, Rc<JsContext>)> = self
            .state
            .borrow()
            .requests
            .iter()
            .map(|(id, r)| (*id, r.js.clone()))
            .collect();
        for request in self.state.borrow_mut().requests.values_mut() {
            if !request.socket {
                request.cpu_used += spent.cpu;
            }
        }
        if let Some(kind) = self.termination(&spent) {
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
        for (id, js) in in_flight {
            if self.state.borrow().requests.contains_key(&id) {
                self.run_js(id, &js, |_| {});
            }
        }
    }

    /// While someone tails the app: the event of `request`, which `kind` ended, shows where its
    /// JS was then (as an exception with the limit's message and the stack the interrupt took).
    fn record_kill_stack(&mut self, request: u64, kind: LimitKind, stack: Option<String>) {
        let Some(stack) = stack else { return };
        let mut state = self.state.borrow_mut();
        if let Some(tail) = state
            .requests
            .get_mut(&request)
            .and_then(|r| r.tail.as_mut())
        {
            let message = match kind {
                LimitKind::Cpu => "the request went past its CPU time limit (cpu_ms)",
                LimitKind::Wall => "the request went past its wall-time limit (timeout_secs)",
                LimitKind::Memory => "the isolate went past its memory limit (memory_mb)",
            };
            tail.exception = Some(crate::tail::Exception {
                message: message.into(),
                stack: format!("Error: {message}\n{stack}"),
            });
        }
    }

    /// A limit ended `request`'s JS: answer it, throw its context away, keep the worker serving.
    pub(super) fn after_termination(&mut self, request: u64, js: &Rc<JsContext>, kind: LimitKind) {
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
            self.pages_given_back();
            if self.pressure() >= Pressure::Critical {
                self.recycle = Some("memory");
            }
        }
    }
}
