//! Contexts: the spares made ahead for the next requests (context reset), the shared one
//! (reset off), and creating one from the app snapshot.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use super::*;

impl Worker {
    /// With context reset, makes the next request's context now, so that request does not wait
    /// for it: on an idle worker this takes context creation off the request's latency; under
    /// load it is the work the next request would do anyway. Not while the isolate is going
    /// away or its heap is under pressure. Called by `after_event` before it publishes the heap,
    /// so the published figure (which the node's memory budget reads) includes the spare.
    pub(super) fn prepare_spare_context(&mut self) {
        if !self.spare.is_empty() {
            return;
        }
        self.add_spare_context();
    }

    /// Whether the worker would make another spare context while it has nothing else to do:
    /// up to [`MAX_SPARE_CONTEXTS`], so a burst of that many requests to an idle app all find
    /// their context made.
    /// Not when the app keeps one context, the isolate is going away or its heap is under
    /// pressure.
    pub(super) fn wants_spare_context(&self) -> bool {
        self.image.context_reset
            && self.spare.len() < MAX_SPARE_CONTEXTS
            && self.isolate.is_some()
            && self.recycle.is_none()
            && self.stats.pressure.load(Ordering::Relaxed) == Pressure::Normal.as_number()
    }

    /// Makes one more spare context if [`Worker::wants_spare_context`].
    pub(super) fn add_spare_context(&mut self) {
        if !self.wants_spare_context() {
            return;
        }
        let spare = {
            let scope = &mut v8::HandleScope::new(self.isolate.as_mut().expect(PRESENT));
            new_js_context(scope, &self.image, &self.queues, &self.wasm)
        };
        self.spare.push(spare);
    }

    /// Without context reset, the isolate keeps one context for all requests.
    pub(super) fn ensure_shared_context(&mut self) {
        if self.image.context_reset || self.state.borrow().shared.is_some() {
            return;
        }
        let scope = &mut v8::HandleScope::new(self.isolate.as_mut().expect(PRESENT));
        let shared = new_js_context(scope, &self.image, &self.queues, &self.wasm);
        self.state.borrow_mut().shared = Some(shared);
    }
}

/// Creates a context from the app snapshot, with its own microtask queue.
pub(super) fn new_js_context(
    scope: &mut v8::HandleScope<()>,
    image: &AppImage,
    queues: &QueuePool,
    wasm: &WasmCache,
) -> Rc<JsContext> {
    let pooled = queues.borrow_mut().free.pop();
    let queue = pooled.unwrap_or_else(|| OwnedQueue::new(scope));
    let queue_ptr = &*queue as *const v8::MicrotaskQueue as *mut v8::MicrotaskQueue;
    let options = v8::ContextOptions {
        microtask_queue: Some(queue_ptr),
        ..Default::default()
    };
    let context = v8::Context::new(scope, options);
    let scope = &mut v8::ContextScope::new(scope, context);
    let internals = webapi::internals(scope).expect("the app snapshot holds the runtime internals");
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

#[cfg(test)]
mod tests {
    use crate::webapi::host::OwnedQueue;

    /// A queue's memory is freed when its owner drops it: made and dropped a thousand times, the
    /// queues reuse a few blocks (the v8 crate's own drop leaves each block allocated, so every
    /// new queue would be at a new address).
    #[test]
    fn a_dropped_microtask_queue_gives_its_memory_back() {
        crate::isolate::init_v8();
        let isolate = &mut v8::Isolate::new(Default::default());
        let mut addresses = std::collections::HashSet::new();
        for _ in 0..1000 {
            let queue = OwnedQueue::new(isolate);
            addresses.insert(&*queue as *const v8::MicrotaskQueue as usize);
        }
        assert!(
            addresses.len() < 10,
            "1000 queues made and dropped in turn took {} blocks",
            addresses.len()
        );
    }
}
