//! What the live tail costs a request while nobody tails its app: the check a worker makes as
//! each request starts (`Hub::draw`: one relaxed atomic load). `cargo run --release -p
//! nano-dataplane --example tail_cost -- N` makes N such checks and prints the time per check.
//! Run under `valgrind --tool=callgrind` with two values of N, the difference of the totals
//! counts the instructions of one check (bench/RESULTS.md has the commands), to compare with a
//! request's (`bench/instructions.py`).

use std::hint::black_box;
use std::time::Instant;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("N: a number of checks"))
        .unwrap_or(100_000_000);
    let hub = nano_dataplane::tail::hub("bench.local");
    let start = Instant::now();
    let mut recorded = 0u64;
    for _ in 0..n {
        if black_box(&hub).draw().is_some() {
            recorded += 1;
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(recorded, 0, "nobody tails the app");
    println!(
        "{n} checks with no tail open: {:.2} ns each",
        elapsed.as_secs_f64() * 1e9 / n as f64
    );
}
