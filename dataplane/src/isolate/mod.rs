//! Isolates: V8 start-up, the per-app snapshot (runtime JS plus the app's evaluated module graph),
//! context creation from it, and the worker loop that runs requests, timers and deadlines.
//!
//! An app is prepared once: a snapshot creator evaluates `runtime.js`, loads the app's modules
//! from disk, evaluates them and finds the fetch handler, and the resulting blob becomes the
//! start-up snapshot of every isolate of the app. A context reset is then only
//! `v8::Context::new` on that snapshot.

mod modules;
pub mod prepare;
mod worker;

pub use modules::AppSource;
pub use prepare::{PREPARE_APP_BUDGET, PREPARE_APP_ERROR, Prepared, Preparer};
pub(crate) use worker::run_worker;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Once};

use crate::limits::memory::{self, Budget};
use crate::webapi;
use webapi::host::{StateRef, WorkerState};
use webapi::internals_key;

/// Stack of a worker thread; V8's own stack limit (about 1 MiB) fits well inside.
pub const WORKER_STACK_BYTES: usize = 8 * 1024 * 1024;

/// What a running worker costs the machine beyond what V8 reports for its isolate: V8's own
/// per-isolate structures outside the heap (what glibc holds for them: about 0.5 MB for a bare
/// isolate), the stack the thread has touched, its event loop. Measured (release build, 100
/// hello apps with distinct sources, 5 requests each, bench/RESULTS.md "session 9"): RSS per
/// running worker minus its app snapshot minus what V8 reports is 0.41 MiB right after the
/// requests and 0.56 MiB once the worker has collected while idle; 1 MiB leaves room for what
/// glibc keeps of ended workers while hundreds start and end (500 apps answered in turn under a
/// 256 MiB budget stay 24 MB under base + budget).
pub const WORKER_OVERHEAD_BYTES: usize = 1024 * 1024;

/// The heap size at which an isolate's first full collection comes. Left to V8, it is about
/// 27 MB: a busy reset-on worker, whose every request leaves a dead context in the old
/// generation, reaches it before its first mark-compact, and the 24 MB that collection frees
/// stay in V8's page pool, resident, for as long as the worker is busy (only a
/// memory-reducing collection empties the pool). From 8 MiB, the first collection comes early
/// and the heap then cycles between what is live and V8's own limit above it (about 8 MB
/// more): 11 MB of RSS for a busy hello worker instead of 24-27, at the same CPU per request
/// (`bench/busy.py`). 4 MiB did as well under load but collected within a light app's first
/// few requests, leaving pages pooled that the idle collection then missed.
pub const INITIAL_HEAP_BYTES: usize = 8 * 1024 * 1024;

/// Starts V8 once per process. Binaries call it first thing in `main`, before any other thread
/// exists (see below); everything that makes an isolate calls it too, as a no-op by then.
/// The V8 flags every isolate of this binary runs with (part of the snapshot cache's key: a
/// snapshot holds what they install).
/// - `--no-extensible-ro-snapshot`: isolates of one process share V8's read-only heap, so every
///   snapshot they start from must have the same read-only layout; a non-extensible read-only
///   snapshot guarantees it for the per-app snapshots made by separate `nano prepare-app`
///   processes.
/// - What Workers (workerd's newer V8) have and V8 13.7 ships off: Uint8Array base64 and hex
///   (`--js-base-64`), `Float16Array`, `Math.f16round` and `DataView` float16 access
///   (`--js-float16array`). These install themselves in every new context (V8 keeps flagged
///   features out of snapshots), which a reset-on request pays: `context_cost` counts 17 K
///   and 110 K instructions a context for them, against 2.46 M for the context. The rest of
///   what Workers have is in `webapi/js/runtime/language.js`, explicit resource management
///   included (its flag would cost 206 K a context).
pub const V8_FLAGS: &str = "--no-extensible-ro-snapshot --js-base-64 --js-float16array";

