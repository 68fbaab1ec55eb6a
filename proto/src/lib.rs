//! nano.v1, generated from `proto/nano/v1/nano.proto`, plus the limits both ends of a connection
//! agree on.

#[allow(clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("nano.v1");
}

pub mod json;
pub mod tail;

impl v1::App {
    /// An app of `hostname` at `version` with default settings and no sliver: the start of
    /// tests' and tools' fleet states.
    pub fn named(hostname: &str, version: u64) -> Self {
        Self {
            spec: Some(v1::AppSpec {
                hostname: hostname.into(),
                ..Default::default()
            }),
            version,
            ..Default::default()
        }
    }
}

/// Largest sliver a deploy may carry (the sliver format's own limit).
pub const MAX_SLIVER_BYTES: usize = 64 * 1024 * 1024;

/// Largest gRPC message either side decodes: a deploy of the largest sliver plus its spec.
pub const MAX_MESSAGE_BYTES: usize = MAX_SLIVER_BYTES + 1024 * 1024;

/// Size of the chunks a sliver is downloaded in.
pub const SLIVER_CHUNK_BYTES: usize = 1024 * 1024;

/// The `authorization` metadata value for a bearer token.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}
