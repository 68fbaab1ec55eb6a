//! The app's ES module graph: loads the entry and its relative imports from the app's folder,
//! compiles, links and evaluates them. `node:` modules (and their bare Node names) come from the
//! runtime (`webapi/js/node/`). Imports that leave the folder, other bare specifiers, Node
//! modules NANO does not offer and missing files are refused with the import chain that led to
//! them.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use super::AppLoadError;

/// Where an app's modules come from.
#[derive(Debug, Clone)]
pub enum AppSource {
    /// An entry file on disk; imports resolve inside its folder.
    Dir(PathBuf),
    /// A verified sliver; imports resolve among its parts.
    Sliver(Arc<nano_sliver::Sliver>),
}

/// The folder a sliver's parts appear to live in (only ever used as a path prefix).
const SLIVER_ROOT: &str = "/sliver";

impl AppSource {
    /// The app's origin for messages: the entry file or the sliver.
    pub fn describe(&self) -> String {
        match self {
            AppSource::Dir(entry) => entry.display().to_string(),
            AppSource::Sliver(sliver) => {
                format!("sliver {} ({})", &sliver.id[..12], sliver.manifest.entry)
            }
        }
    }

    /// The entry's path and the folder imports must stay inside.
    fn entry_and_root(&self) -> Result<(PathBuf, PathBuf), AppLoadError> {
        match self {
            AppSource::Dir(entrypoint) => {
                let entry = std::path::absolute(entrypoint).map_err(|err| {
                    AppLoadError::Code(format!("{}: {err}", entrypoint.display()))
                })?;
                let root = entry.parent().map(Path::to_path_buf).unwrap_or_default();
                Ok((entry, root))
            }
            AppSource::Sliver(sliver) => {
                let root = PathBuf::from(SLIVER_ROOT);
                Ok((root.join(&sliver.manifest.entry), root))
            }
        }
    }

    /// The bytes of the file at `path` (inside `root`). In a folder, the file's real path (after
    /// symbolic links) must be inside the folder's real path too: a link in the app's folder
    /// cannot bring in a file from elsewhere (for slivers, which are packed from folders this
    /// way, as well).
    pub fn read(&self, root: &Path, path: &Path) -> std::io::Result<Vec<u8>> {
        match self {
            AppSource::Dir(_) => {
                let real = std::fs::canonicalize(path)?;
                let real_root = std::fs::canonicalize(root)?;
                if !real.starts_with(&real_root) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!(
                            "it is a symbolic link to {}, outside the app's folder {}; copy the \
                             file into the folder instead",
                            real.display(),
                            real_root.display()
                        ),
                    ));
                }
                std::fs::read(real)
            }
            AppSource::Sliver(sliver) => {
                let name = path
                    .strip_prefix(root)
                    .map(|p| {
                        p.components()
                            .map(|c| c.as_os_str().to_string_lossy())
                            .collect::<Vec<_>>()
                            .join("/")
                    })
                    .unwrap_or_default();
                sliver.part(&name).map(<[u8]>::to_vec).ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such file in the sliver")
                })
            }
        }
    }

    /// The folder the app's files live in (a virtual one for slivers).
    pub fn root(&self) -> Result<PathBuf, AppLoadError> {
        self.entry_and_root().map(|(_, root)| root)
    }
}

/// The compiled modules of one app, stored in the isolate slot while V8 links them.
struct Graph {
    source: AppSource,
    root: PathBuf,
    by_path: HashMap<PathBuf, v8::Global<v8::Module>>,
    path_of: HashMap<i32, PathBuf>,
    /// Every file loaded (modules and WebAssembly), as (name relative to the root, bytes).
    files: Sources,
}

impl Graph {
    fn new(source: AppSource, root: PathBuf) -> Self {
        Self {
            source,
            root,
            by_path: HashMap::new(),
            path_of: HashMap::new(),
            files: Vec::new(),
        }
    }

    /// Records a compiled module under its path (for imports) and its identity (for V8's
    /// resolve callback, which names the referrer only by its module).
    fn add(&mut self, scope: &mut v8::HandleScope, path: &Path, module: v8::Local<v8::Module>) {
        self.by_path
            .insert(path.to_owned(), v8::Global::new(scope, module));
        self.path_of
            .insert(module.get_identity_hash().get(), path.to_owned());
    }