pub fn init_v8() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        v8::V8::set_flags_from_string(V8_FLAGS);
        // On CPUs with memory protection keys (PKU), V8 guards its code and dispatch tables with
        // a key that only the initialising thread and the threads it spawns afterwards may use:
        // an isolate made on a thread that existed before segfaults in `Isolate::new`. Started
        // from a single-threaded `main`, every thread descends from it and the protection stays
        // on; started later (unit tests, embedders), V8 is told not to use the keys.
        if threads_in_process() > 1 {
            v8::V8::set_flags_from_string("--no-memory-protection-keys");
        }
        // Without ICU data, the first Intl call (even `new Intl.DateTimeFormat()`) aborts the
        // whole process. The data must be the ICU version V8 was built with.
        v8::icu::set_common_data_74(deno_core_icudata::ICU_DATA)
            .expect("deno_core_icudata is pinned to the ICU version of the pinned v8 crate");
        // Workers answer in en-US and UTC whatever the machine is set to (the time zone is
        // pinned with TZ=UTC in `main`, before any thread starts).
        v8::icu::set_default_locale("en_US");
        let platform = v8::new_default_platform(0, false).make_shared();
        v8::V8::initialize_platform(platform.clone());
        v8::V8::initialize();
        let _ = PLATFORM.set(platform);
    });
}

/// How many threads this process runs now (1 where the count cannot be read, which is only off
/// Linux, where V8 uses no protection keys).
fn threads_in_process() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(1, |tasks| tasks.count())
}

static PLATFORM: std::sync::OnceLock<v8::SharedRef<v8::Platform>> = std::sync::OnceLock::new();

/// Most V8 foreground tasks one pump runs. Some tasks post themselves again at once: cppgc's
/// incremental sweeper does after every major collection for as long as its background threads
/// are still sweeping. Pumping until the queue is empty kept the worker spinning through
/// millions of such tasks until that work was done elsewhere (a third of all instructions in
/// a reset-on benchmark); what a pump leaves runs on the next one (every 2 ms while requests
/// are in flight, every 2 s when idle).
const TASKS_PER_PUMP: usize = 32;

/// Runs the foreground tasks V8's platform queued for `isolate` (finished background work such
/// as asynchronous WebAssembly compilation, garbage collection steps), at most
/// [`TASKS_PER_PUMP`] of them. Returns whether any ran.
pub(crate) fn pump_platform(isolate: &mut v8::Isolate) -> bool {
    let Some(platform) = PLATFORM.get() else {
        return false;
    };
    let mut ran = 0;
    while ran < TASKS_PER_PUMP && v8::Platform::pump_message_loop(platform, isolate, false) {
        ran += 1;
    }
    ran > 0
}

/// Why an app could not be prepared. Each message names the file and the reason; the variant
/// says whose the fault is (logged as `kind`).
#[derive(Debug, thiserror::Error)]
pub enum AppLoadError {
    /// The app's code is at fault: a file missing or unreadable, a syntax or link error, a
    /// throw at top level, a corrupt sliver or `.wasm` file.
    #[error("{0}")]
    Code(String),
    /// Top-level evaluation ran past `limits.startup_ms`.
    #[error(
        "{what}: module evaluation did not finish within the start-up budget of {budget_ms} ms \
         (limits.startup_ms; an endless loop at top level?); move slow work into the fetch handler"
    )]
    StartupBudget { what: String, budget_ms: u128 },
    /// The `prepare-app` child died (a V8 fatal error while evaluating the app, a signal).
    #[error("{what}: preparing the app crashed ({status}){detail}")]
    Crashed {
        what: String,
        status: String,
        detail: String,
    },
    /// The node could not prepare it: the child did not start, its report or snapshot could not
    /// be read, V8 made no snapshot.
    #[error("{0}")]
    Node(String),
}

impl AppLoadError {
    /// The variant as a log field: `code`, `startup-budget`, `crashed` or `node`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Code(_) => "code",
            Self::StartupBudget { .. } => "startup-budget",
            Self::Crashed { .. } => "crashed",
            Self::Node(_) => "node",
        }
    }
}

/// Everything a worker needs to create isolates for one app. Immutable and shared by its workers.
pub struct AppImage {
    pub hostname: Arc<str>,
    pub context_reset: bool,
    pub limits: nano_config::Limits,
    pub fetch: nano_config::Fetch,
    pub websockets: nano_config::WebSockets,
    /// Which handler shape the app uses: `module` or `listener`.
    pub handler: String,
    snapshot: SnapshotSource,
    env: BTreeMap<String, String>,

    /// The module files (name, sha256) the app was built from, for change detection.
    pub files: Vec<(String, String)>,
    /// The app's `.wasm` imports: (name, SHA-256, bytes), compiled once per isolate.
    pub wasm: Vec<(String, String, Arc<[u8]>)>,
}

