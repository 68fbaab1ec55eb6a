//! Preparing an app: from its source (entry file or sliver) to the V8 snapshot its isolates start
//! from. Snapshots are made by `nano prepare-app` children and kept in a cache keyed by
//! (sources, runtime, V8 version): an LRU in memory and a folder on disk that survives restarts.
//!
//! Why a child process: snapshot creators torn down inside a serving process are a known source
//! of V8 crashes, and the child bounds start-up: it stops an app whose top level outlives
//! `limits.startup_ms` (and is killed if it does not stop), so the serving process never runs
//! the app's top level at all.
//!
//! Cache files are written atomically (temp file + rename) and verified on every read (magic,
//! key, engine, runtime, hash); anything that does not verify is deleted and rebuilt.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nano_sliver::{Sliver, sha256_hex};
use serde::{Deserialize, Serialize};

use super::{AppLoadError, AppSource, engine_version};
use crate::webapi;

/// Exit code of `nano prepare-app` when the app itself is at fault.
pub const PREPARE_APP_ERROR: i32 = 65;
/// Exit code of `nano prepare-app` when evaluation ran past the start-up budget.
pub const PREPARE_APP_BUDGET: i32 = 66;

/// Time the serving process gives a `prepare-app` child beyond the app's own start-up budget
/// (which the child enforces on itself) before killing it.
const STARTUP_BACKSTOP: Duration = Duration::from_secs(10);

const SNAPSHOT_MAGIC: &[u8; 8] = b"NANOSNP1";

/// A prepared app: what its isolates start from.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub handler: String,
    /// The snapshot, unless only its cache file's header was read (an app found in the cache
    /// at load time: its workers read the snapshot when they start).
    pub snapshot: Option<Arc<[u8]>>,
    /// The cache key: digest of sources, runtime and engine.
    pub digest: String,
    /// Every module file as (name, sha256).
    pub files: Vec<(String, String)>,
}

/// What `nano prepare-app` prints on success.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChildReport {
    pub handler: String,
    pub files: Vec<(String, String)>,
    /// The child's [`runtime_tag`]: a snapshot only works in the build that made it (its
    /// native callbacks and sources are named by their place in that build's list).
    pub runtime: String,
}

impl ChildReport {
    /// The report of a snapshot made by this build.
    pub fn new(handler: String, files: Vec<(String, String)>) -> Self {
        Self {
            handler,
            files,
            runtime: runtime_tag(),
        }
    }
}

/// Makes app snapshots, through the cache when it has them.
pub struct Preparer {
    exe: PathBuf,
    cache: Option<Cache>,
}

impl Preparer {
    /// `exe` is the `nano` binary to run as `nano prepare-app`; `cache_dir` enables the cache
    /// (`slivers.enabled`), with `memory_entries` snapshots kept in memory.
    pub fn new(exe: PathBuf, cache_dir: Option<PathBuf>, memory_entries: usize) -> Self {
        let cache = cache_dir.map(|dir| Cache::new(dir, memory_entries));
        Self { exe, cache }
    }

    /// Whether snapshots are kept in a cache (so an app need not hold its own).
    pub fn caches(&self) -> bool {
        self.cache.is_some()
    }

    /// The snapshots the cache keeps in memory, as (identity, bytes): the identity is the
    /// address of the bytes, which the workers that read the same snapshot share.
    pub fn snapshots_in_memory(&self) -> Vec<(usize, usize)> {
        self.cache.as_ref().map_or_else(Vec::new, |cache| {
            cache
                .lock_memory()
                .iter()
                .filter_map(|p| p.snapshot.as_ref())
                .map(|s| (snapshot_identity(s), s.len()))
                .collect()
        })
    }

    /// Drops snapshots from memory that no worker holds, least recently used first, until at
    /// least `bytes` are freed (they stay in the cache folder); returns the bytes freed.
    pub fn forget_unused_snapshots(&self, bytes: usize) -> usize {
        let Some(cache) = &self.cache else { return 0 };
        let mut memory = cache.lock_memory();
        let mut freed = 0;
        let mut index = memory.len();
        while freed < bytes && index > 0 {
            index -= 1;
            let unused = memory[index]
                .snapshot
                .as_ref()
                .is_some_and(|s| Arc::strong_count(s) == 1);
            if unused && let Some(entry) = memory.remove(index) {
                freed += entry.snapshot.map_or(0, |s| s.len());
            }
        }
        freed
    }

