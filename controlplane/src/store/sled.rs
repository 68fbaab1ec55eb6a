//! The embedded backend: sled in one directory, one process at a time.
//!
//! Trees: `apps` (hostname -> the current [`App`]), `history` (hostname, version -> [`App`], for
//! rollback), `slivers` (id -> bytes), `nodes` (node id -> last known [`Node`]), `drains` (node
//! ids an operator took out of rotation), `deploys` (deploy id -> its [`DeployResponse`]) and
//! `meta` (the config revision and the store's id).
//!
//! Crash consistency: a deploy writes the sliver and flushes, then switches the app's version,
//! its history, the deploy record and the revision in one transaction, then flushes, and only
//! then returns. Slivers no version refers to any more are removed after a switch that dropped
//! versions (pruning, delete), and on open, in case a crash came between.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nano_proto::v1::{App, DeployResponse, Isolate, Node};
use prost::Message;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{DEPLOY_IDS_KEPT_MS, Deploy, Store, StoreError, decode};

/// The store. Writes are serialised by one lock (deploys are rare; correctness is what counts).
pub struct SledStore {
    dir: PathBuf,
    db: sled::Db,
    apps: sled::Tree,
    history: sled::Tree,
    slivers: sled::Tree,
    nodes: sled::Tree,
    drains: sled::Tree,
    deploys: sled::Tree,
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

fn u64_value(bytes: Option<sled::IVec>) -> u64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
        .map_or(0, u64::from_be_bytes)
}

/// Everything a sled store holds, for `migrate`.
pub struct Dump {
    pub store_id: String,
    pub revision: u64,
    pub apps: Vec<App>,
    pub history: Vec<App>,
    pub slivers: Vec<(String, Vec<u8>)>,
    pub nodes: Vec<Node>,
    pub drains: Vec<String>,
}