impl AppImage {
    /// Prepares an app through `preparer` (cache or a `prepare-app` child).
    pub fn prepare(app: &nano_config::App, preparer: &Arc<Preparer>) -> Result<Self, AppLoadError> {
        let (prepared, source) = preparer.prepare(app)?;
        // The bytes of `.wasm` imports come from the app's own source, checked again here.
        let root = source.root()?;
        let mut wasm = Vec::new();
        for (name, _) in prepared
            .files
            .iter()
            .filter(|(name, _)| name.ends_with(".wasm"))
        {
            let bytes = source
                .read(&root, &root.join(name))
                .map_err(|err| AppLoadError::Code(format!("cannot read {name}: {err}")))?;
            nano_sliver::check_wasm_header(&bytes)
                .map_err(|reason| AppLoadError::Code(format!("{name}: {reason}")))?;
            // Its memories are capped at the app's memory limit, as for modules made in JS.
            let limit = u64::from(app.limits.memory_mb) * crate::limits::memory::MIB as u64;
            let bytes = match crate::webapi::wasm_limits::cap_memories(&bytes, limit)
                .map_err(|reason| AppLoadError::Code(format!("{name}: {reason}")))?
            {
                crate::webapi::wasm_limits::Capped::Rewritten(capped, _) => capped,
                crate::webapi::wasm_limits::Capped::Unchanged => bytes,
            };
            wasm.push((
                name.clone(),
                nano_sliver::sha256_hex(&bytes),
                Arc::from(bytes),
            ));
        }
        Ok(Self {
            hostname: app.hostname.as_str().into(),
            context_reset: app.context_reset,
            limits: app.limits.clone(),
            fetch: app.fetch.clone(),
            websockets: app.websockets.clone(),
            handler: prepared.handler,
            snapshot: match prepared.snapshot {
                Some(bytes) if !preparer.caches() => SnapshotSource::Held(bytes),
                // An idle app keeps only the cache key: its workers fetch the snapshot when
                // they start (from the cache's memory, else its folder).
                _ => SnapshotSource::Cached {
                    preparer: preparer.clone(),
                    key: prepared.digest,
                    app: Box::new(app.clone()),
                },
            },
            env: app.env.clone(),

            files: prepared.files,
            wasm,
        })
    }

    /// The app snapshot, for a new isolate. From the snapshot cache, its copy is verified as it
    /// is read; if the cache has lost it, the app is prepared again (as at load time).
    fn snapshot(&self) -> Result<Arc<[u8]>, AppLoadError> {
        let (preparer, key, app) = match &self.snapshot {
            SnapshotSource::Held(bytes) => return Ok(bytes.clone()),
            SnapshotSource::Cached { preparer, key, app } => (preparer, key, app),
        };
        if let Some(bytes) = preparer.cached(key) {
            return Ok(bytes);
        }
        tracing::warn!(hostname = %self.hostname, key = %key, "the app snapshot left the cache; preparing the app again");
        let (prepared, _) = preparer.prepare_from_source(app)?;
        prepared
            .snapshot
            .ok_or_else(|| AppLoadError::Node("prepare-app made no snapshot".into()))
    }

    /// A new isolate whose default context already holds the runtime and the app, with its heap
    /// capped at `limits.memory_mb` and its ArrayBuffers counted against `budget`; and the
    /// snapshot it reads contexts from, which the caller must keep until the isolate is gone.
    fn new_isolate(
        &self,
        budget: &Arc<Budget>,
    ) -> Result<(v8::OwnedIsolate, Arc<[u8]>), AppLoadError> {
        init_v8();
        let snapshot = self.snapshot()?;
        // The isolate reads the snapshot for as long as it lives (every new context comes from
        // it), so it borrows the app's shared copy rather than taking one of its own.
        // SAFETY: the caller keeps `snapshot` (returned with the isolate) until after the
        // isolate is dropped (`Worker` declares it after the isolate), so the bytes V8 reads
        // stay in place and unchanged for the isolate's whole life.
        let blob: &'static [u8] = unsafe { std::mem::transmute::<&[u8], &'static [u8]>(&snapshot) };
        let params = v8::CreateParams::default()
            .snapshot_blob(blob.into())
            .external_references(webapi::external_references().into())
            .heap_limits(INITIAL_HEAP_BYTES.min(budget.limit), budget.limit)
            .array_buffer_allocator(memory::allocator(budget));
        webapi::note_js_stack_limit();
        let mut isolate = v8::Isolate::new(params);
        isolate.set_microtasks_policy(v8::MicrotasksPolicy::Explicit);
        isolate.set_allow_atomics_wait(false);
        isolate.set_prepare_stack_trace_callback(webapi::stack::prepare_stack_trace);
        isolate.add_near_heap_limit_callback(
            memory::near_heap_limit,
            Arc::as_ptr(budget) as *mut std::ffi::c_void,
        );
        Ok((isolate, snapshot))
    }
}

