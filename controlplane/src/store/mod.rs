//! The control plane's database, behind one interface ([`Store`]) with two backends:
//!
//! - [`sled::SledStore`] (`--data-dir`, the default): one process, one directory.
//! - [`etcd::EtcdStore`] (`--etcd-endpoints`): any number of replicas sharing an etcd prefix.
//!
//! What both promise: a deploy (owner check, new version, history, revision, deploy record) is
//! one atomic step, acknowledged only once durable; every kept version points at a stored, whole
//! sliver (slivers are written before the switch that refers to them); a crash at any point
//! leaves every app on a whole version; slivers no kept version refers to are collected. Records
//! are the protocol's own protobuf messages. Calls block: the async code runs them on blocking
//! threads (`spawn_blocking`), never on the runtime's workers.

pub mod etcd;
pub mod sled;

use nano_proto::v1::{App, AppSpec, Command, DeployResponse, Isolate, Node, TailLine};
use prost::Message;

/// Versions of an app kept for rollback (the current one included).
pub const HISTORY_KEPT: usize = 10;

/// How long a deploy id is remembered (a client retries within seconds).
pub const DEPLOY_IDS_KEPT_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the data dir {dir} is in use by another nano-controlplane process; stop it, or give this \
         one its own --data-dir"
    )]
    Locked { dir: std::path::PathBuf },
    #[error("cannot open the data dir {dir}: {source}")]
    Open {
        dir: std::path::PathBuf,
        source: ::sled::Error,
    },
    #[error("the store failed: {0}")]
    Db(#[from] ::sled::Error),
    #[error(
        "etcd ({endpoints}) did not answer: {why}. Deploys and other changes wait for etcd to be \
         reachable and have quorum; the nodes keep serving their last state. Retry when etcd is back"
    )]
    Etcd { endpoints: String, why: String },
    #[error(
        "the deploy was retried {0} times against concurrent changes from other replicas and \
         still conflicted; retry it"
    )]
    Contended(u32),
    #[error(
        "storing this sliver ({bytes} bytes) would put the stored slivers at {total} bytes, over \
         --etcd-sliver-budget-mb ({budget} bytes, a share of etcd's database quota). Remove apps \
         or versions you no longer need (nanoctl rm), or raise etcd's --quota-backend-bytes and \
         the budget with it"
    )]
    OverBudget { bytes: u64, total: u64, budget: u64 },
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

/// A deploy, as the store takes it.
pub struct Deploy<'a> {
    pub spec: AppSpec,
    pub sliver_id: &'a str,
    pub sliver: &'a [u8],
    pub entry: &'a str,
    pub now_ms: i64,
    /// The client's id for this deploy (empty: none); see `DeployRequest.deploy_id`.
    pub deploy_id: &'a str,
}

/// What the fleet looks like from a shared store: a node connected to some replica, with what
/// it last reported.
pub type LiveNodes = Vec<(Node, Vec<Isolate>)>;

/// Apps tailed, each with the highest sample rate among its tails (0 to 1).
pub type TailRates = std::collections::BTreeMap<String, f64>;

/// What a replica hears from the others through a shared store.
#[derive(Clone, Debug)]
pub enum ClusterEvent {
    /// The cluster's revision moved (or, after a watch restarted, may have).
    Revision(u64),
    /// A command for the nodes connected to this replica.
    Command(Command),
    /// The apps other replicas tail now (their nodes' events are wanted there), with the
    /// highest sample rate among their tails there.
    Tailed(TailRates),
    /// Tail lines other replicas relayed, for the tails here.
    TailLines(Vec<TailLine>),
}

/// The store interface. Everything but the replication calls is required of both backends; the
/// replication calls default to "not shared" (one process: the fleet registry is local).
pub trait Store: Send + Sync {
    /// "sled at DIR" or "etcd at URLS under PREFIX", for logs and `/_admin/health`.
    fn describe(&self) -> String;

    /// Identifies the store (for etcd, the cluster: every replica answers the same id).
    /// Revisions are comparable only within one store.
    fn store_id(&self) -> &str;

    /// The config revision: bumped by every deploy, rollback and delete.
    fn revision(&self) -> Result<u64, StoreError>;

