//! The types of `config.json`, their defaults and bounds (the schema is generated from them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole data-plane config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "NANO data plane config")]
pub struct Config {
    /// The tenant-traffic listener.
    #[serde(default)]
    pub server: Server,
    /// The apps this node serves, routed by `Host`.
    #[serde(default)]
    pub apps: Vec<App>,
    /// Sliver (app artifact) caching.
    #[serde(default)]
    pub slivers: Slivers,
    /// The `/_admin` surface: health, readiness, metrics, isolates.
    #[serde(default)]
    pub admin: Admin,
    /// Node-wide settings.
    #[serde(default)]
    pub node: Node,
    /// The Cache API's storage (`caches.default`, `caches.open(name)`): node-local, in memory.
    #[serde(default)]
    pub cache: Cache,
    /// Run as a member of a fleet: the apps come from this control plane (the local `apps`
    /// stay as a fallback for hostnames the control plane does not serve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ControlPlane>,
}

/// One control-plane address, or the addresses of its replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Urls {
    One(#[schemars(length(min = 1, max = 2048))] String),
    Many(#[schemars(length(min = 1, max = 16))] Vec<UrlItem>),
}

/// One address in a list of control-plane replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct UrlItem(#[schemars(length(min = 1, max = 2048))] pub String);

impl Urls {
    /// The addresses, in order.
    pub fn list(&self) -> Vec<String> {
        match self {
            Self::One(url) => vec![url.clone()],
            Self::Many(urls) => urls.iter().map(|u| u.0.clone()).collect(),
        }
    }
}

/// `control_plane`: where a fleet member gets its apps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlPlane {
    /// The control plane's gRPC address: `http://host:7070`, or `https://...` with TLS. With
    /// control-plane replicas, a list of their addresses: the node connects to one, and to the
    /// next when its stream breaks.
    pub url: Urls,
    /// The node token (`--node-token` of the control plane); `NANO_NODE_TOKEN` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// This node's id in the fleet (default: the machine's hostname).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub node_id: Option<String>,
    /// Where the last good fleet state and its slivers are kept, so a restart serves them while
    /// the control plane is unreachable (default: `nano-fleet` in the system's temporary folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// PEM certificate of a private CA that signed the control plane's TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

/// `node`: settings of the whole data-plane process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Memory budget for all isolates of the node, in MiB; beyond it idle isolates are evicted
    /// least-recently-used first (stateless before stateful). Unset: no node budget.
    #[serde(default)]
    #[schemars(range(min = 16, max = 1048576))]
    pub memory_mb: Option<u32>,
}

/// `cache`: the Cache API's storage, one partition per app (by hostname).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// Memory for the cached responses of every app together, in MiB; past it the node's least
    /// recently used entries go. 0: the Cache API keeps nothing (every `match` misses).
    #[serde(default = "defaults::cache_memory_mb")]
    #[schemars(range(min = 0, max = 1048576))]
    pub memory_mb: u32,
    /// Memory one app's cached responses may take, in MiB; past it that app's least recently
    /// used entries go, and a single response larger than this is refused by `put`.
    #[serde(default = "defaults::cache_app_quota_mb")]
    #[schemars(range(min = 1, max = 1048576))]
    pub app_quota_mb: u32,
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            memory_mb: defaults::cache_memory_mb(),
            app_quota_mb: defaults::cache_app_quota_mb(),
        }
    }
}

/// `admin`: the operator surface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Serve `/_admin/*` at all.
    #[serde(default = "defaults::admin_enabled")]
    pub enabled: bool,
    /// Bearer token that grants access from non-loopback clients (loopback clients need none).
    #[serde(default)]
    #[schemars(length(min = 16))]
    pub token: Option<String>,
    /// A separate `host:port` for `/_admin/*`; the tenant listener then answers 404 there.
    #[serde(default)]
    pub listen: Option<String>,
    /// Record request metrics (`false` only to measure what recording costs).
    #[serde(default = "defaults::admin_enabled")]
    pub metrics: bool,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            enabled: defaults::admin_enabled(),
            token: None,
            listen: None,
            metrics: true,
        }
    }
}

