//! The control plane's database: the only module that touches sled.
//!
//! Trees: `apps` (hostname -> the current [`App`]), `history` (hostname, version -> [`App`], for
//! rollback), `slivers` (id -> bytes), `nodes` (node id -> last known [`Node`]), `drains` (node
//! ids an operator took out of rotation) and `meta` (the config revision and the store's id). Records are the protocol's own protobuf messages.
//!
//! Crash consistency: a deploy writes the sliver and flushes, then switches the app's version,
//! its history and the revision in one transaction, then flushes, and only then returns. A crash
//! at any point leaves every app on a version whose sliver is whole. Slivers no version refers to
//! any more are removed after a switch that dropped versions (pruning, delete), and on open, in
//! case a crash came between.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nano_proto::v1::{App, AppSpec, Node};
use prost::Message;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

/// Versions of an app kept for rollback (the current one included).
pub const HISTORY_KEPT: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the data dir {dir} is in use by another nano-controlplane process; stop it, or give this \
         one its own --data-dir"
    )]
    Locked { dir: PathBuf },
    #[error("cannot open the data dir {dir}: {source}")]
    Open { dir: PathBuf, source: sled::Error },
    #[error("the store failed: {0}")]
    Db(#[from] sled::Error),
    #[error("the store holds a damaged record under {key}: {why}")]
    Corrupt { key: String, why: String },
    #[error("no app serves {0:?}; `nanoctl apps` lists the deployed ones")]
    NoApp(String),
    #[error("{host:?} has no version {version}; `nanoctl get {host}` lists the versions kept")]
    NoVersion { host: String, version: u64 },
    #[error("{0:?} has no earlier version to roll back to")]
    NoEarlierVersion(String),
    #[error(
        "{host:?} is served by the app {owner:?}; to replace it deploy with that name \
         (nanoctl deploy --name {owner}), or remove it first (nanoctl rm {host})"
    )]
    HostnameTaken { host: String, owner: String },
}

/// The store. Writes are serialised by one lock (deploys are rare; correctness is what counts).
pub struct Store {
    db: sled::Db,
    apps: sled::Tree,
    history: sled::Tree,
    slivers: sled::Tree,
    nodes: sled::Tree,
    drains: sled::Tree,
    meta: sled::Tree,
    store_id: String,
    writer: Mutex<()>,
}

const REVISION: &[u8] = b"revision";
const STORE_ID: &[u8] = b"store_id";

fn history_key(host: &str, version: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(host.len() + 9);
    key.extend_from_slice(host.as_bytes());
    key.push(0);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

fn history_prefix(host: &str) -> Vec<u8> {
    let mut key = host.as_bytes().to_vec();
    key.push(0);
    key
}

fn decode<M: Message + Default>(key: &[u8], bytes: &[u8]) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|err| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).replace('\0', "/"),
        why: err.to_string(),
    })
}

fn u64_value(bytes: Option<sled::IVec>) -> u64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
        .map_or(0, u64::from_be_bytes)
}