/// Where a prepared app's snapshot is.
enum SnapshotSource {
    /// In memory, for as long as the app is loaded (no snapshot cache).
    Held(Arc<[u8]>),
    /// In the snapshot cache under `key`; `app` is prepared again if the cache loses it.
    Cached {
        preparer: Arc<Preparer>,
        key: String,
        app: Box<nano_config::App>,
    },
}

/// Evaluates an app in a snapshot creator and returns its handler shape, snapshot blob and
/// module files. Call at most once per process; `nano prepare-app` does.
pub fn snapshot_app(
    hostname: &str,
    source: &AppSource,
    budget: std::time::Duration,
) -> Result<AppSnapshot, AppLoadError> {
    init_v8();
    let hostname: Arc<str> = hostname.to_ascii_lowercase().into();
    let mut creator =
        v8::Isolate::snapshot_creator(Some(webapi::external_references().into()), None);
    let state: StateRef = Rc::new(RefCell::new(WorkerState::new(hostname, usize::MAX)));
    creator.set_slot(state);
    // The start-up budget: a watchdog ends evaluation that runs too long.
    let handle = creator.thread_safe_handle();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(budget).is_err() {
            handle.terminate_execution();
            return true;
        }
        false
    });
    let result = {
        let scope = &mut v8::HandleScope::new(&mut creator);
        let context = v8::Context::new(scope, Default::default());
        let outcome = {
            let scope = &mut v8::ContextScope::new(scope, context);
            evaluate_app(scope, source)
        };
        let _ = done.send(());
        let over_budget = watchdog.join().unwrap_or(false);
        let outcome = if over_budget || scope.is_execution_terminating() {
            scope.cancel_terminate_execution();
            Err(AppLoadError::StartupBudget {
                what: source.describe(),
                budget_ms: budget.as_millis(),
            })
        } else {
            outcome
        };
        match outcome {
            Ok(found) => {
                scope.set_default_context(context);
                Ok(found)
            }
            Err(err) => {
                // A snapshot creator must still produce a blob; give it a clean context.
                let empty = v8::Context::new(scope, Default::default());
                scope.set_default_context(empty);
                Err(err)
            }
        }
    };
    let blob = creator.create_blob(v8::FunctionCodeHandling::Keep);
    let (handler, files) = result?;
    let blob =
        blob.ok_or_else(|| AppLoadError::Node("V8 could not create the app snapshot".into()))?;
    Ok(AppSnapshot {
        handler,
        blob: blob.to_vec(),
        files,
    })
}

/// What [`snapshot_app`] makes.
pub struct AppSnapshot {
    /// `module` or `listener`.
    pub handler: String,
    pub blob: Vec<u8>,
    pub files: modules::Sources,
}

/// Compiles (without evaluating) the module graph of the entry file and returns the entry's
/// name and every module's (name, source): what `nano sliver build` packs.
pub fn collect_modules(entrypoint: &Path) -> Result<modules::ModuleFiles, AppLoadError> {
    init_v8();
    let isolate = &mut v8::Isolate::new(Default::default());
    let scope = &mut v8::HandleScope::new(isolate);
    let context = v8::Context::new(scope, Default::default());
    let scope = &mut v8::ContextScope::new(scope, context);
    modules::collect(scope, &AppSource::Dir(entrypoint.to_owned()))
}

/// Opens an app as serving would (a sliver is read and verified), and compiles and links every
/// module it imports, without running any. For `nano check`.
pub fn check_app(app: &nano_config::App) -> Result<(), AppLoadError> {
    let source = Preparer::source_of(app)?;
    init_v8();
    let isolate = &mut v8::Isolate::new(Default::default());
    let scope = &mut v8::HandleScope::new(isolate);
    let context = v8::Context::new(scope, Default::default());
    let scope = &mut v8::ContextScope::new(scope, context);
    modules::collect(scope, &source).map(|_| ())
}

/// The V8 version this binary runs, as recorded in slivers and cache keys.
pub fn engine_version() -> String {
    format!("v8 {}", v8::V8::get_version())
}