impl SledStore {
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
                let id = super::new_id()?;
                db.insert(STORE_ID, id.as_bytes())?;
                db.flush()?;
                id
            }
        };
        let store = Self {
            dir: dir.to_owned(),
            apps: tree("apps")?,
            history: tree("history")?,
            slivers: tree("slivers")?,
            nodes: tree("nodes")?,
            drains: tree("drains")?,
            deploys: tree("deploys")?,
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

    fn scan<M: Message + Default>(
        iter: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    ) -> Result<Vec<M>, StoreError> {
        iter.map(|entry| {
            let (key, value) = entry?;
            decode(&key, &value)
        })
        .collect()
    }

    /// Everything stored, for `migrate`.
    pub fn dump(&self) -> Result<Dump, StoreError> {
        let _guard = self.lock();
        Ok(Dump {
            store_id: self.store_id.clone(),
            revision: self.revision()?,
            apps: Self::scan(self.apps.iter())?,
            history: Self::scan(self.history.iter())?,
            slivers: self
                .slivers
                .iter()
                .map(|entry| {
                    let (key, value) = entry?;
                    Ok((String::from_utf8_lossy(&key).into_owned(), value.to_vec()))
                })
                .collect::<Result<_, StoreError>>()?,
            nodes: Self::scan(self.nodes.iter())?,
            drains: self
                .drains
                .iter()
                .keys()
                .map(|key| Ok(String::from_utf8_lossy(&key?).into_owned()))
                .collect::<Result<_, StoreError>>()?,
        })
    }

    /// One transaction: point `host` at `app` (or remove it), record it in the history when
    /// `record`, drop the `pruned` versions, record the deploy, bump the revision.
    fn switch(
        &self,
        host: &str,
        app: Option<&App>,
        record: bool,
        pruned: &[u64],
        deploy: Option<(&str, u64)>,
    ) -> Result<u64, StoreError> {
        let encoded = app.map(Message::encode_to_vec);
        let result = (&self.apps, &self.history, &self.meta, &self.deploys).transaction(
            |(apps, history, meta, deploys)| {
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
                if let (Some((id, previous_version)), Some(app)) = (deploy, app)
                    && !id.is_empty()
                {
                    let answer = DeployResponse {
                        app: Some(app.clone()),
                        revision,
                        previous_version,
                    };
                    deploys.insert(id.as_bytes(), answer.encode_to_vec())?;
                }
                Ok::<u64, ConflictableTransactionError<()>>(revision)
            },
        );
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

    /// Forgets deploy ids older than [`DEPLOY_IDS_KEPT_MS`]. Called with the writer lock held.
    fn forget_deploy_ids(&self, now_ms: i64) -> Result<(), StoreError> {
        for entry in self.deploys.iter() {
            let (key, value) = entry?;
            let answer: DeployResponse = decode(&key, &value)?;
            let at = answer.app.map_or(0, |a| a.deployed_at_ms);
            if now_ms - at > DEPLOY_IDS_KEPT_MS {
                self.deploys.remove(key)?;
            }
        }
        Ok(())
    }
}

impl Store for SledStore {
    fn describe(&self) -> String {
        format!("sled at {}", self.dir.display())
    }

    fn store_id(&self) -> &str {
        &self.store_id
    }

    fn revision(&self) -> Result<u64, StoreError> {
        Ok(u64_value(self.meta.get(REVISION)?))
    }

    fn apps(&self) -> Result<Vec<App>, StoreError> {
        Self::scan(self.apps.iter())
    }

    fn app(&self, host: &str) -> Result<Option<App>, StoreError> {
        self.apps
            .get(host.as_bytes())?
            .map(|bytes| decode(host.as_bytes(), &bytes))
            .transpose()
    }

    fn history(&self, host: &str) -> Result<Vec<App>, StoreError> {
        Self::scan(self.history.scan_prefix(history_prefix(host)))
    }

    fn state(&self) -> Result<(u64, Vec<App>), StoreError> {
        let _guard = self.lock();
        Ok((self.revision()?, self.apps()?))
    }

    fn sliver(&self, id: &str) -> Result<Option<bytes::Bytes>, StoreError> {
        Ok(self
            .slivers
            .get(id.as_bytes())?
            .map(|bytes| bytes::Bytes::copy_from_slice(&bytes)))
    }

    fn sliver_usage(&self) -> Result<(u64, u64), StoreError> {
        let mut usage = (0, 0);
        for value in self.slivers.iter().values() {
            usage.0 += value?.len() as u64;
            usage.1 += 1;
        }
        Ok(usage)
    }

    fn deploy(&self, deploy: Deploy<'_>) -> Result<DeployResponse, StoreError> {
        let _guard = self.lock();
        if !deploy.deploy_id.is_empty()
            && let Some(bytes) = self.deploys.get(deploy.deploy_id.as_bytes())?
        {
            return decode(deploy.deploy_id.as_bytes(), &bytes);
        }
        let host = deploy.spec.hostname.clone();
        let current = self.app(&host)?;
        // Checked under the writer lock, so two deploys under different names cannot both pass.
        super::check_owner(&deploy.spec, current.as_ref())?;
        let current_version = current.map(|a| a.version);
        // 1. The sliver, durable before anything refers to it.
        if !self.slivers.contains_key(deploy.sliver_id.as_bytes())? {
            self.slivers
                .insert(deploy.sliver_id.as_bytes(), deploy.sliver)?;
            self.db.flush()?;
        }
        let history = self.history(&host)?;
        let (version, pruned) = super::next_version(&history, current_version);
        let app = super::new_app(&deploy, version);
        let previous_version = current_version.unwrap_or(0);
        // 2. The switch, in one transaction.
        let revision = self.switch(
            &host,
            Some(&app),
            true,
            &pruned,
            Some((deploy.deploy_id, previous_version)),
        )?;
        // 3. Durable, then acknowledged.
        self.db.flush()?;
        // A deploy only adds references; a sliver can lose its last one only with a pruned
        // version (leftovers of a crash are collected on open).
        if !pruned.is_empty() {
            self.collect_slivers()?;
        }
        self.forget_deploy_ids(deploy.now_ms)?;
        Ok(DeployResponse {
            app: Some(app),
            revision,
            previous_version,
        })
    }

    fn rollback(&self, host: &str, to: u64) -> Result<(App, u64), StoreError> {
        let _guard = self.lock();
        let current = self
            .app(host)?
            .ok_or_else(|| StoreError::NoApp(host.to_owned()))?;
        let target = super::rollback_target(host, &current, &self.history(host)?, to)?;
        let revision = self.switch(host, Some(&target), false, &[], None)?;
        self.db.flush()?;
        Ok((target, revision))
    }

    fn delete(&self, host: &str) -> Result<u64, StoreError> {
        let _guard = self.lock();
        if self.app(host)?.is_none() {
            return Err(StoreError::NoApp(host.to_owned()));
        }
        let versions: Vec<u64> = self.history(host)?.iter().map(|a| a.version).collect();
        let revision = self.switch(host, None, false, &versions, None)?;
        self.db.flush()?;
        self.collect_slivers()?;
        Ok(revision)
    }

    fn put_node(&self, node: &Node, _isolates: &[Isolate]) -> Result<(), StoreError> {
        self.nodes
            .insert(node.node_id.as_bytes(), node.encode_to_vec())?;
        Ok(())
    }

    fn nodes(&self) -> Result<Vec<Node>, StoreError> {
        Self::scan(self.nodes.iter())
    }

    fn set_drained(&self, node_id: &str, drained: bool) -> Result<(), StoreError> {
        let _guard = self.lock();
        if drained {
            self.drains.insert(node_id.as_bytes(), &[1u8])?;
        } else {
            self.drains.remove(node_id.as_bytes())?;
        }
        self.db.flush()?;
        Ok(())
    }

    fn drained(&self, node_id: &str) -> Result<bool, StoreError> {
        Ok(self.drains.contains_key(node_id.as_bytes())?)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        (dir, store)
    }

    fn with_store(test: impl FnOnce(&dyn Store)) {
        let (_dir, store) = store();
        test(&store);
    }

    super::super::contract_tests!(with_store);

    #[test]
    fn a_second_open_of_the_same_dir_is_refused() {
        let (dir, _first) = store();
        // sled's lock is per process file descriptor; a second open in-process reuses nothing.
        match SledStore::open(dir.path()) {
            Err(err @ StoreError::Locked { .. }) => {
                assert!(err.to_string().contains("in use by another"))
            }
            Err(other) => panic!("unexpected error: {other}"),
            Ok(_) => panic!("second open succeeded"),
        }
    }
}