    /// Every app's current version.
    fn apps(&self) -> Result<Vec<App>, StoreError> {
        Ok(self.state()?.1)
    }

    /// The current version of `host`'s app.
    fn app(&self, host: &str) -> Result<Option<App>, StoreError>;

    /// The versions of `host` kept for rollback, oldest first.
    fn history(&self, host: &str) -> Result<Vec<App>, StoreError>;

    /// The apps and the revision read together (no write can come between).
    fn state(&self) -> Result<(u64, Vec<App>), StoreError>;

    /// A stored sliver's bytes, verified whole.
    fn sliver(&self, id: &str) -> Result<Option<bytes::Bytes>, StoreError>;

    /// Total bytes of stored slivers and their count.
    fn sliver_usage(&self) -> Result<(u64, u64), StoreError>;

    /// Makes a new version of `spec.hostname` from a verified sliver. Returns it with the new
    /// revision and the version that was current before (0: none), once all is durable. A
    /// deploy id already recorded returns the recorded answer and changes nothing.
    fn deploy(&self, deploy: Deploy<'_>) -> Result<DeployResponse, StoreError>;

    /// Makes `to` (or, with 0, the newest version older than the current one) current again.
    fn rollback(&self, host: &str, to: u64) -> Result<(App, u64), StoreError>;

    /// Removes `host`'s app and its history; returns the new revision.
    fn delete(&self, host: &str) -> Result<u64, StoreError>;

    /// Records what a node last reported (kept for `nanoctl nodes` after it leaves). A shared
    /// store also marks it connected here, under this replica's lease.
    fn put_node(&self, node: &Node, isolates: &[Isolate]) -> Result<(), StoreError>;

    /// A node's stream to this replica ended (shared stores: it is no longer connected here).
    fn node_left(&self, _node_id: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// Every node ever recorded, as last reported.
    fn nodes(&self) -> Result<Vec<Node>, StoreError>;

    /// Records whether an operator took `node_id` out of rotation; durable on return.
    fn set_drained(&self, node_id: &str, drained: bool) -> Result<(), StoreError>;

    /// Whether `node_id` is to be out of rotation.
    fn drained(&self, node_id: &str) -> Result<bool, StoreError>;

    /// Flushes everything to disk (on shutdown).
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether replicas share this store (the fleet view and commands then go through it).
    fn shared(&self) -> bool {
        false
    }

    /// Shared stores: the nodes connected to any replica, with their isolates. `None`: the
    /// store is not shared and the local registry is the whole fleet.
    fn live_nodes(&self) -> Result<Option<LiveNodes>, StoreError> {
        Ok(None)
    }

    /// Shared stores: sends `command` to every replica (this one included, through
    /// [`Store::events`]). Returns false when the store is not shared (deliver it locally).
    fn broadcast(&self, _command: &Command) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// Shared stores: what the other replicas do, as it happens.
    fn events(&self) -> Option<tokio::sync::broadcast::Receiver<ClusterEvent>> {
        None
    }

    /// Shared stores: records which apps this replica's tails follow (and the share of their
    /// requests they want), so the other replicas ask their nodes for those apps' events and
    /// relay them ([`Store::relay_tail`]).
    fn set_tailed(&self, _tailed: &TailRates) -> Result<(), StoreError> {
        Ok(())
    }

    /// Shared stores: passes tail lines from the nodes here to the replicas that tail their
    /// apps (they arrive there as [`ClusterEvent::TailLines`]).
    fn relay_tail(&self, _lines: Vec<TailLine>) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether the store can take writes now (etcd reachable with quorum).
    fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Decodes a stored record, or says which one is damaged.
pub(crate) fn decode<M: Message + Default>(key: &[u8], bytes: &[u8]) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|err| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).replace('\0', "/"),
        why: err.to_string(),
    })
}

/// A new store id: 32 random hex digits.
pub(crate) fn new_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|err| StoreError::Corrupt {
        key: "store_id".into(),
        why: err.to_string(),
    })?;
    Ok(hex::encode(bytes))
}

