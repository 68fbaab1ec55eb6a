//! End-to-end harness: starts the real `nano` binary on a port the OS picks, waits until it says
//! it is listening, talks to it over real HTTP, and always stops it (SIGKILL on drop).
//!
//! The binary is taken from the same target folder as the test executable (`cargo build
//! --workspace --bins` puts it there; the README's test command does that first), or from
//! `NANO_BIN`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// How long the harness waits for something the binary must eventually do. A safety net against
/// hangs, not a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The folder holding the JS fixtures (one folder per behaviour).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Path of a workspace binary built next to the test executable.
pub fn binary(name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(format!("{}_BIN", name.to_uppercase())) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test knows its own path");
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/*/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the end-to-end tests",
        path.display()
    );
    // A binary older than the sources would test yesterday's code.
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace");
    let crates: &[&str] = match name {
        "nano-controlplane" => &["controlplane", "config", "sliver", "proto"],
        "nanoctl" => &["cli", "dataplane", "config", "sliver", "proto"],
        _ => &["dataplane", "config", "sliver", "proto"],
    };
    if let (Some(built), Some((source, changed))) = (built, newest_source(root, crates))
        && changed > built
    {
        panic!(
            "{} is older than {}: run `cargo build --workspace --bins` before the end-to-end tests",
            path.display(),
            source.display()
        );
    }
    path
}

/// The most recently modified source file of the workspace crates `crates`.
fn newest_source(root: &Path, crates: &[&str]) -> Option<(PathBuf, std::time::SystemTime)> {
    fn walk(dir: &Path, newest: &mut Option<(PathBuf, std::time::SystemTime)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, newest);
            } else {
                walk_file(&path, newest);
            }
        }
    }
    fn walk_file(path: &Path, newest: &mut Option<(PathBuf, std::time::SystemTime)>) {
        if let Ok(modified) = std::fs::metadata(path).and_then(|m| m.modified())
            && newest.as_ref().is_none_or(|(_, t)| modified > *t)
        {
            *newest = Some((path.to_owned(), modified));
        }
    }
    let mut newest = None;
    for crate_dir in crates {
        for part in ["src", "build.rs", "nano"] {
            let path = root.join(crate_dir).join(part);
            if path.is_file() {
                walk_file(&path, &mut newest);
            } else {
                walk(&path, &mut newest);
            }
        }
    }
    newest
}

#[derive(Default)]
struct LogState {
    text: String,
    closed: bool,
}

/// Everything the child wrote to stderr, shared with a reader thread.
#[derive(Clone, Default)]
pub struct Log(Arc<(Mutex<LogState>, Condvar)>);

impl Log {
    fn push(&self, line: &str) {
        let (lock, cond) = &*self.0;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        state.text.push_str(line);
        state.text.push('\n');
        cond.notify_all();
    }

    fn close(&self) {
        let (lock, cond) = &*self.0;
        lock.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        cond.notify_all();
    }

    pub fn text(&self) -> String {
        self.0
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .text
            .clone()
    }

    /// Blocks until `predicate` holds for the log text; panics with the log if it never does.
    pub fn wait_for(&self, what: &str, predicate: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + PATIENCE;
        let state = self.wait_until(deadline, |state| state.closed || predicate(&state.text));
        let text = state.text.clone();
        drop(state);
        if predicate(&text) {
            return text;
        }
        panic!("never saw {what} in the log:\n{text}");
    }

    /// Blocks until the reader has seen the end of the child's stderr, or until `deadline`.
    fn wait_closed(&self, deadline: std::time::Instant) {
        drop(self.wait_until(deadline, |state| state.closed));
    }

    /// Blocks until `done` holds for the log or `deadline` passes; answers the log as it is then.
    fn wait_until(
        &self,
        deadline: std::time::Instant,
        done: impl Fn(&LogState) -> bool,
    ) -> std::sync::MutexGuard<'_, LogState> {
        let (lock, cond) = &*self.0;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = std::time::Instant::now();
            if done(&state) || now >= deadline {
                return state;
            }
            state = cond
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits until `needle` appears at least `count` times.
    pub fn wait_for_count(&self, needle: &str, count: usize) {
        self.wait_for(&format!("{count} x {needle:?}"), |text| {
            text.matches(needle).count() >= count
        });
    }
}

/// A running `nano` process.
/// What a node under test logs.
const NODE_LOG: &str = "info,nano_dataplane=debug";

pub struct Nano {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub log: Log,
    pub dir: tempfile::TempDir,
}

impl Nano {
    /// Writes `config` (with `server` filled in for loopback port 0) to a temporary folder and
    /// starts `nano --config` on it. Relative entrypoints are resolved against `fixtures()`.
    pub fn start(config: serde_json::Value) -> Self {
        Self::start_with(config, &[])
    }

    /// Like [`Nano::start`], with extra command-line arguments.
    pub fn start_with(mut config: serde_json::Value, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = config
            .as_object_mut()
            .unwrap()
            .entry("server")
            .or_insert(serde_json::json!({}));
        server["host"] = "127.0.0.1".into();
        server["port"] = 0.into();
        // Each node gets its own snapshot cache, so no test sees another's (or another build's).
        let slivers = config
            .as_object_mut()
            .unwrap()
            .entry("slivers")
            .or_insert(serde_json::json!({}));
        if slivers.get("cache_dir").is_none() {
            slivers["cache_dir"] = dir
                .path()
                .join("snapshots")
                .to_string_lossy()
                .into_owned()
                .into();
        }
        // `config["apps"]` would insert a null when absent.
        if let Some(apps) = config.get_mut("apps").and_then(|a| a.as_array_mut()) {
            for app in apps {
                if let Some(entry) = app["entrypoint"].as_str() {
                    app["entrypoint"] =
                        fixtures().join(entry).to_string_lossy().into_owned().into();
                }
            }
        }
        let path = dir.path().join("config.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let mut args = vec!["--config", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        Self::start_with_args(&args, dir)
    }

    /// Starts `nano --config FILE` on a config file the test wrote itself (it must listen on
    /// 127.0.0.1 port 0); `dir` is kept alive with the process.
    pub fn start_file(config: &Path, dir: tempfile::TempDir) -> Self {
        Self::start_with_args(&["--config", config.to_str().unwrap()], dir)
    }

    /// Starts `nano` with exactly these arguments and environment (no config written); it must
    /// log the address it listens on.
    pub fn start_args(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut env = env.to_vec();
        env.push(("NANO_LOG", NODE_LOG));
        let (child, log) = spawn_logged("nano", args, &env);
        let addr = log_addr(&log, "addr");
        Self {
            child: Some(child),
            addr,
            log,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("still running");
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, signal) };
    }

    /// Starts the `nano` executable at `exe` (a copy of the one under test) on a config file the
    /// test wrote itself, as [`Nano::start_file`] does.
    pub fn start_exe(exe: &Path, config: &Path, dir: tempfile::TempDir) -> Self {
        Self::start_exe_with_args(exe, &["--config", config.to_str().unwrap()], dir)
    }

    fn start_with_args(args: &[&str], dir: tempfile::TempDir) -> Self {
        Self::start_exe_with_args(&binary("nano"), args, dir)
    }

    fn start_exe_with_args(exe: &Path, args: &[&str], dir: tempfile::TempDir) -> Self {
        let (child, log) = spawn_logged_exe(exe, args, &[("NANO_LOG", NODE_LOG)]);
        let addr = log_addr(&log, "addr");
        Self {
            child: Some(child),
            addr,
            log,
            dir,
        }
    }

    /// Sends SIGTERM and waits for the exit (failing with the log if it does not come within
    /// `PATIENCE`).
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("still running");
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        wait_exit(&mut child, &self.log)
    }

    /// Waits for the process to exit by itself (after a signal sent with [`Nano::signal`]),
    /// failing with the log if it does not within `PATIENCE`.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("still running");
        wait_exit(&mut child, &self.log)
    }

    /// The process id of the running node.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the node runs").id()
    }

    /// The node's resident memory now, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }

    /// The node's worker threads now (threads named `nano-worker-…`, one per running worker).
    pub fn worker_threads(&self) -> usize {
        let tasks = format!("/proc/{}/task", self.pid());
        std::fs::read_dir(tasks)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|task| {
                        std::fs::read_to_string(task.path().join("comm"))
                            .is_ok_and(|name| name.starts_with("nano-worker"))
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// The workers `/_admin/isolates` lists.
    pub async fn isolates(&self) -> Vec<serde_json::Value> {
        let reply = self.get("127.0.0.1", "/_admin/isolates").await;
        reply.json()["isolates"].as_array().unwrap().clone()
    }

    pub async fn get(&self, host: &str, path: &str) -> Reply {
        self.send(
            Request::get(path)
                .header("host", host)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
    }

    /// Sends any request over a fresh HTTP/1.1 connection.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Reply {
        send(self.addr, request).await
    }
}

impl Drop for Nano {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- nano log ---\n{}--- end of nano log ---",
                self.log.text()
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits for `child` to exit and for its log to hold all it wrote (the reader thread may still
/// be reading the pipe when the process is gone); past `PATIENCE` kills it and fails with its log.
pub fn wait_exit(child: &mut Child, log: &Log) -> ExitStatus {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            log.wait_closed(deadline);
            return status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the process did not exit within {PATIENCE:?}; its log:\n{}",
                log.text()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts a workspace binary with its stderr collected into a [`Log`].
pub fn spawn_logged(name: &str, args: &[&str], env: &[(&str, &str)]) -> (Child, Log) {
    spawn_logged_exe(&binary(name), args, env)
}

/// Like [`spawn_logged`], for the executable at `exe`.
pub fn spawn_logged_exe(exe: &Path, args: &[&str], env: &[(&str, &str)]) -> (Child, Log) {
    let name = exe.display();
    let mut command = Command::new(exe);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{name} starts: {e}"));
    let log = Log::default();
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            match line {
                Ok(line) => sink.push(&line),
                Err(_) => break,
            }
        }
        sink.close();
    });
    (child, log)
}

/// Waits for the first log line with `field=ADDR` and returns the address.
pub fn log_addr(log: &Log, field: &str) -> SocketAddr {
    let prefix = format!("{field}=");
    let has = |l: &str| l.split_whitespace().any(|w| w.starts_with(&prefix));
    let text = log.wait_for(&format!("a {field}= line"), |t| t.lines().any(has));
    let line = text.lines().find(|l| has(l)).unwrap();
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {line}"))
        .parse()
        .unwrap()
}

/// The tokens every test control plane is started with.
pub const OPERATOR_TOKEN: &str = "operator-token-for-tests";
pub const NODE_TOKEN: &str = "node-token-for-tests";

/// A running `nano-controlplane` on loopback.
pub struct ControlPlane {
    child: Option<Child>,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub log: Log,
    pub data_dir: PathBuf,
}

impl ControlPlane {
    /// Starts a control plane on `data_dir`, its gRPC on `grpc` (port 0: the OS picks).
    pub fn start(data_dir: &Path, grpc: &str) -> Self {
        Self::start_with(data_dir, grpc, &[])
    }

    /// Like [`ControlPlane::start`], with more flags (e.g. `--tls-cert`).
    pub fn start_with(data_dir: &Path, grpc: &str, extra: &[&str]) -> Self {
        let mut args = vec!["--data-dir", data_dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        Self::start_args(grpc, &args, data_dir)
    }

    /// A replica on `etcd`'s cluster under `prefix` (a 2 s lease: a dead replica's nodes show
    /// as disconnected quickly).
    pub fn start_on_etcd(etcd: &Etcd, prefix: &str, grpc: &str) -> Self {
        Self::start_on_etcd_with(etcd, prefix, grpc, &[])
    }

    /// Like [`ControlPlane::start_on_etcd`], with more flags (e.g. `--etcd-ca-cert`).
    pub fn start_on_etcd_with(etcd: &Etcd, prefix: &str, grpc: &str, extra: &[&str]) -> Self {
        let url = etcd.url();
        let mut args = vec![
            "--etcd-endpoints",
            &url,
            "--etcd-prefix",
            prefix,
            "--etcd-lease-ttl-secs",
            "2",
        ];
        args.extend_from_slice(extra);
        Self::start_args(grpc, &args, Path::new(""))
    }

    fn start_args(grpc: &str, store: &[&str], data_dir: &Path) -> Self {
        let mut args = store.to_vec();
        args.extend(["--grpc-listen", grpc, "--http-listen", "127.0.0.1:0"]);
        let (child, log) = spawn_logged(
            "nano-controlplane",
            &args,
            &[
                ("NANO_OPERATOR_TOKEN", OPERATOR_TOKEN),
                ("NANO_NODE_TOKEN", NODE_TOKEN),
                ("NANO_LOG", "info,nano_controlplane=debug"),
            ],
        );
        let grpc = log_addr(&log, "grpc_addr");
        let http = log_addr(&log, "http_addr");
        Self {
            child: Some(child),
            grpc,
            http,
            log,
            data_dir: data_dir.to_owned(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("still running");
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, signal) };
    }

    /// Waits for the process to exit (failing with its log past `PATIENCE`).
    pub fn wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("still running");
        wait_exit(&mut child, &self.log)
    }

    /// Runs `nanoctl` against this control plane with the operator token.
    pub fn nanoctl(&self, args: &[&str]) -> std::process::Output {
        nanoctl(&self.url(), Some(OPERATOR_TOKEN), args)
    }

    /// `nanoctl ARGS -o json`, which must succeed, parsed.
    pub fn nanoctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.nanoctl(&all);
        assert!(
            out.status.success(),
            "nanoctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// Blocks until `count` nodes are connected (as `nanoctl nodes` reports).
    pub fn wait_for_nodes(&self, count: usize) {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let nodes = self.nanoctl_json(&["nodes"]);
            let connected = nodes["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["connected"] == true)
                .count();
            if connected >= count {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never saw {count} connected nodes: {nodes}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- control plane log ---\n{}--- end of control plane log ---",
                self.log.text()
            );
        }
        self.kill();
    }
}

/// A real etcd (Debian's `etcd-server`) on loopback ports: one member, or a cluster. Stopped
/// when dropped; [`Etcd::kill`], [`Etcd::restart`] and their `_member` forms keep the data and
/// ports.
pub struct Etcd {
    members: Vec<EtcdMember>,
    dir: tempfile::TempDir,
    tls: Option<EtcdTls>,
}

struct EtcdMember {
    child: Option<Child>,
    client_port: u16,
    peer_port: u16,
    /// Plain-HTTP /health and /metrics (whatever the client URLs speak).
    metrics_port: u16,
}

/// PEM files of an etcd that serves TLS and wants client certificates.
pub struct EtcdTls {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Etcd {
    /// One member; `None` when etcd is not installed outside CI (CI installs it, and there a
    /// missing etcd is a failure, not a skip).
    pub fn start() -> Option<Self> {
        Self::cluster(1)
    }

    /// A cluster of `size` members on loopback.
    pub fn cluster(size: usize) -> Option<Self> {
        Self::build(size, false)
    }

    /// One member serving TLS to clients and requiring a client certificate, signed by a CA
    /// made for it ([`Etcd::tls`] has the files).
    pub fn start_tls() -> Option<Self> {
        Self::build(1, true)
    }

    pub fn tls(&self) -> &EtcdTls {
        self.tls.as_ref().expect("started with start_tls")
    }

    fn build(size: usize, tls: bool) -> Option<Self> {
        if Command::new("etcd").arg("--version").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "etcd is not installed, and CI must run the replica tests on it (.ci/run \
                 installs Debian's etcd-server)"
            );
            eprintln!("etcd not installed; skipped (apt-get install etcd-server)");
            return None;
        }
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let mut etcd = Self {
            members: (0..size)
                .map(|_| EtcdMember {
                    child: None,
                    client_port: free(),
                    peer_port: free(),
                    metrics_port: free(),
                })
                .collect(),
            dir: tempfile::tempdir().unwrap(),
            tls: None,
        };
        if tls {
            etcd.tls = Some(etcd_tls_files(etcd.dir.path()));
        }
        etcd.restart();
        Some(etcd)
    }

    /// The client URLs of every member, comma-separated.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.members
            .iter()
            .map(|m| format!("{scheme}://127.0.0.1:{}", m.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts every stopped member again on its data and ports, and waits until all answer
    /// healthy (a member is healthy once the cluster has a leader).
    pub fn restart(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                self.spawn(i);
            }
        }
        for i in 0..self.members.len() {
            self.wait_healthy(i);
        }
    }

    /// Starts member `i` again (the others must give it a quorum to be healthy).
    pub fn restart_member(&mut self, i: usize) {
        self.spawn(i);
        self.wait_healthy(i);
    }

    fn spawn(&mut self, i: usize) {
        let cluster = self
            .members
            .iter()
            .enumerate()
            .map(|(n, m)| format!("m{n}=http://127.0.0.1:{}", m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let member = &mut self.members[i];
        assert!(member.child.is_none(), "etcd member {i} is running");
        let peer = format!("http://127.0.0.1:{}", member.peer_port);
        let url = format!("{scheme}://127.0.0.1:{}", member.client_port);
        let metrics = format!("http://127.0.0.1:{}", member.metrics_port);
        let data = self.dir.path().join(format!("m{i}"));
        let mut command = Command::new("etcd");
        command
            .args([
                "--data-dir",
                data.to_str().unwrap(),
                "--name",
                &format!("m{i}"),
            ])
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args([
                "--initial-cluster",
                &cluster,
                "--listen-metrics-urls",
                &metrics,
            ]);
        if let Some(tls) = &self.tls {
            command
                .args(["--cert-file", tls.server_cert.to_str().unwrap()])
                .args(["--key-file", tls.server_key.to_str().unwrap()])
                .args(["--trusted-ca-file", tls.ca.to_str().unwrap()])
                .arg("--client-cert-auth");
        }
        let log = std::fs::File::create(self.dir.path().join(format!("m{i}.log"))).unwrap();
        member.child = Some(
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("etcd starts"),
        );
    }

    fn wait_healthy(&self, i: usize) {
        let deadline = std::time::Instant::now() + PATIENCE;
        let address = format!("127.0.0.1:{}", self.members[i].metrics_port);
        loop {
            // /health answers {"health":"true"} once the member has a leader.
            if let Ok(mut stream) = std::net::TcpStream::connect(&address) {
                use std::io::{Read, Write};
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = stream
                    .write_all(b"GET /health HTTP/1.1\r\nHost: etcd\r\nConnection: close\r\n\r\n");
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.contains("\"health\":\"true\"") {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "etcd member {i} did not become healthy; its log:\n{}",
                std::fs::read_to_string(self.dir.path().join(format!("m{i}.log")))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Turns on etcd's authentication with a `root` user of `password` (through its JSON
    /// gateway on the first member; plain HTTP only).
    pub fn enable_auth(&self, password: &str) {
        let post = |path: &str, body: String| {
            use std::io::{Read, Write};
            let mut stream =
                std::net::TcpStream::connect(("127.0.0.1", self.members[0].client_port)).unwrap();
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            write!(
                stream,
                "POST {path} HTTP/1.1\r\nHost: etcd\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        };
        post(
            "/v3/auth/user/add",
            format!(r#"{{"name":"root","password":"{password}"}}"#),
        );
        post(
            "/v3/auth/user/grant",
            r#"{"user":"root","role":"root"}"#.into(),
        );
        post("/v3/auth/enable", "{}".into());
    }

    /// SIGKILL to every member (the data stays for [`Etcd::restart`]).
    pub fn kill(&mut self) {
        for i in 0..self.members.len() {
            self.kill_member(i);
        }
    }

    /// SIGKILL to member `i`.
    pub fn kill_member(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, written as PEM in `dir`.
fn etcd_tls_files(dir: &Path) -> EtcdTls {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf(vec!["127.0.0.1".into(), "localhost".into()]);
    let (client_cert, client_key) = leaf(vec!["nano-controlplane".into()]);
    EtcdTls {
        ca: write("ca.pem", ca.pem()),
        server_cert: write("server.pem", server_cert),
        server_key: write("server-key.pem", server_key),
        client_cert: write("client.pem", client_cert),
        client_key: write("client-key.pem", client_key),
    }
}

/// Runs `nanoctl` to completion.
pub fn nanoctl(server: &str, token: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(binary("nanoctl"));
    command
        .args(args)
        .env("NANO_SERVER", server)
        .env_remove("NANO_TOKEN")
        .stdin(Stdio::null());
    if let Some(token) = token {
        command.env("NANO_TOKEN", token);
    }
    command.output().expect("nanoctl runs")
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

pub async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to nano");
    send_on(stream, request).await
}

/// The value of one sample line of a Prometheus exposition, e.g.
/// `nano_requests_total{hostname="a.example",status="200"}`.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// Starts a GET of `path` on `host` as its own task (for requests that must be in flight
/// together); await the handle for the reply.
pub fn spawn_get(addr: SocketAddr, host: &str, path: &str) -> tokio::task::JoinHandle<Reply> {
    let request = self::request("GET", host, path).body(body("")).unwrap();
    tokio::spawn(send(addr, request))
}

/// Sends a request over an already connected stream.
pub async fn send_on(stream: tokio::net::TcpStream, request: Request<Full<Bytes>>) -> Reply {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let response = sender.send_request(request).await.expect("response");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Runs the `nano` binary with arguments to completion (for `check`, `config schema`).
pub fn run_nano(args: &[&str]) -> std::process::Output {
    output_within(Command::new(binary("nano")).args(args))
}

/// Runs `command` to completion and collects its output; one that has not exited within
/// `PATIENCE` is killed and the test fails with what it printed.
pub fn output_within(command: &mut Command) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let collect = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = collect(Box::new(child.stdout.take().expect("piped")));
    let stderr = collect(Box::new(child.stderr.take().expect("piped")));
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let (out, err) = (stdout.join().unwrap(), stderr.join().unwrap());
            panic!(
                "{command:?} did not exit within {PATIENCE:?}; stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// A TLS acceptor for a certificate of "localhost" that a fresh private CA signed, and that
/// CA's PEM (for `--fetch-ca-cert`).
pub fn tls_acceptor_for_localhost() -> (tokio_rustls::TlsAcceptor, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca.pem())
}

/// Polls `check` every 50 ms until it holds, failing with `what` (and the last thing `check`
/// reported) if it does not within `PATIENCE`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let last = match check().await {
            Ok(()) => return,
            Err(last) => last,
        };
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen within {PATIENCE:?}; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs an async test body on a fresh runtime with a hard limit against hangs.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(PATIENCE * 2, future)
                .await
                .expect("test finished")
        })
}

/// A request builder with method, path and Host set.
pub fn request(method: &str, host: &str, path: &str) -> hyper::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
}

/// A request body.
pub fn body(text: &str) -> Full<Bytes> {
    Full::new(Bytes::from(text.to_owned()))
}

/// Checks a Prometheus text exposition with `promtool check metrics` (installed by `.ci/run`;
/// skipped with a note where it is missing). Lint warnings pass; errors fail.
pub fn check_with_promtool(text: &str) {
    let promtool = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("promtool"))
            .find(|p| p.is_file())
    });
    let Some(promtool) = promtool else {
        // CI installs it (.ci/run): there a missing promtool is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not installed, and CI must check the metrics with it"
        );
        eprintln!("promtool not installed; skipped its check (CI installs it)");
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    // The exposition must parse and lint clean, except for one lint the design accepts on
    // purpose: `nano_request_duration_ms` and `nano_cpu_time_ms` are named in milliseconds
    // (../shared/docs/DESIGN.md), which promtool calls an abbreviated unit.
    let unexpected: Vec<&str> = report
        .lines()
        .filter(|line| !line.trim().is_empty())
        .filter(|line| !line.ends_with("metric names should not contain abbreviated units"))
        .collect();
    assert!(
        unexpected.is_empty() && (out.status.success() || !report.contains("error")),
        "promtool: {report}"
    );
}