/// Evaluates the runtime and the app's modules in the current context; returns the handler shape
/// and the module files.
fn evaluate_app(
    scope: &mut v8::HandleScope,
    source: &AppSource,
) -> Result<(String, modules::Sources), AppLoadError> {
    let internals = bootstrap_runtime(scope);
    // Before the app's code runs: its first read of a lazy global finds the runtime through it.
    let global = scope.get_current_context().global(scope);
    let key = internals_key(scope);
    global.set_private(scope, key, internals.into());
    let (namespace, files) = modules::load_and_evaluate(scope, source)?;
    materialise_lazy_globals(scope, internals, &files);
    let namespace = v8::Local::new(scope, namespace);
    let register = get_function(scope, internals, "register");
    let tc = &mut v8::TryCatch::new(scope);
    let undefined = v8::undefined(tc).into();
    let handler = register.call(tc, undefined, &[namespace]);
    let Some(handler) = handler else {
        let message = tc
            .exception()
            .map(|e| e.to_rust_string_lossy(tc))
            .unwrap_or_else(|| "unknown error".into());
        return Err(AppLoadError::Code(format!(
            "{}: {message}",
            source.describe()
        )));
    };
    let handler = handler.to_rust_string_lossy(tc);
    Ok((handler, files))
}

/// The runtime makes some globals on first read, so that apps without them do not deserialise
/// their code with every context (webapi's lazy scripts). An app whose source names one gets it
/// made now, into its snapshot, rather than once per request.
fn materialise_lazy_globals(
    scope: &mut v8::HandleScope,
    internals: v8::Local<v8::Object>,
    files: &modules::Sources,
) {
    let key = v8::String::new(scope, "lazyGlobals").expect("short string");
    let Some(names) = internals
        .get(scope, key.into())
        .and_then(|names| v8::Local::<v8::Array>::try_from(names).ok())
    else {
        return;
    };
    let global = scope.get_current_context().global(scope);
    let tc = &mut v8::TryCatch::new(scope);
    for i in 0..names.length() {
        let Some(name) = names.get_index(tc, i) else {
            continue;
        };
        let text = name.to_rust_string_lossy(tc);
        let named = files
            .iter()
            .any(|(_, bytes)| bytes.windows(text.len()).any(|w| w == text.as_bytes()));
        if named {
            // Reading it runs the getter that makes it (a dotted name, property by property).
            let mut holder: v8::Local<v8::Value> = global.into();
            for part in text.split('.') {
                let (Some(object), Some(key)) = (holder.to_object(tc), v8::String::new(tc, part))
                else {
                    break;
                };
                match object.get(tc, key.into()) {
                    Some(value) => holder = value,
                    None => break,
                }
            }
        }
    }
    // The list is needed only here: emptied, it does not go into every context.
    if let Some(length) = v8::String::new(tc, "length") {
        let zero = v8::Integer::new(tc, 0);
        names.set(tc, length.into(), zero.into());
    }
}

/// Runs `runtime.js` and returns its internals object.
fn bootstrap_runtime<'s>(scope: &mut v8::HandleScope<'s>) -> v8::Local<'s, v8::Object> {
    let source = v8::String::new_from_onebyte_const(scope, &webapi::RUNTIME_SOURCE)
        .expect("runtime.js fits in a string");
    let name = v8::String::new(scope, "nano:runtime.js").expect("short string");
    let origin = webapi::script_origin(scope, name.into(), false);
    let script = v8::Script::compile(scope, source, Some(&origin)).expect("runtime.js compiles");
    let bootstrap = script.run(scope).expect("runtime.js evaluates");
    let bootstrap =
        v8::Local::<v8::Function>::try_from(bootstrap).expect("runtime.js yields a function");
    let ops = webapi::ops_object(scope);
    let undefined = v8::undefined(scope).into();
    let tc = &mut v8::TryCatch::new(scope);
    let Some(internals) = bootstrap.call(tc, undefined, &[ops.into()]) else {
        let error = tc
            .exception()
            .map_or_else(String::new, |e| e.to_rust_string_lossy(tc));
        let stack = tc
            .stack_trace()
            .map_or_else(String::new, |s| s.to_rust_string_lossy(tc));
        panic!("the runtime's bootstrap threw (a bug in runtime.js): {error}\n{stack}");
    };
    internals
        .to_object(tc)
        .expect("bootstrap returns the internals object")
}

fn get_function<'s>(
    scope: &mut v8::HandleScope<'s>,
    object: v8::Local<v8::Object>,
    name: &str,
) -> v8::Local<'s, v8::Function> {
    let key = v8::String::new(scope, name).expect("short string");
    let value = object
        .get(scope, key.into())
        .expect("internals property reads");
    v8::Local::<v8::Function>::try_from(value).expect("runtime.js exports this function")
}
