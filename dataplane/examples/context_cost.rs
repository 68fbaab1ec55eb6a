//! The floor of a context reset: how long `v8::Context::new` takes on this machine from V8's own
//! snapshot, with none of NANO's code involved. `cargo run --release -p nano-dataplane --example
//! context_cost`. With arguments `N ROUNDS` it makes N contexts per round (default 2000 and 3);
//! `bench/instructions.py --floor` runs it under callgrind with two values of N, so the floor
//! can be counted in instructions like a request. Further arguments are V8 flags, to see what a
//! flag costs a context (e.g. `--js-float16array`).

use std::time::Instant;

fn main() {
    let flags: Vec<String> = std::env::args().skip(3).collect();
    v8::V8::set_flags_from_string(&format!("--no-extensible-ro-snapshot {}", flags.join(" ")));
    let platform = v8::new_default_platform(0, false).make_shared();
    v8::V8::initialize_platform(platform);
    v8::V8::initialize();
    let isolate = &mut v8::Isolate::new(Default::default());
    let scope = &mut v8::HandleScope::new(isolate);
    let mut args = std::env::args().skip(1).map(|arg| arg.parse::<u32>());
    let n = args
        .next()
        .unwrap_or(Ok(2000))
        .expect("N: a number of contexts");
    let rounds = args
        .next()
        .unwrap_or(Ok(3))
        .expect("ROUNDS: a number of rounds");
    for round in 0..rounds {
        let start = Instant::now();
        for _ in 0..n {
            let scope = &mut v8::HandleScope::new(scope);
            let _context = v8::Context::new(scope, Default::default());
        }
        println!(
            "round {round}: {:?} per Context::new",
            start.elapsed() / n.max(1)
        );
    }
}
