//! What a fleet member knows and does with it: the desired state from the control plane's
//! updates (stale revisions ignored, commands taken), the downloads a revision needs, publishing
//! it to the reconciler and recording its outcome (the last good state, kept on disk).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::AtomicBool;

use nano_proto::v1::{FleetUpdate, command, fleet_update};
use tokio::sync::{mpsc, watch};

use super::client::{Client, FleetOptions, SyncError, download};
use super::state::{self, FleetApp, LastGood};
use crate::job::NodeCommand;
use crate::metrics::METRICS;
use crate::reload::{FleetApps, Serving};

/// A fleet member: its options and what it knows.
pub struct Member {
    pub(super) options: FleetOptions,
    /// What serves now (persisted after every activation).
    pub(super) last_good: LastGood,
    /// What the control plane wants, and at which revision.
    pub(super) desired: BTreeMap<String, FleetApp>,
    pub(super) desired_revision: u64,
    pub(super) store_id: String,
    /// The desired state is not active yet (a download or an activation failed): retried.
    pub(super) pending: bool,
    /// The last revision that could not be activated, and why.
    pub(super) failure: Option<(u64, String)>,
    /// Apps whose wanted version failed to load: (wanted version, reason).
    pub(super) app_errors: BTreeMap<String, (u64, String)>,
    /// What was published to the reconciler and has no outcome yet.
    pub(super) awaiting: Option<Published>,
    /// Slivers verified on disk by this process.
    pub(super) verified: HashSet<String>,
    /// Held for the process's life: one node per cache dir.
    _lock: std::fs::File,
}

/// A revision handed to the reconciler: its store, number and apps.
pub(super) struct Published {
    store_id: String,
    revision: u64,
    apps: BTreeMap<String, FleetApp>,
}

impl Member {
    /// Opens the cache dir and the last good state in it. Slivers that are missing or fail
    /// verification are dropped from it (and fetched again once the control plane answers).
    pub fn open(options: FleetOptions) -> Result<Self, SyncError> {
        let slivers = options.cache_dir.join("slivers");
        std::fs::create_dir_all(&slivers).map_err(|source| SyncError::CacheDir {
            dir: options.cache_dir.clone(),
            source,
        })?;
        let lock = state::lock_dir(&options.cache_dir).map_err(|source| {
            if source.kind() == std::io::ErrorKind::WouldBlock {
                SyncError::CacheDirInUse {
                    dir: options.cache_dir.clone(),
                }
            } else {
                SyncError::CacheDir {
                    dir: options.cache_dir.clone(),
                    source,
                }
            }
        })?;
        let mut last_good = LastGood::load(&options.cache_dir);
        let mut verified = HashSet::new();
        last_good.apps.retain(|host, app| {
            match state::verify_file(
                &state::sliver_path(&options.cache_dir, &app.sliver_id),
                &app.sliver_id,
            ) {
                Ok(()) => {
                    verified.insert(app.sliver_id.clone());
                    true
                }
                Err(why) => {
                    tracing::error!(
                        hostname = %host, sliver = %app.sliver_id, error = %why,
                        "a cached sliver is damaged; the app waits for the control plane"
                    );
                    false
                }
            }
        });
        if !last_good.apps.is_empty() {
            tracing::info!(
                apps = last_good.apps.len(),
                revision = last_good.revision,
                "serving the last good fleet state until the control plane answers"
            );
        }
        METRICS
            .fleet_revision
            .set(i64::try_from(last_good.revision).unwrap_or(i64::MAX));
        Ok(Self {
            desired: last_good.apps.clone(),
            desired_revision: last_good.revision,
            store_id: last_good.store_id.clone(),
            last_good,
            options,
            pending: false,
            failure: None,
            app_errors: BTreeMap::new(),
            awaiting: None,
            verified,
            _lock: lock,
        })
    }

    pub fn node_id(&self) -> &str {
        &self.options.node_id
    }

    /// Whether the control plane took this node out of rotation.
    pub fn drained(&self) -> bool {
        self.last_good.drained
    }

    /// The last good state's apps, as config apps: what the node serves until the control
    /// plane answers.
    pub fn initial(&self) -> FleetApps {
        FleetApps {
            revision: self.last_good.revision,
            apps: self
                .last_good
                .apps
                .values()
                .filter_map(|app| app.to_config(&self.options.cache_dir).ok())
                .collect(),
        }
    }

