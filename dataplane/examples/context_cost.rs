//! The floor of a context reset: how long `v8::Context::new` takes on this machine from V8's own
//! snapshot, with none of NANO's code involved. `cargo run --release -p nano-dataplane --example
//! context_cost`.

use std::time::Instant;

fn main() {
    v8::V8::set_flags_from_string("--no-extensible-ro-snapshot");
    let platform = v8::new_default_platform(0, false).make_shared();
    v8::V8::initialize_platform(platform);
    v8::V8::initialize();
    let isolate = &mut v8::Isolate::new(Default::default());
    let scope = &mut v8::HandleScope::new(isolate);
    const N: u32 = 2000;
    for round in 0..3 {
        let start = Instant::now();
        for _ in 0..N {
            let scope = &mut v8::HandleScope::new(scope);
            let _context = v8::Context::new(scope, Default::default());
        }
        println!("round {round}: {:?} per Context::new", start.elapsed() / N);
    }
}
