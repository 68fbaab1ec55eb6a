//! NANO's config contract: the types of `config.json`, their defaults and bounds, validation that
//! reports every problem at once with its JSON path, and the JSON Schema editors can use.
//!
//! The schema generated from these types is the single source of truth for key names, types and
//! numeric bounds: [`load`] validates the raw JSON against it before deserialising, so unknown keys,
//! wrong types and out-of-range values are all reported together. Checks a schema cannot express
//! (unique hostnames, files that must exist) follow in [`Config::validate`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// Run as a member of a fleet: the apps come from this control plane (the local `apps`
    /// stay as a fallback for hostnames the control plane does not serve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ControlPlane>,
}

/// `control_plane`: where a fleet member gets its apps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlPlane {
    /// The control plane's gRPC address: `http://host:7070`, or `https://...` with TLS.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
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
#[serde(deny_unknown_fields)]
pub struct App {
    /// Exact host served (case-insensitive, port ignored); unique across apps.
    #[schemars(length(min = 1, max = 253))]
    pub hostname: String,
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
    /// `true`: every request runs in a fresh V8 context, so no global state survives it.
    /// `false`: one context per isolate, globals persist (Cloudflare Workers semantics).
    #[serde(default = "defaults::context_reset")]
    pub context_reset: bool,
}

/// Where an app's code comes from: exactly one of `entrypoint` and `sliver`, as validation
/// guarantees ([`App::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code<'a> {
    /// An ES module; the modules it imports are in its folder.
    Module(&'a Path),
    /// A sliver file (`nano sliver build`).
    Sliver(&'a Path),
}

impl App {
    /// The app's code. Every app that passed validation (a config file, `check_app`) has
    /// exactly one of `entrypoint` and `sliver`.
    pub fn code(&self) -> Code<'_> {
        match (&self.sliver, &self.entrypoint) {
            (Some(sliver), _) => Code::Sliver(sliver),
            (None, Some(entry)) => Code::Module(entry),
            (None, None) => unreachable!("a validated app has an entrypoint or a sliver"),
        }
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

/// One thing wrong with a config: where (a JSON path such as `apps[0].limits.workers`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "(top level): {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid JSON: {source}")]
    Syntax {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("config file {path} has {} problem{}:\n{}", problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// Reads, validates and resolves a config file. Relative entrypoints become absolute paths
/// resolved against the file's folder.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    parse(&text, &base).map_err(|err| match err {
        ParseError::Syntax(source) => ConfigError::Syntax {
            path: path.to_owned(),
            source,
        },
        ParseError::Invalid(problems) => ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        },
    })
}

/// Errors of [`parse`], before a file name is attached.
#[derive(Debug)]
pub enum ParseError {
    Syntax(serde_json::Error),
    Invalid(Vec<Problem>),
}

/// Parses config text whose relative paths are relative to `base`.
pub fn parse(text: &str, base: &Path) -> Result<Config, ParseError> {
    let raw: Value = serde_json::from_str(text).map_err(ParseError::Syntax)?;
    let problems = schema_problems(&raw);
    if !problems.is_empty() {
        return Err(ParseError::Invalid(problems));
    }
    let mut config: Config = serde_json::from_value(raw).map_err(|err| {
        // The schema accepted it, so this is a gap between schema and types: still say where.
        ParseError::Invalid(vec![Problem {
            path: String::new(),
            message: err.to_string(),
        }])
    })?;
    // `./x.js` joined to the base keeps the `.`; drop it so logs show a clean path.
    let resolve = |path: &mut PathBuf| {
        if path.is_relative() {
            *path = base.join(&*path).components().collect();
        }
    };
    for app in &mut config.apps {
        app.entrypoint.as_mut().map(resolve);
        app.sliver.as_mut().map(resolve);
    }
    config.slivers.cache_dir.as_mut().map(resolve);
    if let Some(control_plane) = &mut config.control_plane {
        control_plane.cache_dir.as_mut().map(resolve);
        control_plane.ca_cert.as_mut().map(resolve);
    }
    let problems = config.validate();
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ParseError::Invalid(problems))
    }
}