    fn display(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// Resolves `specifier` imported by `referrer` to a file inside the app's folder or to a
    /// runtime module (whose path is its `node:` name).
    fn resolve(&self, referrer: &Path, specifier: &str) -> Result<PathBuf, String> {
        if let Some(name) = node_builtin(specifier).map_err(|reason| {
            format!(
                "import {specifier:?} in {}: {reason}",
                self.display(referrer)
            )
        })? {
            return Ok(PathBuf::from(format!("node:{name}")));
        }
        if !(specifier.starts_with("./") || specifier.starts_with("../")) {
            return Err(format!(
                "import {specifier:?} in {} is not a relative path; only \"./\" and \"../\" imports \
                 of files in the app's folder are supported (bundle packages first, e.g. with esbuild)",
                self.display(referrer)
            ));
        }
        let base = referrer.parent().unwrap_or(&self.root);
        let mut resolved = PathBuf::new();
        for component in base.join(specifier).components() {
            match component {
                Component::ParentDir => {
                    resolved.pop();
                }
                Component::CurDir => {}
                other => resolved.push(other),
            }
        }
        if !resolved.starts_with(&self.root) {
            return Err(format!(
                "import {specifier:?} in {} points outside the app's folder {}",
                self.display(referrer),
                self.root.display()
            ));
        }
        Ok(resolved)
    }
}

/// The Node modules the runtime offers (`webapi/js/node/` builds them), importable as `node:x`
/// and, as in Node, as bare `x`.
pub const NODE_MODULES: &[&str] = &[
    "assert",
    "assert/strict",
    "async_hooks",
    "buffer",
    "console",
    "crypto",
    "diagnostics_channel",
    "events",
    "module",
    "path",
    "path/posix",
    "perf_hooks",
    "process",
    "querystring",
    "stream",
    "stream/consumers",
    "stream/promises",
    "stream/web",
    "string_decoder",
    "timers",
    "timers/promises",
    "url",
    "util",
    "util/types",
    "zlib",
];

/// Node modules that give access to the machine (files, processes, sockets, servers, the engine):
/// refused as on Cloudflare Workers.
const NODE_REFUSED: &[&str] = &[
    "child_process",
    "cluster",
    "dgram",
    "fs",
    "fs/promises",
    "http",
    "http2",
    "https",
    "inspector",
    "net",
    "repl",
    "tls",
    "tty",
    "v8",
    "vm",
    "worker_threads",
];

/// Node modules workerd offers that NANO does not have yet.
const NODE_NOT_YET: &[&str] = &[
    "constants",
    "dns",
    "os",
    "punycode",
    "readline",
    "sqlite",
    "sys",
    "test",
    "trace_events",
];

/// Whether `specifier` names a Node module: `Ok(Some(name))` for one the runtime offers, an
/// error saying why for one it does not, `Ok(None)` for anything else.
fn node_builtin(specifier: &str) -> Result<Option<&'static str>, String> {
    let prefixed = specifier.strip_prefix("node:");
    let name = prefixed.unwrap_or(specifier);
    if let Some(found) = NODE_MODULES.iter().find(|m| **m == name) {
        return Ok(Some(found));
    }
    let supported = || {
        NODE_MODULES
            .iter()
            .map(|m| format!("node:{m}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if NODE_REFUSED.contains(&name) || (name.starts_with("fs/") && prefixed.is_some()) {
        return Err(format!(
            "the Node module node:{name} is not available: apps have no file system, processes, \
             raw sockets, servers or engine access (as on Cloudflare Workers); use fetch() for \
             network calls. Available Node modules: {}",
            supported()
        ));
    }
    if NODE_NOT_YET.contains(&name) || prefixed.is_some() {
        return Err(format!(
            "the Node module node:{name} is not supported by NANO yet. Available Node modules: {}",
            supported()
        ));
    }
    Ok(None)
}

/// The module a `node:` import becomes: the runtime's namespace object as its default export and
/// each of its properties as a named export. The names are read from the runtime itself, so they
/// cannot drift from what the runtime builds; where the runtime is absent (`collect`, which compiles
/// without evaluating) the module has only its default export.
fn builtin_wrapper(scope: &mut v8::HandleScope, name: &str) -> String {
    let literal = serde_json::to_string(name).expect("a string serialises");
    let probe = format!(
        "(() => {{ const m = globalThis.__nano_builtin?.({literal}); \
         return m === undefined ? [] : Object.keys(m); }})()"
    );
    let mut exports = Vec::new();
    if let Some(source) = v8::String::new(scope, &probe)
        && let Some(script) = v8::Script::compile(scope, source, None)
        && let Some(keys) = script.run(scope)
        && let Ok(keys) = v8::Local::<v8::Array>::try_from(keys)
    {
        for i in 0..keys.length() {
            if let Some(key) = keys.get_index(scope, i) {
                let key = key.to_rust_string_lossy(scope);
                let identifier = key.chars().enumerate().all(|(i, c)| {
                    c == '_' || c == '$' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
                });
                if identifier && key != "default" {
                    exports.push(key);
                }
            }
        }
    }
    let mut source =
        format!("const m = globalThis.__nano_builtin?.({literal});\nexport default m;\n");
    if !exports.is_empty() {
        source.push_str(&format!("export const {{ {} }} = m;\n", exports.join(", ")));
    }
    source
}

/// Every file of an app (ES modules and `.wasm` imports) as (name relative to its folder, bytes).
pub type Sources = Vec<(String, Vec<u8>)>;

/// The module a `.wasm` import becomes: its default export is a live binding that the runtime
/// sets, in every context, to a `WebAssembly.Module` compiled once per isolate (a compiled
/// module cannot be part of a V8 snapshot, so it is not there at start-up).
fn wasm_wrapper(name: &str) -> String {
    let name = serde_json::to_string(name).expect("a string serialises");
    format!(
        "let module;\nexport {{ module as default }};\nglobalThis.__nano_wasm_register({name}, (m) => {{ module = m; }});\n"
    )
}

/// The modules of an app found by [`collect`]: the entry's name and its sources.
pub type ModuleFiles = (String, Sources);

/// Compiles the module graph from `source` without evaluating it, and returns its files.
pub(super) fn collect(
    scope: &mut v8::HandleScope,
    source: &AppSource,
) -> Result<ModuleFiles, AppLoadError> {
    let (entry, root) = source.entry_and_root()?;
    let mut graph = Graph::new(source.clone(), root);
    compile_tree(scope, &mut graph, &entry, &mut vec![])?;
    Ok((graph.display(&entry), graph.files))
}

/// Loads the module graph from `source`, evaluates it and returns the entry's namespace and
/// the (name, source) of every module.
pub(super) fn load_and_evaluate(
    scope: &mut v8::HandleScope,
    source: &AppSource,
) -> Result<(v8::Global<v8::Value>, Sources), AppLoadError> {
    let (entry, root) = source.entry_and_root()?;
    let mut graph = Graph::new(source.clone(), root);
    let module = compile_tree(scope, &mut graph, &entry, &mut vec![])?;
    let files = std::mem::take(&mut graph.files);

    let graph = Rc::new(graph);
    scope.set_slot(graph.clone());
    let tc = &mut v8::TryCatch::new(scope);
    let linked = module.instantiate_module(tc, resolve_callback);
    tc.remove_slot::<Rc<Graph>>();
    if linked != Some(true) {
        let exception = tc.exception();
        let message = exception_text(tc, exception);
        return Err(AppLoadError::Code(format!(
            "{}: cannot link modules: {message}",
            graph.display(&entry)
        )));
    }

    let promise = module.evaluate(tc);
    tc.perform_microtask_checkpoint();
    if module.get_status() == v8::ModuleStatus::Errored {
        let exception = Some(module.get_exception());
        let message = exception_text(tc, exception);
        return Err(AppLoadError::Code(format!(
            "{} failed while evaluating: {message}",
            graph.display(&entry)
        )));
    }
    let Some(promise) = promise.and_then(|p| v8::Local::<v8::Promise>::try_from(p).ok()) else {
        let exception = tc.exception();
        let message = exception_text(tc, exception);
        return Err(AppLoadError::Code(format!(
            "{} failed while evaluating: {message}",
            graph.display(&entry)
        )));
    };
    match promise.state() {
        v8::PromiseState::Fulfilled => {
            Ok((v8::Global::new(tc, module.get_module_namespace()), files))
        }
        v8::PromiseState::Rejected => {
            let reason = Some(promise.result(tc));
            Err(AppLoadError::Code(format!(
                "{} failed while evaluating: {}",
                graph.display(&entry),
                exception_text(tc, reason)
            )))
        }
        v8::PromiseState::Pending => Err(AppLoadError::Code(format!(
            "{}: top-level await did not finish during start-up (it waits on a timer, a request \
             or a promise that never settles); move that work into the fetch handler",
            graph.display(&entry)
        ))),
    }
}

fn compile_tree<'s>(
    scope: &mut v8::HandleScope<'s>,
    graph: &mut Graph,
    path: &Path,
    chain: &mut Vec<String>,
) -> Result<v8::Local<'s, v8::Module>, AppLoadError> {
    if let Some(existing) = graph.by_path.get(path) {
        return Ok(v8::Local::new(scope, existing));
    }
    if let Some(builtin) = path.to_str().and_then(|p| p.strip_prefix("node:")) {
        return compile_builtin(scope, graph, path, builtin);
    }
    let name = graph.display(path);
    let via = if chain.is_empty() {
        String::new()
    } else {
        format!(" (imported via {})", chain.join(" -> "))
    };
    let bytes = graph
        .source
        .read(&graph.root, path)
        .map_err(|err| AppLoadError::Code(format!("cannot read module {name}{via}: {err}")))?;
    let source = if path.extension().is_some_and(|e| e == "wasm") {
        nano_sliver::check_wasm_header(&bytes)
            .map_err(|reason| AppLoadError::Code(format!("{name}{via}: {reason}")))?;
        wasm_wrapper(&name)
    } else {
        String::from_utf8(bytes.clone()).map_err(|err| {
            AppLoadError::Code(format!("{name}{via}: the module is not UTF-8 ({err})"))
        })?
    };
    graph.files.push((name.clone(), bytes));
    let source = v8::String::new(scope, &source)
        .ok_or_else(|| AppLoadError::Code(format!("module {name} is too large")))?;
    let resource = v8::String::new(scope, &name).expect("file name fits in a string");
    let origin = crate::webapi::script_origin(scope, resource.into(), true);
    let mut source = v8::script_compiler::Source::new(source, Some(&origin));
    let tc = &mut v8::TryCatch::new(scope);
    let Some(module) = v8::script_compiler::compile_module(tc, &mut source) else {
        let exception = tc.exception();
        let message = exception_text(tc, exception);
        // V8's message already names the file and line when it can.
        let located = if message.starts_with(&format!("{name}:")) {
            message
        } else {
            format!("{name}: {message}")
        };
        return Err(AppLoadError::Code(format!("{located}{via}")));
    };
    graph.add(tc, path, module);

