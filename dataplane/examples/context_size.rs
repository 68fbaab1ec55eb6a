//! What one context of an app holds: the bytes V8 allocates to deserialise the app's context from
//! its snapshot, which with context reset every request does (the larger part of a reset-on
//! request's cost). Prints V8's own figure for the app's snapshot and for an empty context beside
//! it. `cargo run --release -p nano-dataplane --example context_size [-- app.js]` (default: the
//! benchmark's hello app). The figure is exact and does not depend on the machine: compare it
//! before and after a change to the runtime's JS.

use std::path::PathBuf;
use std::time::Duration;

use nano_dataplane::isolate::{self, AppSource};

fn main() {
    // V8 prints what each serializer wrote when it makes a snapshot ("bytes per context #0").
    v8::V8::set_flags_from_string("--serialization-statistics");
    let app = std::env::args().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/apps/hello.js"),
        PathBuf::from,
    );
    println!("app {}:", app.display());
    if let Err(error) =
        isolate::snapshot_app("app.local", &AppSource::Dir(app), Duration::from_secs(10))
    {
        eprintln!("the app did not load: {error}");
        std::process::exit(1);
    }
    flush_v8_output();
    println!("an empty context (V8's floor):");
    let mut creator = v8::Isolate::snapshot_creator(None, None);
    {
        let scope = &mut v8::HandleScope::new(&mut creator);
        let context = v8::Context::new(scope, Default::default());
        scope.set_default_context(context);
    }
    let _ = creator.create_blob(v8::FunctionCodeHandling::Keep);
    flush_v8_output();
}

/// V8 prints through C's buffered stdout: flushed, its lines come after the label they belong to.
fn flush_v8_output() {
    unsafe extern "C" {
        fn fflush(stream: *mut std::ffi::c_void) -> i32;
    }
    // SAFETY: fflush(NULL) flushes every C output stream; nothing else writes C streams here.
    unsafe { fflush(std::ptr::null_mut()) };
}