impl Config {
    /// Checks the schema cannot express. Returns every problem found.
    pub fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.server.max_buffered_body_bytes < self.server.max_body_bytes {
            problems.push(Problem {
                path: "server.max_buffered_body_bytes".into(),
                message: format!(
                    "{} is less than server.max_body_bytes ({}): the node could never hold one \
                     request of the largest size it accepts; raise it or lower max_body_bytes",
                    self.server.max_buffered_body_bytes, self.server.max_body_bytes
                ),
            });
        }
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, app) in self.apps.iter().enumerate() {
            let path = |field: &str| format!("apps[{i}].{field}");
            match normalize_hostname(&app.hostname) {
                Err(why) => problems.push(Problem {
                    path: path("hostname"),
                    message: format!("{:?} is not a valid hostname: {why}", app.hostname),
                }),
                Ok(host) => {
                    if let Some(first) = seen.insert(host.clone(), i) {
                        problems.push(Problem {
                            path: path("hostname"),
                            message: format!(
                                "{host:?} is already served by apps[{first}]; hostnames must be \
                                 unique (case-insensitive)"
                            ),
                        });
                    }
                }
            }
            match (&app.entrypoint, &app.sliver) {
                (Some(_), Some(_)) => problems.push(Problem {
                    path: format!("apps[{i}]"),
                    message: "give either \"entrypoint\" or \"sliver\", not both".into(),
                }),
                (None, None) => problems.push(Problem {
                    path: format!("apps[{i}]"),
                    message: "missing \"entrypoint\" (an ES module) or \"sliver\" (a sliver file)"
                        .into(),
                }),
                _ => {}
            }
            for (field, file) in [("entrypoint", &app.entrypoint), ("sliver", &app.sliver)] {
                if let Some(file) = file
                    && !file.is_file()
                {
                    problems.push(Problem {
                        path: path(field),
                        message: format!(
                            "{} does not exist or is not a file (relative paths are resolved \
                             against the config file's folder)",
                            file.display()
                        ),
                    });
                }
            }
        }
        problems.sort_by(|a, b| a.path.cmp(&b.path));
        problems
    }

    /// The app serving `host` (already normalised by [`normalize_host_header`]).
    pub fn app_index(&self) -> BTreeMap<String, usize> {
        self.apps
            .iter()
            .enumerate()
            .filter_map(|(i, app)| normalize_hostname(&app.hostname).ok().map(|h| (h, i)))
            .collect()
    }
}

/// Lower-cases a configured hostname and checks its characters.
pub fn normalize_hostname(hostname: &str) -> Result<String, &'static str> {
    let host = hostname.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return Err("it is empty");
    }
    if host.contains(':') {
        return Err("give the hostname without a port; the port is ignored when routing");
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        return Err("only letters, digits, '-', '_' and '.' are allowed");
    }
    if host.split('.').any(str::is_empty) {
        return Err("it has an empty label ('..' or a leading '.')");
    }
    Ok(host)
}

