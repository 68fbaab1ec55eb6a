//! The fleet state a node keeps on disk: `state.json` (the last good revision's apps) and
//! `slivers/<id>.sliver`, written atomically, verified when read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nano_proto::v1::App;
use nano_sliver::Sliver;
use serde::{Deserialize, Serialize};

/// One app as the fleet gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "SavedFleetApp")]
pub struct FleetApp {
    pub hostname: String,
    pub version: u64,
    pub sliver_id: String,
    /// What was given at deploy, as the config's keys of `apps[]` (limits, fetch, env,
    /// context_reset): `nano_proto::json::config_settings`.
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// A saved [`FleetApp`], also as nodes before the settings were kept whole wrote it (four
/// limits, env and context_reset as fields of their own).
#[derive(Deserialize)]
struct SavedFleetApp {
    hostname: String,
    version: u64,
    sliver_id: String,
    #[serde(default)]
    settings: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    workers: u32,
    #[serde(default)]
    memory_mb: u32,
    #[serde(default)]
    timeout_secs: u32,
    #[serde(default)]
    cpu_ms: u32,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    context_reset: Option<bool>,
}

impl From<SavedFleetApp> for FleetApp {
    fn from(saved: SavedFleetApp) -> Self {
        let settings = saved.settings.unwrap_or_else(|| {
            nano_proto::json::config_settings(&nano_proto::v1::AppSpec {
                limits: Some(nano_proto::v1::Limits {
                    workers: saved.workers,
                    memory_mb: saved.memory_mb,
                    timeout_secs: saved.timeout_secs,
                    cpu_ms: saved.cpu_ms,
                    ..Default::default()
                }),
                env: saved.env.into_iter().collect(),
                context_reset: saved.context_reset,
                ..Default::default()
            })
        });
        Self {
            hostname: saved.hostname,
            version: saved.version,
            sliver_id: saved.sliver_id,
            settings,
        }
    }
}

/// The last revision this node activated.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LastGood {
    pub store_id: String,
    pub revision: u64,
    pub apps: BTreeMap<String, FleetApp>,
    /// Out of rotation on the control plane's command (survives restarts).
    #[serde(default)]
    pub drained: bool,
}

/// Takes an exclusive lock on `dir` (a `lock` file in it) for as long as the file is open;
/// `WouldBlock` if another process holds it.
pub fn lock_dir(dir: &Path) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))?;
    // SAFETY: flock(2) on a descriptor we own; the lock goes when the file is closed.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        let err = std::io::Error::last_os_error();
        return Err(if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            std::io::ErrorKind::WouldBlock.into()
        } else {
            err
        });
    }
    Ok(file)
}

pub fn sliver_path(dir: &Path, id: &str) -> PathBuf {
    dir.join("slivers").join(format!("{id}.sliver"))
}

fn is_sliver_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks that `bytes` are the sliver `id`, whole. One pass: a sliver's id is the hash
/// `from_bytes` computes while validating.
pub fn verify(bytes: Vec<u8>, id: &str) -> Result<Sliver, String> {
    let sliver = Sliver::from_bytes(bytes).map_err(|err| err.to_string())?;
    if sliver.id != id {
        return Err(format!("its content hashes to {}", sliver.id));
    }
    Ok(sliver)
}

/// Checks that the file holds the sliver `id`, whole.
pub fn verify_file(path: &Path, id: &str) -> Result<(), String> {
    let bytes =
        std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    verify(bytes, id).map_err(|why| format!("{}: {why}", path.display()))?;
    Ok(())
}

/// Deletes cached slivers whose id is not in `keep`.
pub fn prune_slivers(dir: &Path, keep: &std::collections::HashSet<String>) {
    let keep: std::collections::HashSet<String> =
        keep.iter().map(|id| format!("{id}.sliver")).collect();
    let Ok(entries) = std::fs::read_dir(dir.join("slivers")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keep.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl FleetApp {
    /// From the protocol; an app without a spec or a well-formed sliver id is skipped (logged).
    pub fn from_proto(app: App) -> Option<Self> {
        let Some(spec) = app.spec else {
            tracing::warn!(
                version = app.version,
                "the control plane sent an app without a spec; skipped"
            );
            return None;
        };
        if !is_sliver_id(&app.sliver_id) {
            tracing::warn!(hostname = %spec.hostname, "the control plane sent a bad sliver id; skipped");
            return None;
        }
        Some(Self {
            hostname: nano_config::normalize_host_header(&spec.hostname),
            version: app.version,
            sliver_id: app.sliver_id,
            settings: nano_proto::json::config_settings(&spec),
        })
    }

    /// The config app serving this from the cached sliver, checked against the config bounds.
    pub fn to_config(&self, dir: &Path) -> Result<nano_config::App, String> {
        let mut raw = self.settings.clone();
        raw.insert("hostname".into(), self.hostname.clone().into());
        raw.insert(
            "sliver".into(),
            serde_json::json!(sliver_path(dir, &self.sliver_id)),
        );
        nano_config::check_app(serde_json::Value::Object(raw)).map_err(|problems| {
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

impl LastGood {
    fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// The saved state, or an empty one (a damaged file is logged and ignored).
    pub fn load(dir: &Path) -> Self {
        let path = Self::path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|err| {
                tracing::error!(file = %path.display(), error = %err, "the saved fleet state is damaged; ignoring it");
                Self::default()
            }),
            Err(_) => Self::default(),
        }
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("the state serialises");
        crate::isolate::prepare::write_atomically(&Self::path(dir), &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state file written before the settings were kept whole still serves its apps with
    /// their limits, env and context_reset.
    #[test]
    fn saved_state_of_the_older_shape_keeps_its_settings() {
        let old = serde_json::json!({
            "hostname": "a.test", "version": 3, "sliver_id": "ab".repeat(32),
            "workers": 2, "memory_mb": 0, "timeout_secs": 0, "cpu_ms": 90,
            "env": { "K": "v" }, "context_reset": false
        });
        let app: FleetApp = serde_json::from_value(old).unwrap();
        assert_eq!(
            serde_json::Value::Object(app.settings.clone()),
            serde_json::json!({ "limits": { "workers": 2, "cpu_ms": 90 }, "env": { "K": "v" },
                                "context_reset": false })
        );
        // And the current shape round-trips.
        let again: FleetApp = serde_json::from_value(serde_json::to_value(&app).unwrap()).unwrap();
        assert_eq!(again, app);
    }

    #[test]
    fn damaged_or_foreign_cached_slivers_fail_verification() {
        let dir = tempfile::tempdir().unwrap();
        let sliver = Sliver::build(
            "a",
            "a.js",
            "test",
            vec![(
                "a.js".into(),
                nano_sliver::PartKind::Module,
                b"export default {}".to_vec(),
            )],
        )
        .unwrap();
        let path = dir.path().join("x.sliver");
        std::fs::write(&path, sliver.bytes()).unwrap();
        assert_eq!(verify_file(&path, &sliver.id), Ok(()));
        let other = "0".repeat(64);
        assert!(
            verify_file(&path, &other)
                .unwrap_err()
                .contains("hashes to")
        );
        let mut bytes = sliver.bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(verify_file(&path, &sliver.id).is_err());
    }
}