    let requests = module.get_module_requests();
    chain.push(name);
    for i in 0..requests.length() {
        let request = requests.get(tc, i).expect("module request index in range");
        let request = v8::Local::<v8::ModuleRequest>::try_from(request).expect("a ModuleRequest");
        let specifier = request.get_specifier().to_rust_string_lossy(tc);
        let target = graph
            .resolve(path, &specifier)
            .map_err(AppLoadError::Code)?;
        compile_tree(tc, graph, &target, chain)?;
    }
    chain.pop();
    // Escape the module handle out of the TryCatch scope.
    Ok(v8::Local::new(tc, graph.by_path[path].clone()))
}

/// Compiles the module of a `node:` import (no file: it is not part of the app's sources).
fn compile_builtin<'s>(
    scope: &mut v8::HandleScope<'s>,
    graph: &mut Graph,
    path: &Path,
    name: &str,
) -> Result<v8::Local<'s, v8::Module>, AppLoadError> {
    let source = builtin_wrapper(scope, name);
    let source = v8::String::new(scope, &source).expect("a builtin wrapper is short");
    let resource = v8::String::new(scope, &format!("node:{name}")).expect("short string");
    let origin = crate::webapi::script_origin(scope, resource.into(), true);
    let mut source = v8::script_compiler::Source::new(source, Some(&origin));
    let module = v8::script_compiler::compile_module(scope, &mut source).ok_or_else(|| {
        AppLoadError::Code(format!("the runtime's node:{name} module did not compile"))
    })?;
    graph.add(scope, path, module);
    Ok(module)
}