/// Normalises a request's `Host` value for routing: lower-cased, port and trailing dot removed.
pub fn normalize_host_header(host: &str) -> String {
    let host = host.trim();
    let without_port = if host.starts_with('[') {
        // IPv6 literal: keep the brackets' content only.
        host.split(']')
            .next()
            .unwrap_or(host)
            .trim_start_matches('[')
    } else {
        host.rsplit_once(':').map_or(host, |(name, _port)| name)
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

/// Checks an app's settings given outside a config file, without its code (the control plane
/// checks a deploy's spec this way; the code is the sliver beside it): schema bounds, types and
/// unknown keys, and the hostname. Problem paths are relative to the app (`limits.cpu_ms`).
pub fn check_settings(raw: Value) -> Result<(), Vec<Problem>> {
    parse_app(raw).map(drop)
}

fn parse_app(raw: Value) -> Result<App, Vec<Problem>> {
    let strip = |mut problems: Vec<Problem>| {
        for problem in &mut problems {
            let path = problem
                .path
                .strip_prefix("apps[0]")
                .unwrap_or(&problem.path);
            problem.path = path.trim_start_matches('.').to_owned();
        }
        problems
    };
    let wrapped = serde_json::json!({ "apps": [raw] });
    let problems = schema_problems(&wrapped);
    if !problems.is_empty() {
        return Err(strip(problems));
    }
    let Value::Array(mut apps) = wrapped["apps"].clone() else {
        unreachable!("built as an array above")
    };
    let app: App = serde_json::from_value(apps.remove(0)).map_err(|err| {
        vec![Problem {
            path: String::new(),
            message: err.to_string(),
        }]
    })?;
    if let Err(why) = normalize_hostname(&app.hostname) {
        return Err(vec![Problem {
            path: "hostname".into(),
            message: format!("{:?} is not a valid hostname: {why}", app.hostname),
        }]);
    }
    Ok(app)
}

/// Checks one app given outside a config file, code included: what [`check_settings`] checks,
/// and exactly one of `entrypoint` and `sliver` (so [`App::code`] holds).
pub fn check_app(raw: Value) -> Result<App, Vec<Problem>> {
    let app = parse_app(raw)?;
    if app.entrypoint.is_some() == app.sliver.is_some() {
        return Err(vec![Problem {
            path: String::new(),
            message: "give exactly one of \"entrypoint\" (an ES module) and \"sliver\"".into(),
        }]);
    }
    Ok(app)
}

/// The JSON Schema of the config file (draft 2020-12).
pub fn json_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Config)).expect("a generated schema is valid JSON")
}

fn schema_problems(raw: &Value) -> Vec<Problem> {
    let schema = json_schema();
    let validator = jsonschema::validator_for(&schema).expect("the generated schema compiles");
    let mut problems: Vec<Problem> = validator
        .iter_errors(raw)
        .map(|err| {
            let pointer = err.instance_path().as_str().to_owned();
            let message = describe(&schema, &pointer, &err);
            Problem {
                path: pointer_to_path(&pointer),
                message,
            }
        })
        .collect();
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    problems.dedup();
    problems
}

/// Turns one schema error into a sentence: what is wrong and what is allowed.
fn describe(schema: &Value, pointer: &str, err: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as Kind;
    let value = err.instance();
    match err.kind() {
        Kind::Minimum { .. } | Kind::Maximum { .. } => {
            let node = subschema(schema, pointer);
            let min = node.and_then(|n| n.get("minimum")).map(Value::to_string);
            let max = node.and_then(|n| n.get("maximum")).map(Value::to_string);
            format!(
                "{value} is out of range; allowed {} to {}",
                min.unwrap_or_else(|| "-inf".into()),
                max.unwrap_or_else(|| "+inf".into())
            )
        }
        Kind::AdditionalProperties { unexpected } => {
            let node = subschema(schema, pointer);
            let known: Vec<String> = node
                .and_then(|n| n.get("properties"))
                .and_then(Value::as_object)
                .map(|props| props.keys().cloned().collect())
                .unwrap_or_default();
            let unexpected: Vec<String> = unexpected.iter().map(|k| format!("{k:?}")).collect();
            format!(
                "unknown key {}; known keys here: {}",
                unexpected.join(", "),
                known.join(", ")
            )
        }
        Kind::Required { property } => format!("missing required key {property}"),
        Kind::Type { .. } => {
            let expected = subschema(schema, pointer)
                .and_then(|n| n.get("type"))
                .map(|t| t.to_string())
                .unwrap_or_else(|| "another type".into());
            format!("{value} has the wrong type; expected {expected}")
        }
        _ => err.to_string(),
    }
}

/// The schema node describing the value at a JSON pointer (following `$ref`s into `$defs`).
fn subschema<'a>(root: &'a Value, pointer: &str) -> Option<&'a Value> {
    let resolve = |mut node: &'a Value| -> Option<&'a Value> {
        for _ in 0..8 {
            match node.get("$ref").and_then(Value::as_str) {
                Some(r) => node = root.pointer(r.trim_start_matches('#'))?,
                None => {
                    // Option<T> and defaults show up as allOf/anyOf of a single $ref.
                    if let Some(inner) = ["allOf", "anyOf"]
                        .iter()
                        .find_map(|k| node.get(*k).and_then(Value::as_array))
                        .and_then(|alts| alts.iter().find(|a| a.get("$ref").is_some()))
                    {
                        node = inner;
                        continue;
                    }
                    return Some(node);
                }
            }
        }
        Some(node)
    };
    let mut node = resolve(root)?;
    for segment in pointer.split('/').skip(1) {
        node = if segment.parse::<usize>().is_ok() && node.get("items").is_some() {
            resolve(node.get("items")?)?
        } else {
            resolve(node.get("properties")?.get(segment)?)?
        };
    }
    Some(node)
}

