//! Limits that hold: per-request CPU time and wall clock (`cpu`), per-isolate memory (`memory`).
//! Only this module, `isolate/` and `webapi/` touch V8.

pub mod cpu;
pub mod memory;