    /// The snapshot cached under `key`: from memory, else read and verified from the cache
    /// folder.
    pub fn cached(&self, key: &str) -> Option<Arc<[u8]>> {
        let cache = self.cache.as_ref()?;
        let prepared = match cache.in_memory(key) {
            Some(prepared) => prepared,
            None => {
                let prepared = cache.read_file(key)?;
                cache.remember(prepared.clone());
                prepared
            }
        };
        prepared.snapshot
    }

    /// The app's source: its entry file, or its sliver read and verified.
    pub fn source_of(app: &nano_config::App) -> Result<AppSource, AppLoadError> {
        match &app.code {
            nano_config::AppCode::Sliver(path) => {
                let sliver = Sliver::read(path).map_err(|err| {
                    AppLoadError::Code(format!("sliver {}: {err}", path.display()))
                })?;
                Ok(AppSource::Sliver(Arc::new(sliver)))
            }
            nano_config::AppCode::Module(entry) => Ok(AppSource::Dir(entry.clone())),
        }
    }

    /// The app's snapshot (from the cache or a child), and the source it was made from (read
    /// and verified once, here).
    pub fn prepare(&self, app: &nano_config::App) -> Result<(Prepared, AppSource), AppLoadError> {
        let source = Self::source_of(app)?;
        if let Some(cache) = &self.cache
            && let Some(prepared) = cache.lookup(&source)
        {
            tracing::debug!(hostname = %app.hostname, key = %prepared.digest, "app snapshot from the cache");
            return Ok((prepared, source));
        }
        self.run_and_store(app, source)
    }

    /// Makes the app's snapshot in a `prepare-app` child whatever the cache holds (and caches
    /// it): for a worker whose snapshot the cache has lost.
    pub fn prepare_from_source(
        &self,
        app: &nano_config::App,
    ) -> Result<(Prepared, AppSource), AppLoadError> {
        self.run_and_store(app, Self::source_of(app)?)
    }

    fn run_and_store(
        &self,
        app: &nano_config::App,
        source: AppSource,
    ) -> Result<(Prepared, AppSource), AppLoadError> {
        let budget = Duration::from_millis(app.limits.startup_ms.into());
        let report_and_blob = self.run_child(&app.hostname, app, budget)?;
        let (report, blob) = report_and_blob;
        let prepared = Prepared {
            digest: cache_key(&source_digest(&source, &report.files)),
            handler: report.handler,
            snapshot: Some(blob.into()),
            files: report.files,
        };
        if let Some(cache) = &self.cache {
            cache.store(&source, &prepared);
        }
        Ok((prepared, source))
    }

    fn run_child(
        &self,
        hostname: &str,
        app: &nano_config::App,
        budget: Duration,
    ) -> Result<(ChildReport, Vec<u8>), AppLoadError> {
        use std::process::{Command, Stdio};
        let out = temp_path(&format!("snapshot-{hostname}"));
        let mut command = Command::new(&self.exe);
        command.arg("prepare-app").arg("--hostname").arg(hostname);
        let what = match &app.code {
            nano_config::AppCode::Sliver(sliver) => {
                command.arg("--sliver").arg(sliver);
                sliver.display().to_string()
            }
            nano_config::AppCode::Module(entry) => {
                command.arg("--entrypoint").arg(entry);
                entry.display().to_string()
            }
        };
        // The child dies with the thread that waits for it (this one): a node killed while an
        // app prepares leaves no snapshot creator spinning until its budget.
        let parent = std::process::id();
        // SAFETY: between fork and exec only async-signal-safe calls (prctl, getppid, _exit).
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() as u32 != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = command
            .arg("--out")
            .arg(&out)
            .arg("--budget-ms")
            .arg(budget.as_millis().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|err| {
                AppLoadError::Node(format!(
                    "cannot start {} prepare-app: {err}",
                    self.exe.display()
                ))
            })?;
        let deadline = Instant::now() + budget + STARTUP_BACKSTOP;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let _ = std::fs::remove_file(&out);
                    return Err(AppLoadError::StartupBudget {
                        what,
                        budget_ms: budget.as_millis(),
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(err) => {
                    return Err(AppLoadError::Node(format!(
                        "waiting for prepare-app: {err}"
                    )));
                }
            }
        };
        let mut message = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut stdout, &mut message);
        }
        let message = message.trim().to_owned();
        let blob = std::fs::read(&out);
        let _ = std::fs::remove_file(&out);
        match status.code() {
            Some(0) => {
                let report: ChildReport = serde_json::from_str(&message).map_err(|err| {
                    AppLoadError::Node(format!("prepare-app reported nonsense ({err}): {message}"))
                })?;
                if report.runtime != runtime_tag() {
                    return Err(AppLoadError::Node(format!(
                        "{} prepare-app is another build of nano than this node (its snapshots \
                         would not work here): restart the node to run the binary now at that \
                         path",
                        self.exe.display()
                    )));
                }
                let blob = blob.map_err(|err| {
                    AppLoadError::Node(format!("reading the app snapshot: {err}"))
                })?;
                Ok((report, blob))
            }
            Some(PREPARE_APP_ERROR) => Err(AppLoadError::Code(message)),
            Some(PREPARE_APP_BUDGET) => Err(AppLoadError::StartupBudget {
                what,
                budget_ms: budget.as_millis(),
            }),
            _ => Err(AppLoadError::Crashed {
                what,
                status: status.to_string(),
                detail: if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                },
            }),
        }
    }
}