/// `server`: where tenant traffic is accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// TCP port of the tenant-traffic listener (0 picks a free port).
    #[serde(default = "defaults::port")]
    pub port: u16,
    /// Address to bind, e.g. `0.0.0.0` or `127.0.0.1`.
    #[serde(default = "defaults::host")]
    pub host: String,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish before the process exits.
    #[serde(default = "defaults::shutdown_grace_secs")]
    #[schemars(range(min = 0, max = 3600))]
    pub shutdown_grace_secs: u64,
    /// Time a client has to send a request's headers before the connection is closed
    /// (slowloris protection).
    #[serde(default = "defaults::header_timeout_secs")]
    #[schemars(range(min = 1, max = 300))]
    pub header_timeout_secs: u64,
    /// Largest request body accepted, in bytes; larger bodies get 413 before any JS runs.
    #[serde(default = "defaults::max_body_bytes")]
    #[schemars(range(min = 0, max = 1_073_741_824u64))]
    pub max_body_bytes: u64,
    /// Time a client has to send a request's whole body once its headers are in; past it the
    /// request gets 408 (slow uploads cannot hold the node's memory or an app's slots).
    #[serde(default = "defaults::body_timeout_secs")]
    #[schemars(range(min = 1, max = 3600))]
    pub body_timeout_secs: u64,
    /// Request bodies the whole node holds in memory at once, in bytes; a request whose body
    /// would go past it gets 503 (`x-nano-error: node-busy`). At least `max_body_bytes`.
    #[serde(default = "defaults::max_buffered_body_bytes")]
    #[schemars(range(min = 0, max = 68_719_476_736u64))]
    pub max_buffered_body_bytes: u64,
    /// A connection with no request in flight and nothing sent for this long is closed (also
    /// before its first request).
    #[serde(default = "defaults::idle_timeout_secs")]
    #[schemars(range(min = 1, max = 3600))]
    pub idle_timeout_secs: u64,
    /// Open client connections the node keeps; at the cap the longest-idle connection is closed
    /// for a new one, and with none idle the new one is refused.
    #[serde(default = "defaults::max_connections")]
    #[schemars(range(min = 16, max = 1_000_000))]
    pub max_connections: u32,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            port: defaults::port(),
            host: defaults::host(),
            shutdown_grace_secs: defaults::shutdown_grace_secs(),
            header_timeout_secs: defaults::header_timeout_secs(),
            max_body_bytes: defaults::max_body_bytes(),
            body_timeout_secs: defaults::body_timeout_secs(),
            max_buffered_body_bytes: defaults::max_buffered_body_bytes(),
            idle_timeout_secs: defaults::idle_timeout_secs(),
            max_connections: defaults::max_connections(),
        }
    }
}

/// One tenant app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "AppFields", into = "AppFields")]
#[schemars(with = "AppFields")]
pub struct App {
    pub hostname: Hostname,
    pub code: AppCode,
    pub limits: Limits,
    pub env: BTreeMap<String, String>,
    pub fetch: Fetch,
    pub websockets: WebSockets,
    pub context_reset: bool,
}

/// Where an app's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppCode {
    /// An ES module (`entrypoint`); the modules it imports are in its folder.
    Module(PathBuf),
    /// A sliver file (`sliver`, made by `nano sliver build`).
    Sliver(PathBuf),
}

impl AppCode {
    /// The file: the entry module or the sliver.
    pub fn path(&self) -> &Path {
        match self {
            Self::Module(path) | Self::Sliver(path) => path,
        }
    }

    pub(crate) fn path_mut(&mut self) -> &mut PathBuf {
        match self {
            Self::Module(path) | Self::Sliver(path) => path,
        }
    }

    /// The config key that names it: `entrypoint` or `sliver`.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Module(_) => "entrypoint",
            Self::Sliver(_) => "sliver",
        }
    }
}

/// An app as a config file spells it (the schema's `apps[]`): [`App`] with its code as two
/// optional keys, and an app's settings without code as the control plane checks them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppFields {
    /// Exact host served (case-insensitive, port ignored); unique across apps.
    #[schemars(length(min = 1, max = 253))]
    pub hostname: Hostname,
    /// The app's ES module; relative paths are resolved against the config file's folder.
    /// Exactly one of `entrypoint` and `sliver` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<PathBuf>,
    /// A sliver file (`nano sliver build`) to serve instead of an entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliver: Option<PathBuf>,
    /// Resource limits for this app.
    #[serde(default)]
    pub limits: Limits,
    /// String values given to the handler as `env`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Subrequests made with `fetch()`.
    #[serde(default)]
    pub fetch: Fetch,
    /// WebSocket sessions the app accepts (`new WebSocketPair()`).
    #[serde(default)]
    pub websockets: WebSockets,
    /// `true`: every request runs in a fresh V8 context, so no global state survives it.
    /// `false`: one context per isolate, globals persist (Cloudflare Workers semantics).
    #[serde(default = "defaults::context_reset")]
    pub context_reset: bool,
}

/// Why [`AppFields`] are not an [`App`]: both kinds of code, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeProblem {
    #[error("give either \"entrypoint\" or \"sliver\", not both")]
    Both,
    #[error("missing \"entrypoint\" (an ES module) or \"sliver\" (a sliver file)")]
    Neither,
}