    /// Takes in an update; returns whether the desired state changed.
    pub(super) fn take(
        &mut self,
        update: FleetUpdate,
        evicts: &mpsc::UnboundedSender<NodeCommand>,
        drained: &AtomicBool,
    ) -> bool {
        let new_store = update.store_id != self.store_id;
        match update.kind {
            Some(fleet_update::Kind::Command(command)) => {
                if !command.node_id.is_empty() && command.node_id != self.options.node_id {
                    return false;
                }
                if let Some(command::Kind::Drain(drain)) = &command.kind
                    && drain.drain != self.last_good.drained
                {
                    tracing::info!(
                        drain = drain.drain,
                        "drain set by the control plane; readiness follows"
                    );
                    drained.store(drain.drain, std::sync::atomic::Ordering::Release);
                    self.last_good.drained = drain.drain;
                    if drain.drain {
                        let _ = evicts.send(NodeCommand::CloseSockets);
                    }
                    if let Err(err) = self.last_good.save(&self.options.cache_dir) {
                        tracing::warn!(error = %err, "cannot persist the drain state");
                    }
                }
                if let Some(command::Kind::Evict(evict)) = command.kind {
                    let _ = evicts.send(NodeCommand::Evict(evict.hostname));
                }
                false
            }
            Some(fleet_update::Kind::Full(full)) => {
                if !new_store && update.revision < self.desired_revision {
                    tracing::warn!(
                        revision = update.revision,
                        current = self.desired_revision,
                        "ignoring an older revision from the control plane"
                    );
                    return false;
                }
                if new_store && !self.store_id.is_empty() {
                    tracing::warn!("the control plane's database changed; taking its state as is");
                }
                let desired: BTreeMap<String, FleetApp> = full
                    .apps
                    .into_iter()
                    .filter_map(FleetApp::from_proto)
                    .map(|a| (a.hostname.clone(), a))
                    .collect();
                let changed = desired != self.last_good.apps
                    || update.revision != self.last_good.revision
                    || new_store;
                self.desired = desired;
                self.desired_revision = update.revision;
                self.store_id = update.store_id;
                self.pending |= changed;
                changed
            }
            Some(fleet_update::Kind::Delta(delta)) => {
                if new_store || update.revision <= self.desired_revision {
                    tracing::warn!(
                        revision = update.revision,
                        current = self.desired_revision,
                        "ignoring an out-of-order revision from the control plane"
                    );
                    return false;
                }
                for app in delta.upserts.into_iter().filter_map(FleetApp::from_proto) {
                    self.desired.insert(app.hostname.clone(), app);
                }
                for host in delta.removed {
                    self.desired.remove(&host);
                }
                self.desired_revision = update.revision;
                self.pending = true;
                true
            }
            None => false,
        }
    }

    /// Downloads what the desired state lacks, then publishes it to the reconciler; its
    /// outcome comes back through [`Member::activated`]. On failure the current state keeps
    /// serving and the failure is reported.
    pub(super) async fn activate(
        &mut self,
        client: &mut Client,
        fleet: &watch::Sender<Option<FleetApps>>,
    ) -> Result<(), SyncError> {
        let revision = self.desired_revision;
        let result = self.download_and_publish(client, fleet).await;
        if let Err(err) = &result {
            METRICS
                .fleet_activations
                .with_label_values(&["failed"])
                .inc();
            tracing::error!(
                revision, error = %err,
                "cannot activate the control plane's revision; the current state keeps serving"
            );
            self.failure = Some((revision, err.to_string()));
        }
        result
    }

    async fn download_and_publish(
        &mut self,
        client: &mut Client,
        fleet: &watch::Sender<Option<FleetApps>>,
    ) -> Result<(), SyncError> {
        let dir = self.options.cache_dir.clone();
        let wanted: Vec<String> = self
            .desired
            .values()
            .map(|a| a.sliver_id.clone())
            .filter(|id| !self.verified.contains(id))
            .collect();
        for id in wanted {
            let path = state::sliver_path(&dir, &id);
            if state::verify_file(&path, &id).is_err() {
                let sliver = download(client, &id).await?;
                let write = {
                    let path = path.clone();
                    tokio::task::spawn_blocking(move || {
                        crate::isolate::prepare::write_atomically(&path, sliver.bytes())
                    })
                };
                write
                    .await
                    .expect("writing a file does not panic")
                    .map_err(|source| SyncError::CacheDir {
                        dir: dir.clone(),
                        source,
                    })?;
            }
            self.verified.insert(id);
        }
        let mut apps = Vec::new();
        for app in self.desired.values() {
            apps.push(app.to_config(&dir).map_err(|why| SyncError::Sliver {
                id: app.sliver_id.clone(),
                why,
            })?);
        }
        self.awaiting = Some(Published {
            store_id: self.store_id.clone(),
            revision: self.desired_revision,
            apps: self.desired.clone(),
        });
        fleet.send_replace(Some(FleetApps {
            revision: self.desired_revision,
            apps,
        }));
        Ok(())
    }