/// `/apps/0/limits/workers` -> `apps[0].limits.workers`.
fn pointer_to_path(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        if segment.parse::<usize>().is_ok() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with_app() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.js"), "export default {}").unwrap();
        dir
    }

    fn problems(text: &str) -> Vec<Problem> {
        let dir = dir_with_app();
        match parse(text, dir.path()) {
            Err(ParseError::Invalid(problems)) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn spec_example_parses_with_defaults() {
        let dir = dir_with_app();
        let config = parse(
            r#"{"server":{"port":8080,"host":"0.0.0.0"},
                "apps":[{"hostname":"api.example.com","entrypoint":"./app.js",
                         "limits":{"workers":4,"memory_mb":128,"timeout_secs":30,"cpu_ms":50}}],
                "slivers":{"enabled":true,"cache_size":100}}"#,
            dir.path(),
        )
        .unwrap();
        assert_eq!(config.apps[0].limits.queue_per_worker, 256);
        assert!(config.apps[0].context_reset);
        assert!(config.apps[0].entrypoint.as_ref().unwrap().is_file());
        let minimal = parse(
            r#"{"apps":[{"hostname":"a","entrypoint":"app.js"}]}"#,
            dir.path(),
        );
        let minimal = minimal.unwrap();
        assert_eq!(minimal.server, Server::default());
        assert_eq!(minimal.apps[0].limits, Limits::default());
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let found = problems(
            r#"{"server":{"port":"80","hots":"x"},
                "apps":[{"hostname":"A.com","entrypoint":"missing.js","limits":{"workers":65,"cpu_ms":0}},
                        {"hostname":"a.com","entrypoint":"app.js","wrkers":2}],
                "extra":1}"#,
        );
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        let has = |path: &str, needle: &str| {
            assert!(
                found
                    .iter()
                    .any(|p| p.path == path && p.message.contains(needle)),
                "no problem at {path} containing {needle:?} in {text:#?}"
            )
        };
        has("", "unknown key \"extra\"");
        has("server", "unknown key \"hots\"");
        has("server.port", "wrong type");
        has(
            "apps[0].limits.workers",
            "65 is out of range; allowed 1 to 64",
        );
        has(
            "apps[0].limits.cpu_ms",
            "0 is out of range; allowed 1 to 60000",
        );
        has("apps[1]", "unknown key \"wrkers\"");
    }

    #[test]
    fn semantic_problems_are_reported_together() {
        let found = problems(
            r#"{"apps":[{"hostname":"A.com","entrypoint":"missing.js"},
                        {"hostname":"a.com","entrypoint":"app.js"},
                        {"hostname":"b.com:80","entrypoint":"app.js"}]}"#,
        );
        assert_eq!(found.len(), 3, "{found:#?}");
        assert_eq!(found[0].path, "apps[0].entrypoint");
        assert_eq!(found[1].path, "apps[1].hostname");
        assert!(found[1].message.contains("already served by apps[0]"));
        assert_eq!(found[2].path, "apps[2].hostname");
        assert!(found[2].message.contains("without a port"));
    }

    #[test]
    fn exactly_one_of_entrypoint_and_sliver() {
        let both =
            problems(r#"{"apps":[{"hostname":"a","entrypoint":"app.js","sliver":"app.js"}]}"#);
        assert!(both[0].message.contains("not both"), "{both:?}");
        let neither = problems(r#"{"apps":[{"hostname":"a"}]}"#);
        assert!(neither[0].message.contains("\"entrypoint\""), "{neither:?}");
    }

    #[test]
    fn missing_required_keys_are_named() {
        let found = problems(r#"{"apps":[{"entrypoint":"app.js"}]}"#);
        assert_eq!(found[0].path, "apps[0]");
        assert!(found[0].message.contains("hostname"), "{found:?}");
    }

    #[test]
    fn host_header_normalisation() {
        for (input, want) in [
            ("Example.COM", "example.com"),
            ("example.com:8080", "example.com"),
            ("example.com.", "example.com"),
            ("EXAMPLE.com.:443", "example.com"),
            ("[::1]:8080", "::1"),
            ("localhost", "localhost"),
        ] {
            assert_eq!(normalize_host_header(input), want, "{input}");
        }
    }

    #[test]
    fn every_example_config_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![dir.join("example.json")];
        for entry in std::fs::read_dir(dir.join("examples")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
        for file in files {
            load(&file).unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        }
    }

    #[test]
    fn an_app_outside_a_config_needs_exactly_one_kind_of_code() {
        let app = |extra: Value| {
            let mut raw = serde_json::json!({ "hostname": "a.test", "limits": { "workers": 1 } });
            raw.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            raw
        };
        assert!(
            check_settings(app(serde_json::json!({}))).is_ok(),
            "settings alone"
        );
        assert!(check_app(app(serde_json::json!({}))).is_err(), "no code");
        let both = serde_json::json!({ "entrypoint": "a.js", "sliver": "a.sliver" });
        assert!(check_app(app(both)).is_err(), "both");
        let sliver = check_app(app(serde_json::json!({ "sliver": "a.sliver" }))).unwrap();
        assert_eq!(sliver.code(), Code::Sliver(Path::new("a.sliver")));
    }

    #[test]
    fn misspelled_key_fixture_fails() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/misspelled.json");
        let err = load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("apps[0].limits: unknown key \"cpu_msec\""),
            "{err}"
        );
    }

    /// Every key of the config types (walked through the generated schema, so a new field is
    /// in it at once): described, unknown keys refused beside it, and named in the README's
    /// config reference.
    #[test]
    fn schema_describes_every_key() {
        let schema = json_schema();
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
                .expect("the README is beside the workspace");
        let mut keys = Vec::new();
        let mut problems = Vec::new();
        walk_schema(&schema, &schema, "", &mut keys, &mut problems);
        for key in &keys {
            if !readme.contains(&format!("`{key}`")) {
                problems.push(format!("{key}: not in the README's config reference"));
            }
        }
        // The walk reaches the leaves, not only the sections.
        for key in [
            "server.port",
            "apps[].limits.cpu_ms",
            "apps[].fetch.max_subrequests",
        ] {
            assert!(
                keys.iter().any(|k| k == key),
                "the walk missed {key}: {keys:?}"
            );
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// Follows `$ref`, `anyOf` (an `Option`) and `items` (a list) down to object schemas, and
    /// lists every property's path (`apps[].limits.cpu_ms`), checking each object on the way.
    fn walk_schema(
        root: &Value,
        node: &Value,
        path: &str,
        keys: &mut Vec<String>,
        problems: &mut Vec<String>,
    ) {
        if let Some(target) = node.get("$ref").and_then(Value::as_str) {
            let target = root
                .pointer(target.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("{path}: dangling {target}"));
            return walk_schema(root, target, path, keys, problems);
        }
        for branch in node
            .get("anyOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk_schema(root, branch, path, keys, problems);
        }
        if let Some(items) = node.get("items") {
            walk_schema(root, items, &format!("{path}[]"), keys, problems);
        }
        let Some(properties) = node.get("properties").and_then(Value::as_object) else {
            return;
        };
        if node.get("additionalProperties") != Some(&Value::Bool(false)) {
            problems.push(format!("{path}: unknown keys are not refused"));
        }
        for (name, property) in properties {
            let key = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            let described = property
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.trim().is_empty());
            if !described {
                problems.push(format!("{key}: no description"));
            }
            let before = keys.len();
            walk_schema(root, property, &key, keys, problems);
            // Sections (objects, lists of objects) are named by their keys; leaves by their own.
            if keys.len() == before {
                keys.push(key);
            }
        }
    }
}