impl AppFields {
    /// Which problem the code keys have, if any.
    pub fn code_problem(has_entrypoint: bool, has_sliver: bool) -> Option<CodeProblem> {
        match (has_entrypoint, has_sliver) {
            (true, true) => Some(CodeProblem::Both),
            (false, false) => Some(CodeProblem::Neither),
            _ => None,
        }
    }
}

impl TryFrom<AppFields> for App {
    type Error = CodeProblem;

    fn try_from(fields: AppFields) -> Result<Self, CodeProblem> {
        let code = match (fields.entrypoint, fields.sliver) {
            (Some(entry), None) => AppCode::Module(entry),
            (None, Some(sliver)) => AppCode::Sliver(sliver),
            (Some(_), Some(_)) => return Err(CodeProblem::Both),
            (None, None) => return Err(CodeProblem::Neither),
        };
        Ok(Self {
            hostname: fields.hostname,
            code,
            limits: fields.limits,
            env: fields.env,
            fetch: fields.fetch,
            websockets: fields.websockets,
            context_reset: fields.context_reset,
        })
    }
}

impl From<App> for AppFields {
    fn from(app: App) -> Self {
        let (entrypoint, sliver) = match app.code {
            AppCode::Module(entry) => (Some(entry), None),
            AppCode::Sliver(sliver) => (None, Some(sliver)),
        };
        Self {
            hostname: app.hostname,
            entrypoint,
            sliver,
            limits: app.limits,
            env: app.env,
            fetch: app.fetch,
            websockets: app.websockets,
            context_reset: app.context_reset,
        }
    }
}

/// An app's hostname as routing compares it: lower-cased, without a trailing dot (normalised
/// when the config is read, so every use compares like with like). Whether it is a valid
/// hostname at all is checked with the rest of the config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(transparent)]
#[schemars(inline)]
pub struct Hostname(String);

impl Hostname {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Hostname {
    fn from(raw: &str) -> Self {
        Self(raw.trim_end_matches('.').to_ascii_lowercase())
    }
}

impl<'de> Deserialize<'de> for Hostname {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|raw| Self::from(raw.as_str()))
    }
}

impl std::ops::Deref for Hostname {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Hostname {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `apps[].fetch`: what an app's `fetch()` subrequests may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fetch {
    /// Allow subrequests to loopback, private, link-local and other non-public addresses
    /// (refused by default: SSRF guard).
    #[serde(default)]
    pub allow_private_networks: bool,
    /// Subrequests one request may make (redirects included).
    #[serde(default = "defaults::max_subrequests")]
    #[schemars(range(min = 0, max = 1000))]
    pub max_subrequests: u32,
    /// Largest subrequest response body, in bytes.
    #[serde(default = "defaults::max_response_bytes")]
    #[schemars(range(min = 0, max = 1_073_741_824u64))]
    pub max_response_bytes: u64,
}

impl Default for Fetch {
    fn default() -> Self {
        Self {
            allow_private_networks: false,
            max_subrequests: defaults::max_subrequests(),
            max_response_bytes: defaults::max_response_bytes(),
        }
    }
}

/// `apps[].websockets`: the bounds of the WebSocket sessions an app accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebSockets {
    /// Largest message (or frame) a client may send, in bytes; a larger one closes the socket
    /// with 1009 (message too big).
    #[serde(default = "defaults::ws_max_message_bytes")]
    #[schemars(range(min = 125, max = 67_108_864))]
    pub max_message_bytes: u32,
    /// Sockets open at once for the app on this node; past it an upgrade gets 503. Each holds
    /// one request slot of its worker (`limits.queue_per_worker`).
    #[serde(default = "defaults::ws_max_sockets")]
    #[schemars(range(min = 0, max = 100_000))]
    pub max_sockets: u32,
    /// A socket with no message either way for this long is closed with 1001.
    #[serde(default = "defaults::ws_idle_timeout_secs")]
    #[schemars(range(min = 1, max = 86400))]
    pub idle_timeout_secs: u32,
    /// A socket open this long is closed with 1001, whatever it does.
    #[serde(default = "defaults::ws_max_session_secs")]
    #[schemars(range(min = 1, max = 604_800))]
    pub max_session_secs: u32,
}

impl Default for WebSockets {
    fn default() -> Self {
        Self {
            max_message_bytes: defaults::ws_max_message_bytes(),
            max_sockets: defaults::ws_max_sockets(),
            idle_timeout_secs: defaults::ws_idle_timeout_secs(),
            max_session_secs: defaults::ws_max_session_secs(),
        }
    }
}