    /// Takes in what the reconciler serves: once it has applied the revision published last,
    /// records what serves (an app whose new version failed keeps its previous one), persists
    /// it, and reports it from then on.
    pub(super) async fn activated(&mut self, serving: &Serving) {
        // What it serves now is the published revision's apps: the desired state may have moved
        // on since (a newer revision whose download failed is still pending).
        let Some(published) = self.awaiting.take_if(|published| {
            serving
                .fleet_revision
                .is_some_and(|applied| applied >= published.revision)
        }) else {
            return;
        };
        let revision = published.revision;
        let summary = &serving.summary;
        let dir = self.options.cache_dir.clone();
        let failed: BTreeMap<&String, &String> =
            summary.failed.iter().map(|(h, e)| (h, e)).collect();
        self.app_errors.clear();
        let mut now_serving = BTreeMap::new();
        for (host, app) in &published.apps {
            match failed.get(host) {
                Some(error) => {
                    self.app_errors
                        .insert(host.clone(), (app.version, (*error).clone()));
                    if summary.kept_previous.contains(host)
                        && let Some(previous) = self.last_good.apps.get(host)
                    {
                        now_serving.insert(host.clone(), previous.clone());
                    }
                }
                None => {
                    now_serving.insert(host.clone(), app.clone());
                }
            }
        }
        let drained = self.last_good.drained;
        let previous = std::mem::replace(
            &mut self.last_good,
            LastGood {
                store_id: published.store_id,
                revision,
                apps: now_serving,
                drained,
            },
        );
        // Kept on disk: what serves, what is wanted, and what served before (a rollback then
        // needs no download). Everything else goes, and is no longer known as verified.
        let keep: HashSet<String> = self
            .last_good
            .apps
            .values()
            .chain(self.desired.values())
            .chain(previous.apps.values())
            .map(|a| a.sliver_id.clone())
            .collect();
        self.verified.retain(|id| keep.contains(id));
        let last_good = self.last_good.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let saved = last_good.save(&dir);
            state::prune_slivers(&dir, &keep);
            saved
        })
        .await
        .expect("saving state does not panic");
        if let Err(err) = saved {
            tracing::warn!(error = %err, "cannot persist the fleet state; a restart will wait for the control plane");
        }
        if revision == self.desired_revision {
            self.failure = None;
            self.pending = false;
        }
        METRICS
            .fleet_revision
            .set(i64::try_from(self.last_good.revision).unwrap_or(i64::MAX));
        METRICS.fleet_activations.with_label_values(&["ok"]).inc();
        tracing::info!(
            revision,
            apps = published.apps.len(),
            failed = self.app_errors.len(),
            "fleet revision activated"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nano_proto::v1::{App, Delta, FullState};

    fn member(dir: &std::path::Path) -> Member {
        Member::open(FleetOptions {
            urls: vec!["http://127.0.0.1:1".into()],
            token: "t".into(),
            node_id: "n1".into(),
            cache_dir: dir.to_owned(),
            ca_cert: None,
        })
        .unwrap()
    }

    fn app(host: &str, version: u64) -> App {
        App {
            sliver_id: format!("{version:064x}"),
            ..App::named(host, version)
        }
    }

    fn full(store: &str, revision: u64, apps: Vec<App>) -> FleetUpdate {
        FleetUpdate {
            revision,
            store_id: store.into(),
            kind: Some(fleet_update::Kind::Full(FullState { apps })),
        }
    }

    fn delta(store: &str, revision: u64, upserts: Vec<App>, removed: &[&str]) -> FleetUpdate {
        FleetUpdate {
            revision,
            store_id: store.into(),
            kind: Some(fleet_update::Kind::Delta(Delta {
                upserts,
                removed: removed.iter().map(|s| s.to_string()).collect(),
            })),
        }
    }

    #[test]
    fn one_node_per_cache_dir() {
        let dir = tempfile::tempdir().unwrap();
        let _first = member(dir.path());
        let options = FleetOptions {
            urls: vec!["http://127.0.0.1:1".into()],
            token: "t".into(),
            node_id: "n2".into(),
            cache_dir: dir.path().to_owned(),
            ca_cert: None,
        };
        let err = Member::open(options)
            .err()
            .expect("a second member is refused");
        assert!(err.to_string().contains("in use by another nano"), "{err}");
    }

    #[test]
    fn stale_and_out_of_order_revisions_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = member(dir.path());
        let (routing, _evicted) = mpsc::unbounded_channel::<NodeCommand>();
        let drained = AtomicBool::new(false);
        assert!(m.take(full("s1", 5, vec![app("a", 1)]), &routing, &drained));
        assert_eq!(m.desired_revision, 5);
        // A delta at or below the current revision, or from another store, changes nothing.
        assert!(!m.take(delta("s1", 5, vec![app("b", 1)], &[]), &routing, &drained));
        assert!(!m.take(delta("s1", 3, vec![app("b", 1)], &[]), &routing, &drained));
        assert!(!m.take(delta("s2", 9, vec![app("b", 1)], &[]), &routing, &drained));
        assert!(!m.desired.contains_key("b"));
        // An older full state from the same store is ignored too.
        assert!(!m.take(full("s1", 4, vec![]), &routing, &drained));
        assert!(m.desired.contains_key("a"));
        // In order: applied.
        assert!(m.take(
            delta("s1", 6, vec![app("b", 1)], &["a"]),
            &routing,
            &drained
        ));
        assert_eq!(m.desired.keys().collect::<Vec<_>>(), vec!["b"]);
        // A different store (a new database) is taken as it is, whatever its revision.
        assert!(m.take(full("s2", 1, vec![app("c", 7)]), &routing, &drained));
        assert_eq!(m.desired_revision, 1);
        assert_eq!(m.desired.keys().collect::<Vec<_>>(), vec!["c"]);
    }

    #[test]
    fn drain_commands_for_other_nodes_are_ignored_and_drains_persist() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = member(dir.path());
        let (routing, mut commands) = mpsc::unbounded_channel::<NodeCommand>();
        let drained = AtomicBool::new(false);
        let drain = |node: &str, on: bool| FleetUpdate {
            revision: 0,
            store_id: String::new(),
            kind: Some(fleet_update::Kind::Command(nano_proto::v1::Command {
                kind: Some(command::Kind::Drain(nano_proto::v1::DrainNode {
                    drain: on,
                })),
                node_id: node.into(),
            })),
        };
        m.take(drain("n2", true), &routing, &drained);
        assert!(!drained.load(std::sync::atomic::Ordering::Acquire));
        assert!(commands.try_recv().is_err());
        m.take(drain("n1", true), &routing, &drained);
        assert!(drained.load(std::sync::atomic::Ordering::Acquire));
        // The node's WebSockets go, so their clients reconnect to a node in rotation.
        assert_eq!(commands.try_recv(), Ok(NodeCommand::CloseSockets));
        drop(m);
        assert!(member(dir.path()).drained(), "kept across a restart");
    }

    /// The outcome of a published revision records that revision's apps, even when a newer one
    /// arrived meanwhile and could not be published (its download failed): that one stays
    /// pending.
    #[test]
    fn an_outcome_records_what_was_published_not_what_is_wanted_since() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = member(dir.path());
        let (evicts, _evicted) = mpsc::unbounded_channel::<NodeCommand>();
        let drained = AtomicBool::new(false);
        assert!(m.take(full("s1", 5, vec![app("a", 1)]), &evicts, &drained));
        m.awaiting = Some(Published {
            store_id: m.store_id.clone(),
            revision: 5,
            apps: m.desired.clone(),
        });
        assert!(m.take(full("s1", 6, vec![app("b", 2)]), &evicts, &drained));
        let serving = Serving {
            fleet_revision: Some(5),
            ..Default::default()
        };
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(m.activated(&serving));
        assert!(m.awaiting.is_none());
        assert_eq!(m.last_good.revision, 5);
        assert_eq!(m.last_good.apps.keys().collect::<Vec<_>>(), vec!["a"]);
        assert!(m.pending, "revision 6 is still to activate");
    }
}