impl Store {
    /// Opens (or creates) the database in `dir`. A second process on the same dir fails here.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|err| StoreError::Open {
            dir: dir.to_owned(),
            source: err.into(),
        })?;
        let db =
            sled::Config::new()
                .path(dir.join("db"))
                .open()
                .map_err(|source| match &source {
                    sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                        StoreError::Locked {
                            dir: dir.to_owned(),
                        }
                    }
                    _ => StoreError::Open {
                        dir: dir.to_owned(),
                        source,
                    },
                })?;
        let tree = |name: &str| db.open_tree(name);
        let store_id = match db.get(STORE_ID)? {
            Some(id) => String::from_utf8_lossy(&id).into_owned(),
            None => {
                let mut bytes = [0u8; 16];
                getrandom::fill(&mut bytes).map_err(|err| StoreError::Corrupt {
                    key: "store_id".into(),
                    why: err.to_string(),
                })?;
                let id = hex::encode(bytes);
                db.insert(STORE_ID, id.as_bytes())?;
                db.flush()?;
                id
            }
        };
        let store = Self {
            apps: tree("apps")?,
            history: tree("history")?,
            slivers: tree("slivers")?,
            nodes: tree("nodes")?,
            drains: tree("drains")?,
            meta: tree("meta")?,
            db,
            store_id,
            writer: Mutex::new(()),
        };
        // Nothing else holds the store yet: no writer lock needed.
        store.collect_slivers()?;
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Identifies this database: revisions are comparable only within one store.
    pub fn store_id(&self) -> &str {
        &self.store_id
    }

    /// The config revision: bumped by every deploy, rollback and delete.
    pub fn revision(&self) -> Result<u64, StoreError> {
        Ok(u64_value(self.meta.get(REVISION)?))
    }

    /// Every app's current version, by hostname.
    pub fn apps(&self) -> Result<Vec<App>, StoreError> {
        self.apps
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                decode(&key, &value)
            })
            .collect()
    }

    /// The current version of `host`'s app.
    pub fn app(&self, host: &str) -> Result<Option<App>, StoreError> {
        self.apps
            .get(host.as_bytes())?
            .map(|bytes| decode(host.as_bytes(), &bytes))
            .transpose()
    }

    /// The versions of `host` kept for rollback, oldest first.
    pub fn history(&self, host: &str) -> Result<Vec<App>, StoreError> {
        self.history
            .scan_prefix(history_prefix(host))
            .map(|entry| {
                let (key, value) = entry?;
                decode(&key, &value)
            })
            .collect()
    }

    /// The apps and the revision read together (no write can come between).
    pub fn state(&self) -> Result<(u64, Vec<App>), StoreError> {
        let _guard = self.lock();
        Ok((self.revision()?, self.apps()?))
    }

    /// A stored sliver's bytes.
    pub fn sliver(&self, id: &str) -> Result<Option<sled::IVec>, StoreError> {
        Ok(self.slivers.get(id.as_bytes())?)
    }

    /// Total bytes of stored slivers and their count.
    pub fn sliver_usage(&self) -> (u64, u64) {
        self.slivers
            .iter()
            .values()
            .flatten()
            .fold((0, 0), |(bytes, count), v| {
                (bytes + v.len() as u64, count + 1)
            })
    }

    /// Makes a new version of `spec.hostname` from a verified sliver. Returns it with the new
    /// revision and the version that was current before (0: none), once all is on disk.
    pub fn deploy(
        &self,
        spec: AppSpec,
        sliver_id: &str,
        sliver: &[u8],
        entry: &str,
        now_ms: i64,
    ) -> Result<(App, u64, u64), StoreError> {
        let _guard = self.lock();
        let host = spec.hostname.clone();
        let current = self.app(&host)?;
        // Checked under the writer lock, so two deploys under different names cannot both pass.
        if let Some(owner) = current
            .as_ref()
            .and_then(|c| c.spec.as_ref())
            .map(|s| &s.name)
            && !owner.is_empty()
            && spec.name != *owner
        {
            return Err(StoreError::HostnameTaken {
                host,
                owner: owner.clone(),
            });
        }
        let current_version = current.map(|a| a.version);
        // 1. The sliver, durable before anything refers to it.
        if !self.slivers.contains_key(sliver_id.as_bytes())? {
            self.slivers.insert(sliver_id.as_bytes(), sliver)?;
            self.db.flush()?;
        }
        let history = self.history(&host)?;
        let version = history.iter().map(|a| a.version).max().unwrap_or(0) + 1;
        let app = App {
            spec: Some(spec),
            version,
            sliver_id: sliver_id.to_owned(),
            sliver_bytes: sliver.len() as u64,
            deployed_at_ms: now_ms,
            entry: entry.to_owned(),
        };
        // Versions past the retention limit go, except the current one.
        let excess = (history.len() + 1).saturating_sub(HISTORY_KEPT);
        let pruned: Vec<u64> = history
            .iter()
            .map(|a| a.version)
            .filter(|v| Some(*v) != current_version)
            .take(excess)
            .collect();
        // 2. The switch, in one transaction.
        let revision = self.switch(&host, Some(&app), true, &pruned)?;
        // 3. Durable, then acknowledged.
        self.db.flush()?;
        // A deploy only adds references; a sliver can lose its last one only with a pruned
        // version (leftovers of a crash are collected on open).
        if !pruned.is_empty() {
            self.collect_slivers()?;
        }
        Ok((app, revision, current_version.unwrap_or(0)))
    }

    /// Makes `to` (or, with 0, the newest version older than the current one) current again.
    pub fn rollback(&self, host: &str, to: u64) -> Result<(App, u64), StoreError> {
        let _guard = self.lock();
        let current = self
            .app(host)?
            .ok_or_else(|| StoreError::NoApp(host.to_owned()))?;
        let history = self.history(host)?;
        let target = if to == 0 {
            history
                .iter()
                .filter(|a| a.version < current.version)
                .max_by_key(|a| a.version)
                .cloned()
                .ok_or_else(|| StoreError::NoEarlierVersion(host.to_owned()))?
        } else {
            history
                .iter()
                .find(|a| a.version == to)
                .cloned()
                .ok_or(StoreError::NoVersion {
                    host: host.to_owned(),
                    version: to,
                })?
        };
        let revision = self.switch(host, Some(&target), false, &[])?;
        self.db.flush()?;
        Ok((target, revision))
    }

    /// Removes `host`'s app and its history.
    pub fn delete(&self, host: &str) -> Result<u64, StoreError> {
        let _guard = self.lock();
        if self.app(host)?.is_none() {
            return Err(StoreError::NoApp(host.to_owned()));
        }
        let versions: Vec<u64> = self.history(host)?.iter().map(|a| a.version).collect();
        let revision = self.switch(host, None, false, &versions)?;
        self.db.flush()?;
        self.collect_slivers()?;
        Ok(revision)
    }

    /// One transaction: point `host` at `app` (or remove it), record it in the history when
    /// `record`, drop the `pruned` versions, bump the revision.
    fn switch(
        &self,
        host: &str,
        app: Option<&App>,
        record: bool,
        pruned: &[u64],
    ) -> Result<u64, StoreError> {
        let encoded = app.map(Message::encode_to_vec);
        let result =
            (&self.apps, &self.history, &self.meta).transaction(|(apps, history, meta)| {
                match (&encoded, app) {
                    (Some(bytes), Some(app)) => {
                        apps.insert(host.as_bytes(), bytes.as_slice())?;
                        if record {
                            history.insert(history_key(host, app.version), bytes.as_slice())?;
                        }
                    }
                    _ => {
                        apps.remove(host.as_bytes())?;
                    }
                }
                for version in pruned {
                    history.remove(history_key(host, *version))?;
                }
                let revision = u64_value(meta.get(REVISION)?) + 1;
                meta.insert(REVISION, &revision.to_be_bytes())?;
                Ok::<u64, ConflictableTransactionError<()>>(revision)
            });
        match result {
            Ok(revision) => Ok(revision),
            Err(TransactionError::Storage(err)) => Err(err.into()),
            Err(TransactionError::Abort(())) => unreachable!("the transaction never aborts"),
        }
    }

    /// Removes slivers that no kept version refers to. Called with the writer lock held.
    fn collect_slivers(&self) -> Result<(), StoreError> {
        let mut referenced = HashSet::new();
        for entry in self.history.iter().chain(self.apps.iter()) {
            let (key, value) = entry?;
            let app: App = decode(&key, &value)?;
            referenced.insert(app.sliver_id);
        }
        let mut removed = false;
        for id in self.slivers.iter().keys() {
            let id = id?;
            if !referenced.contains(String::from_utf8_lossy(&id).as_ref()) {
                self.slivers.remove(&id)?;
                removed = true;
            }
        }
        if removed {
            self.db.flush()?;
        }
        Ok(())
    }

    /// Records a node's last known state (kept across restarts for `nanoctl nodes`).
    pub fn put_node(&self, node: &Node) -> Result<(), StoreError> {
        self.nodes
            .insert(node.node_id.as_bytes(), node.encode_to_vec())?;
        Ok(())
    }

    /// Every node ever recorded.
    pub fn nodes(&self) -> Result<Vec<Node>, StoreError> {
        self.nodes
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                decode(&key, &value)
            })
            .collect()
    }

    /// Records whether an operator took `node_id` out of rotation; durable on return.
    pub fn set_drained(&self, node_id: &str, drained: bool) -> Result<(), StoreError> {
        let _guard = self.lock();
        if drained {
            self.drains.insert(node_id.as_bytes(), &[1u8])?;
        } else {
            self.drains.remove(node_id.as_bytes())?;
        }
        self.db.flush()?;
        Ok(())
    }

    /// Whether `node_id` is to be out of rotation.
    pub fn drained(&self, node_id: &str) -> Result<bool, StoreError> {
        Ok(self.drains.contains_key(node_id.as_bytes())?)
    }

    /// Flushes everything to disk (on shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(host: &str) -> AppSpec {
        AppSpec {
            hostname: host.into(),
            ..Default::default()
        }
    }

    #[test]
    fn versions_rollback_delete_and_sliver_collection() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (v1, r1, _) = store
            .deploy(spec("a.test"), "s1", b"one", "a.js", 1)
            .unwrap();
        let (v2, r2, previous) = store
            .deploy(spec("a.test"), "s2", b"two", "a.js", 2)
            .unwrap();
        assert_eq!((v1.version, v2.version), (1, 2));
        assert!(r2 > r1);
        assert_eq!(previous, 1);
        let (back, _) = store.rollback("a.test", 0).unwrap();
        assert_eq!(back.sliver_id, "s1");
        assert_eq!(store.app("a.test").unwrap().unwrap().version, 1);
        // The next deploy continues the numbering.
        let (v3, _, _) = store
            .deploy(spec("a.test"), "s1", b"one", "a.js", 3)
            .unwrap();
        assert_eq!(v3.version, 3);
        assert!(matches!(
            store.rollback("a.test", 9),
            Err(StoreError::NoVersion { version: 9, .. })
        ));
        store.delete("a.test").unwrap();
        assert!(store.apps().unwrap().is_empty());
        assert_eq!(store.sliver_usage(), (0, 0));
        assert!(matches!(store.delete("a.test"), Err(StoreError::NoApp(_))));
    }

    #[test]
    fn a_hostname_belongs_to_one_named_app() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let named = |name: &str| AppSpec {
            hostname: "n.test".into(),
            name: name.into(),
            ..Default::default()
        };
        store
            .deploy(named("shop"), "s1", b"one", "a.js", 1)
            .unwrap();
        match store.deploy(named("blog"), "s2", b"two", "a.js", 2) {
            Err(err @ StoreError::HostnameTaken { .. }) => {
                assert!(
                    err.to_string().contains("served by the app \"shop\""),
                    "{err}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            store.sliver_usage().1,
            1,
            "nothing of the refused deploy is stored"
        );
        store
            .deploy(named("shop"), "s2", b"two", "a.js", 3)
            .unwrap();
    }

    #[test]
    fn history_is_bounded_and_keeps_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..(HISTORY_KEPT as i64 + 5) {
            let id = format!("s{i}");
            store
                .deploy(spec("b.test"), &id, id.as_bytes(), "b.js", i)
                .unwrap();
        }
        let history = store.history("b.test").unwrap();
        assert_eq!(history.len(), HISTORY_KEPT);
        assert_eq!(store.sliver_usage().1, HISTORY_KEPT as u64);
        assert_eq!(history.last().unwrap().version, HISTORY_KEPT as u64 + 5);
    }

    #[test]
    fn a_second_open_of_the_same_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        // sled's lock is per process file descriptor; a second open in-process reuses nothing.
        match Store::open(dir.path()) {
            Err(err @ StoreError::Locked { .. }) => {
                assert!(err.to_string().contains("in use by another"))
            }
            Err(other) => panic!("unexpected error: {other}"),
            Ok(_) => panic!("second open succeeded"),
        }
    }
}