fn resolve_callback<'a>(
    context: v8::Local<'a, v8::Context>,
    specifier: v8::Local<'a, v8::String>,
    _attributes: v8::Local<'a, v8::FixedArray>,
    referrer: v8::Local<'a, v8::Module>,
) -> Option<v8::Local<'a, v8::Module>> {
    // SAFETY: V8 calls this during instantiate_module, inside a live context.
    let scope = &mut unsafe { v8::CallbackScope::new(context) };
    let graph = scope.get_slot::<Rc<Graph>>()?.clone();
    let referrer = graph.path_of.get(&referrer.get_identity_hash().get())?;
    let specifier = specifier.to_rust_string_lossy(scope);
    let target = graph.resolve(referrer, &specifier).ok()?;
    let module = graph.by_path.get(&target)?;
    Some(v8::Local::new(scope, module))
}

/// `file:line: message` for an exception, as precise as V8 allows.
pub(crate) fn exception_text(
    scope: &mut v8::HandleScope,
    exception: Option<v8::Local<v8::Value>>,
) -> String {
    let Some(exception) = exception else {
        return "unknown error".into();
    };
    let text = exception.to_rust_string_lossy(scope);
    let message = v8::Exception::create_message(scope, exception);
    let file = message
        .get_script_resource_name(scope)
        .map(|n| n.to_rust_string_lossy(scope))
        .unwrap_or_default();
    match message.get_line_number(scope) {
        Some(line) if !file.is_empty() => format!("{file}:{line}: {text}"),
        _ => text,
    }
}