/// Whether `spec` may take `current`'s hostname: an app with a name owns its hostname.
pub(crate) fn check_owner(spec: &AppSpec, current: Option<&App>) -> Result<(), StoreError> {
    if let Some(owner) = current.and_then(|c| c.spec.as_ref()).map(|s| &s.name)
        && !owner.is_empty()
        && spec.name != *owner
    {
        return Err(StoreError::HostnameTaken {
            host: spec.hostname.clone(),
            owner: owner.clone(),
        });
    }
    Ok(())
}

/// The next version of an app and the kept versions it pushes out (never the current one).
pub(crate) fn next_version(history: &[App], current: Option<u64>) -> (u64, Vec<u64>) {
    let version = history.iter().map(|a| a.version).max().unwrap_or(0) + 1;
    let excess = (history.len() + 1).saturating_sub(HISTORY_KEPT);
    let pruned = history
        .iter()
        .map(|a| a.version)
        .filter(|v| Some(*v) != current)
        .take(excess)
        .collect();
    (version, pruned)
}

/// The version a rollback goes to.
pub(crate) fn rollback_target(
    host: &str,
    current: &App,
    history: &[App],
    to: u64,
) -> Result<App, StoreError> {
    if to == 0 {
        history
            .iter()
            .filter(|a| a.version < current.version)
            .max_by_key(|a| a.version)
            .cloned()
            .ok_or_else(|| StoreError::NoEarlierVersion(host.to_owned()))
    } else {
        history
            .iter()
            .find(|a| a.version == to)
            .cloned()
            .ok_or(StoreError::NoVersion {
                host: host.to_owned(),
                version: to,
            })
    }
}

/// The app a deploy makes.
pub(crate) fn new_app(deploy: &Deploy<'_>, version: u64) -> App {
    App {
        spec: Some(deploy.spec.clone()),
        version,
        sliver_id: deploy.sliver_id.to_owned(),
        sliver_bytes: deploy.sliver.len() as u64,
        deployed_at_ms: deploy.now_ms,
        entry: deploy.entry.to_owned(),
    }
}

/// Declares the store's contract tests for a backend: `$with` runs a test on a fresh store.
#[cfg(test)]
macro_rules! contract_tests {
    ($with:path) => {
        #[test]
        fn versions_rollback_delete_and_sliver_collection() {
            $with(super::super::contract::versions_rollback_delete_and_sliver_collection);
        }

        #[test]
        fn a_hostname_belongs_to_one_named_app() {
            $with(super::super::contract::a_hostname_belongs_to_one_named_app);
        }

        #[test]
        fn history_is_bounded_and_keeps_the_current_version() {
            $with(super::super::contract::history_is_bounded_and_keeps_the_current_version);
        }

        #[test]
        fn a_deploy_id_is_applied_once() {
            $with(super::super::contract::a_deploy_id_is_applied_once);
        }

        #[test]
        fn drains_and_nodes_are_recorded() {
            $with(super::super::contract::drains_and_nodes_are_recorded);
        }
    };
}
#[cfg(test)]
pub(crate) use contract_tests;

/// The store tests, run against every backend (`sled::tests`, `etcd::tests`).
#[cfg(test)]
pub(crate) mod contract {
    use super::*;

    fn spec(host: &str) -> AppSpec {
        AppSpec {
            hostname: host.into(),
            ..Default::default()
        }
    }

    /// A sliver's id: its hash (the etcd backend verifies it on read).
    fn sid(bytes: &[u8]) -> String {
        nano_sliver::sha256_hex(bytes)
    }

    fn deploy<'a>(spec: AppSpec, id: &'a str, bytes: &'a [u8], now_ms: i64) -> Deploy<'a> {
        Deploy {
            spec,
            sliver_id: id,
            sliver: bytes,
            entry: "a.js",
            now_ms,
            deploy_id: "",
        }
    }