fn temp_path(what: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("nano-{}-{n}-{what}.tmp", std::process::id()))
}

/// What a snapshot depends on besides the app: the runtime's JS, this build, the V8 version and
/// the flags that shape snapshots.
fn runtime_tag() -> String {
    sha256_hex(
        format!(
            "{}\n{}\n{}\n{}\n{}",
            env!("CARGO_PKG_VERSION"),
            env!("NANO_BUILD_ID"),
            engine_version(),
            webapi::RUNTIME_JS,
            super::V8_FLAGS
        )
        .as_bytes(),
    )
}

/// A digest of (file name, SHA-256) pairs, independent of their order.
pub fn listing_digest(files: &[(String, String)]) -> String {
    let mut lines: Vec<String> = files
        .iter()
        .map(|(name, hash)| format!("{name}\t{hash}\n"))
        .collect();
    lines.sort();
    sha256_hex(lines.concat().as_bytes())
}

/// A digest of the app's sources: the sliver id, or every module's name and hash.
fn source_digest(source: &AppSource, files: &[(String, String)]) -> String {
    match source {
        AppSource::Sliver(sliver) => format!("sliver:{}", sliver.id),
        AppSource::Dir(entry) => format!("dir:{}:{}", entry.display(), listing_digest(files)),
    }
}

fn cache_key(source_digest: &str) -> String {
    sha256_hex(format!("{}\n{source_digest}", runtime_tag()).as_bytes())
}

/// The header of a cache file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheHeader {
    key: String,
    runtime: String,
    handler: String,
    files: Vec<(String, String)>,
    snapshot_sha256: String,
}

/// Which files an entry-file app was built from, so a restart can tell whether they changed.
#[derive(Debug, Serialize, Deserialize)]
struct DirIndex {
    files: Vec<(String, String)>,
}

struct Cache {
    dir: PathBuf,
    memory: Mutex<VecDeque<Prepared>>,
    capacity: usize,
}

/// Which snapshot `bytes` is, among those in memory (the address of its bytes).
pub fn snapshot_identity(bytes: &Arc<[u8]>) -> usize {
    bytes.as_ptr() as usize
}

