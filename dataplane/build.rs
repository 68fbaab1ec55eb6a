//! Gives every build of the data plane its own id (`NANO_BUILD_ID`), part of the snapshot cache
//! key: a snapshot holds compiled runtime JS and refers to native ops by their position in a
//! table, so a binary must never start isolates from a snapshot another build made. Without
//! `rerun-if` directives Cargo reruns this script whenever a file of the package changes.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    println!(
        "cargo:rustc-env=NANO_BUILD_ID={nanos:x}-{:x}",
        std::process::id()
    );
}