    pub fn versions_rollback_delete_and_sliver_collection(store: &dyn Store) {
        let d1 = store
            .deploy(deploy(spec("a.test"), &sid(b"one"), b"one", 1))
            .unwrap();
        let d2 = store
            .deploy(deploy(spec("a.test"), &sid(b"two"), b"two", 2))
            .unwrap();
        let (v1, v2) = (d1.app.unwrap(), d2.app.unwrap());
        assert_eq!((v1.version, v2.version), (1, 2));
        assert!(d2.revision > d1.revision);
        assert_eq!(d2.previous_version, 1);
        assert_eq!(
            store.sliver(&sid(b"two")).unwrap().unwrap().as_ref(),
            b"two"
        );
        let (back, _) = store.rollback("a.test", 0).unwrap();
        assert_eq!(back.sliver_id, sid(b"one"));
        assert_eq!(store.app("a.test").unwrap().unwrap().version, 1);
        // The next deploy continues the numbering.
        let d3 = store
            .deploy(deploy(spec("a.test"), &sid(b"one"), b"one", 3))
            .unwrap();
        assert_eq!(d3.app.unwrap().version, 3);
        assert!(matches!(
            store.rollback("a.test", 9),
            Err(StoreError::NoVersion { version: 9, .. })
        ));
        let (revision, apps) = store.state().unwrap();
        assert_eq!((revision, apps.len()), (store.revision().unwrap(), 1));
        store.delete("a.test").unwrap();
        assert!(store.apps().unwrap().is_empty());
        assert_eq!(store.sliver_usage().unwrap(), (0, 0));
        assert!(store.sliver(&sid(b"one")).unwrap().is_none());
        assert!(matches!(store.delete("a.test"), Err(StoreError::NoApp(_))));
    }

    pub fn a_hostname_belongs_to_one_named_app(store: &dyn Store) {
        let named = |name: &str| AppSpec {
            hostname: "n.test".into(),
            name: name.into(),
            ..Default::default()
        };
        store
            .deploy(deploy(named("shop"), &sid(b"one"), b"one", 1))
            .unwrap();
        match store.deploy(deploy(named("blog"), &sid(b"two"), b"two", 2)) {
            Err(err @ StoreError::HostnameTaken { .. }) => {
                assert!(
                    err.to_string().contains("served by the app \"shop\""),
                    "{err}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            store.sliver_usage().unwrap().1,
            1,
            "nothing of the refused deploy is stored"
        );
        store
            .deploy(deploy(named("shop"), &sid(b"two"), b"two", 3))
            .unwrap();
    }

    pub fn history_is_bounded_and_keeps_the_current_version(store: &dyn Store) {
        for i in 0..(HISTORY_KEPT as i64 + 5) {
            let bytes = format!("s{i}");
            store
                .deploy(deploy(
                    spec("b.test"),
                    &sid(bytes.as_bytes()),
                    bytes.as_bytes(),
                    i,
                ))
                .unwrap();
        }
        let history = store.history("b.test").unwrap();
        assert_eq!(history.len(), HISTORY_KEPT);
        assert_eq!(store.sliver_usage().unwrap().1, HISTORY_KEPT as u64);
        assert_eq!(history.last().unwrap().version, HISTORY_KEPT as u64 + 5);
    }

    pub fn a_deploy_id_is_applied_once(store: &dyn Store) {
        let id = sid(b"one");
        let mut first = deploy(spec("c.test"), &id, b"one", 1);
        first.deploy_id = "0123456789abcdef";
        let once = store.deploy(first).unwrap();
        let mut again = deploy(spec("c.test"), &id, b"one", 2);
        again.deploy_id = "0123456789abcdef";
        let twice = store.deploy(again).unwrap();
        assert_eq!(once, twice, "the retry gets the first answer");
        assert_eq!(store.history("c.test").unwrap().len(), 1);
        assert_eq!(store.revision().unwrap(), once.revision);
    }

    pub fn drains_and_nodes_are_recorded(store: &dyn Store) {
        assert!(!store.drained("n1").unwrap());
        store.set_drained("n1", true).unwrap();
        assert!(store.drained("n1").unwrap());
        store.set_drained("n1", false).unwrap();
        assert!(!store.drained("n1").unwrap());
        let node = Node {
            node_id: "n1".into(),
            revision: 7,
            ..Default::default()
        };
        store.put_node(&node, &[]).unwrap();
        let nodes = store.nodes().unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].revision, 7);
    }
}
