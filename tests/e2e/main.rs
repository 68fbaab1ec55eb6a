//! End-to-end tests: one test binary (V8 links once), a module per area. Every test starts the
//! real `nano` binary on a loopback port chosen by the OS and stops it when done.

mod admin;
mod cache;
mod cli;
mod compat;
mod context;
mod density;
mod failures;
mod fetch;
mod fleet;
mod frameworks;
mod front;
mod ha;
mod hostile;
mod lifecycle;
mod limits;
mod pool;
mod reload;
mod serving;
mod slivers;
mod streams;
mod tail;
mod wasm;
mod webapi;
mod websocket;