impl Cache {
    fn lock_memory(&self) -> std::sync::MutexGuard<'_, VecDeque<Prepared>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new(dir: PathBuf, capacity: usize) -> Self {
        if let Err(err) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %err, "cannot create the snapshot cache folder; caching in memory only");
        }
        Self {
            dir,
            memory: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    fn lookup(&self, source: &AppSource) -> Option<Prepared> {
        let key = match source {
            AppSource::Sliver(_) => cache_key(&source_digest(source, &[])),
            AppSource::Dir(entry) => {
                // Still the same files? Re-hash what the last build read.
                let index: DirIndex =
                    serde_json::from_slice(&std::fs::read(self.index_path(entry)).ok()?).ok()?;
                let root = entry.parent()?;
                for (name, hash) in &index.files {
                    let bytes = std::fs::read(root.join(name)).ok()?;
                    if &sha256_hex(&bytes) != hash {
                        return None;
                    }
                }
                cache_key(&source_digest(source, &index.files))
            }
        };
        // Else only the header: the snapshot is read (and verified) when a worker needs it.
        self.in_memory(&key).or_else(|| self.read_header(&key))
    }

    /// The entry kept in memory under `key` (every one holds its snapshot), made the most
    /// recently used.
    fn in_memory(&self, key: &str) -> Option<Prepared> {
        let mut memory = self.lock_memory();
        let index = memory.iter().position(|p| p.digest == key)?;
        let entry = memory.remove(index).expect("index is in range");
        memory.push_front(entry.clone());
        Some(entry)
    }

    fn remember(&self, prepared: Prepared) {
        if prepared.snapshot.is_none() {
            return;
        }
        let mut memory = self.lock_memory();
        memory.retain(|p| p.digest != prepared.digest);
        memory.push_front(prepared);
        memory.truncate(self.capacity);
    }

    fn store(&self, source: &AppSource, prepared: &Prepared) {
        self.remember(prepared.clone());
        let Some(snapshot) = &prepared.snapshot else {
            return;
        };
        let header = CacheHeader {
            key: prepared.digest.clone(),
            runtime: runtime_tag(),
            handler: prepared.handler.clone(),
            files: prepared.files.clone(),
            snapshot_sha256: sha256_hex(snapshot),
        };
        let header = serde_json::to_vec(&header).expect("a header serialises");
        let mut bytes = Vec::with_capacity(12 + header.len() + snapshot.len());
        bytes.extend_from_slice(SNAPSHOT_MAGIC);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(snapshot);
        if let Err(err) = write_atomically(&self.file_path(&prepared.digest), &bytes) {
            tracing::warn!(error = %err, "cannot write the snapshot cache");
            return;
        }
        if let AppSource::Dir(entry) = source {
            let index = serde_json::to_vec(&DirIndex {
                files: prepared.files.clone(),
            })
            .expect("serialises");
            if let Err(err) = write_atomically(&self.index_path(entry), &index) {
                tracing::warn!(error = %err, "cannot write the snapshot cache index");
            }
        }
    }

    fn file_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.snapshot"))
    }

    fn index_path(&self, entry: &Path) -> PathBuf {
        self.dir.join(format!(
            "{}.index",
            sha256_hex(entry.to_string_lossy().as_bytes())
        ))
    }

    /// Reads a cache file's header (what the app's snapshot was made from), checked against the
    /// key and this runtime, without reading the snapshot; a file that fails is deleted.
    fn read_header(&self, key: &str) -> Option<Prepared> {
        use std::io::Read;
        let path = self.file_path(key);
        let mut file = std::fs::File::open(&path).ok()?;
        let size = file.metadata().ok()?.len() as usize;
        let mut start = [0u8; 12];
        let checked = file
            .read_exact(&mut start)
            .map_err(|_| "not a snapshot cache file".to_owned())
            .and_then(|()| {
                let len = u32::from_le_bytes([start[8], start[9], start[10], start[11]]) as usize;
                if &start[..8] != SNAPSHOT_MAGIC || 12 + len > size {
                    return Err("not a snapshot cache file".into());
                }
                let mut header = vec![0; len];
                file.read_exact(&mut header)
                    .map_err(|_| "truncated header".to_owned())?;
                let header = check_header(&header, key)?;
                Ok(Prepared {
                    handler: header.handler,
                    snapshot: None,
                    digest: header.key,
                    files: header.files,
                })
            });
        match checked {
            Ok(prepared) => Some(prepared),
            Err(why) => {
                tracing::warn!(file = %path.display(), reason = %why, "discarding a bad snapshot cache file");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Reads and verifies a cache file; a file that fails any check is deleted.
    fn read_file(&self, key: &str) -> Option<Prepared> {
        let path = self.file_path(key);
        let bytes = std::fs::read(&path).ok()?;
        match parse_cache_file(&bytes, key) {
            Ok(prepared) => Some(prepared),
            Err(why) => {
                tracing::warn!(file = %path.display(), reason = %why, "discarding a bad snapshot cache file");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }
}

fn parse_cache_file(bytes: &[u8], key: &str) -> Result<Prepared, String> {
    if bytes.len() < 12 || &bytes[..8] != SNAPSHOT_MAGIC {
        return Err("not a snapshot cache file".into());
    }
    let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let header = check_header(bytes.get(12..12 + len).ok_or("truncated header")?, key)?;
    let snapshot = &bytes[12 + len..];
    if sha256_hex(snapshot) != header.snapshot_sha256 {
        return Err("the snapshot's hash does not match (corrupted)".into());
    }
    Ok(Prepared {
        handler: header.handler,
        snapshot: Some(snapshot.into()),
        digest: header.key,
        files: header.files,
    })
}

/// A cache file's header, if it was written for `key` by this runtime.
fn check_header(header: &[u8], key: &str) -> Result<CacheHeader, String> {
    let header: CacheHeader = serde_json::from_slice(header).map_err(|e| format!("header: {e}"))?;
    if header.key != key {
        return Err("written for another key".into());
    }
    if header.runtime != runtime_tag() {
        return Err("made by another runtime or V8 version".into());
    }
    Ok(header)
}

/// Writes `bytes` to `path` through a synced temporary file and a rename, so readers never see
/// half a file, even after a crash.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}-{}", std::process::id(), {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }));
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        // Durable before it is visible: a crash never leaves a named but empty file.
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(key: &str) -> Prepared {
        Prepared {
            handler: "module".into(),
            snapshot: Some(vec![1, 2, 3, 4].into()),
            digest: key.into(),
            files: vec![("app.js".into(), "ab".into())],
        }
    }

    #[test]
    fn cache_files_round_trip_and_corruption_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_owned(), 2);
        let sliver = Sliver::build(
            "a",
            "app.js",
            "e",
            vec![(
                "app.js".into(),
                nano_sliver::PartKind::Module,
                b"x".to_vec(),
            )],
        )
        .unwrap();
        let source = AppSource::Sliver(Arc::new(sliver));
        let key = cache_key(&source_digest(&source, &[]));
        cache.store(&source, &prepared(&key));

        // A lookup reads the header only; the snapshot is read and verified when needed.
        let fresh = Cache::new(dir.path().to_owned(), 2);
        let found = fresh.lookup(&source).expect("read back from disk");
        assert!(found.snapshot.is_none());
        assert_eq!(found.handler, "module");
        let full = fresh.read_file(&key).expect("verified");
        assert_eq!(full.snapshot.as_deref(), Some(&[1u8, 2, 3, 4][..]));

        // Flip a byte of the snapshot: the header still reads, the snapshot does not verify
        // and the file is deleted.
        let path = fresh.file_path(&key);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let fresh = Cache::new(dir.path().to_owned(), 2);
        assert!(fresh.lookup(&source).is_some());
        assert!(fresh.read_file(&key).is_none());
        assert!(!path.exists(), "a corrupt cache file is deleted");
        assert!(fresh.lookup(&source).is_none());

        std::fs::write(&path, b"").unwrap();
        assert!(
            Cache::new(dir.path().to_owned(), 2)
                .lookup(&source)
                .is_none()
        );
    }

    #[test]
    fn memory_lru_keeps_the_most_recent() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_owned(), 2);
        for key in ["a", "b", "c"] {
            cache.remember(prepared(key));
        }
        let keys: Vec<_> = cache
            .memory
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.digest.clone())
            .collect();
        assert_eq!(keys, ["c", "b"]);
    }

    /// A `prepare-app` of another build (which made a snapshot this build cannot read) is
    /// refused, with what to do, and nothing reaches the cache.
    #[test]
    fn a_snapshot_of_another_build_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("nano");
        std::fs::write(
            &exe,
            "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --out ] && printf x > \"$2\"; shift; done\n\
             echo '{\"handler\":\"module\",\"files\":[],\"runtime\":\"another build\"}'\n",
        )
        .unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let entry = dir.path().join("app.js");
        std::fs::write(&entry, "export default {};").unwrap();
        let app = nano_config::check_app(serde_json::json!({
            "hostname": "app.test", "entrypoint": entry,
        }))
        .expect("a valid app");
        let preparer = Preparer::new(exe, Some(dir.path().join("cache")), 2);
        let error = preparer.prepare(&app).expect_err("refused").to_string();
        assert!(error.contains("another build of nano"), "{error}");
        assert!(error.contains("restart the node"), "{error}");
        let source = Preparer::source_of(&app).unwrap();
        assert!(preparer.cache.as_ref().unwrap().lookup(&source).is_none());
    }
}