/// `apps[].limits`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Worker threads for this app, each owning one V8 isolate.
    #[serde(default = "defaults::workers")]
    #[schemars(range(min = 1, max = 64))]
    pub workers: u32,
    /// Heap plus external memory per isolate, in MiB.
    #[serde(default = "defaults::memory_mb")]
    #[schemars(range(min = 16, max = 4096))]
    pub memory_mb: u32,
    /// Wall-clock limit per request, in seconds.
    #[serde(default = "defaults::timeout_secs")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_secs: u32,
    /// CPU-time limit per request, in milliseconds.
    #[serde(default = "defaults::cpu_ms")]
    #[schemars(range(min = 1, max = 60000))]
    pub cpu_ms: u32,
    /// Budget for evaluating the app's modules at start-up, in milliseconds; an app whose top
    /// level runs longer is marked failed.
    #[serde(default = "defaults::startup_ms")]
    #[schemars(range(min = 10, max = 60000))]
    pub startup_ms: u32,
    /// Requests each worker holds (running or waiting) before the app answers 503.
    #[serde(default = "defaults::queue_per_worker")]
    #[schemars(range(min = 1, max = 4096))]
    pub queue_per_worker: u32,
    /// Seconds a worker may sit without requests before it drops its isolate and its thread
    /// (the next request starts one again from the app's snapshot).
    #[serde(default = "defaults::worker_idle_timeout_secs")]
    #[schemars(range(min = 1, max = 86400))]
    pub idle_timeout_secs: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            workers: defaults::workers(),
            memory_mb: defaults::memory_mb(),
            timeout_secs: defaults::timeout_secs(),
            cpu_ms: defaults::cpu_ms(),
            startup_ms: defaults::startup_ms(),
            queue_per_worker: defaults::queue_per_worker(),
            idle_timeout_secs: defaults::worker_idle_timeout_secs(),
        }
    }
}

/// `slivers`: app artifact caching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Slivers {
    /// Use and keep sliver caches for faster cold starts.
    #[serde(default = "defaults::slivers_enabled")]
    pub enabled: bool,
    /// Slivers kept in the LRU.
    #[serde(default = "defaults::cache_size")]
    #[schemars(range(min = 1, max = 100000))]
    pub cache_size: u32,
    /// Folder for prepared app snapshots that survive restarts (default: `nano-cache` in the
    /// system's temporary folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
}

impl Default for Slivers {
    fn default() -> Self {
        Self {
            enabled: defaults::slivers_enabled(),
            cache_size: defaults::cache_size(),
            cache_dir: None,
        }
    }
}

/// Defaults of the contract (CONFIG.md), one function per key so serde and schemars share them.
pub mod defaults {
    pub fn ws_max_message_bytes() -> u32 {
        1024 * 1024
    }
    pub fn ws_max_sockets() -> u32 {
        100
    }
    pub fn ws_idle_timeout_secs() -> u32 {
        300
    }
    pub fn ws_max_session_secs() -> u32 {
        3600
    }
    pub fn cache_memory_mb() -> u32 {
        64
    }
    pub fn cache_app_quota_mb() -> u32 {
        16
    }
    pub fn port() -> u16 {
        8080
    }
    pub fn host() -> String {
        "0.0.0.0".to_owned()
    }
    pub fn shutdown_grace_secs() -> u64 {
        30
    }
    pub fn header_timeout_secs() -> u64 {
        10
    }
    pub fn max_body_bytes() -> u64 {
        100 * 1024 * 1024
    }
    pub fn body_timeout_secs() -> u64 {
        30
    }
    pub fn max_buffered_body_bytes() -> u64 {
        512 * 1024 * 1024
    }
    pub fn idle_timeout_secs() -> u64 {
        60
    }
    pub fn max_connections() -> u32 {
        10_000
    }
    pub fn context_reset() -> bool {
        true
    }
    pub fn workers() -> u32 {
        4
    }
    pub fn memory_mb() -> u32 {
        128
    }
    pub fn timeout_secs() -> u32 {
        30
    }
    pub fn cpu_ms() -> u32 {
        50
    }
    pub fn startup_ms() -> u32 {
        2000
    }
    pub fn queue_per_worker() -> u32 {
        256
    }
    pub fn worker_idle_timeout_secs() -> u32 {
        60
    }
    pub fn max_subrequests() -> u32 {
        50
    }
    pub fn max_response_bytes() -> u64 {
        32 * 1024 * 1024
    }
    pub fn admin_enabled() -> bool {
        true
    }
    pub fn slivers_enabled() -> bool {
        true
    }
    pub fn cache_size() -> u32 {
        100
    }
}
