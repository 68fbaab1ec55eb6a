//! The NANO control plane as a library: [`open`] opens the store (sled, or etcd shared with
//! other replicas), [`run`] serves gRPC (Control, Fleet, health) and the `/_admin` HTTP surface
//! until a cancellation token fires, then flushes the store. `main.rs` only parses flags and
//! maps errors to exit codes.

pub mod admin;
pub mod fleet;
pub mod grpc;
pub mod metrics;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use grpc::Tls;
use nano_proto::v1::{Command, Isolate, Node};
use store::{ClusterEvent, Store, StoreError};

/// Everything the services share.
pub struct Plane {
    pub store: Box<dyn Store>,
    pub fleet: fleet::Fleet,
    pub metrics: metrics::Metrics,
    pub operator_token: String,
    pub node_token: String,
    pub started: Instant,
    pub stopping: AtomicBool,
    /// Why the store last failed its health check (None: it answers).
    pub store_error: std::sync::Mutex<Option<String>>,
}

/// Where the control plane keeps its state.
pub enum Backend {
    /// sled in a directory: one process.
    Sled(PathBuf),
    /// etcd: any number of replicas on the same prefix.
    Etcd(store::etcd::EtcdOptions),
}

/// How to run a control plane.
pub struct Options {
    pub backend: Backend,
    pub operator_token: String,
    pub node_token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
}

/// Opens the store (failing fast if another process holds a sled dir, or etcd is unreachable).
/// Call it outside an async runtime.
pub fn open(options: &Options) -> Result<Arc<Plane>, StoreError> {
    let store: Box<dyn Store> = match &options.backend {
        Backend::Sled(dir) => Box::new(store::sled::SledStore::open(dir)?),
        Backend::Etcd(etcd) => Box::new(store::etcd::EtcdStore::connect(etcd.clone())?),
    };
    tracing::info!(store = %store.describe(), store_id = store.store_id(), "store open");
    let fleet = fleet::Fleet::new(store.revision()?, store.nodes()?);
    Ok(Arc::new(Plane {
        store,
        fleet,
        metrics: metrics::Metrics::new(),
        operator_token: options.operator_token.clone(),
        node_token: options.node_token.clone(),
        started: Instant::now(),
        stopping: AtomicBool::new(false),
        store_error: std::sync::Mutex::new(None),
    }))
}

impl Plane {
    /// Every node known, connected or not: from the store when it is shared by replicas (a
    /// node is connected while some replica's lease holds its record), else from this
    /// process's registry. Blocks.
    pub fn nodes(&self) -> Result<Vec<Node>, StoreError> {
        let Some(live) = self.store.live_nodes()? else {
            return Ok(self.fleet.nodes());
        };
        let mut nodes: std::collections::BTreeMap<String, Node> = self
            .store
            .nodes()?
            .into_iter()
            .map(|mut node| {
                node.connected = false;
                (node.node_id.clone(), node)
            })
            .collect();
        for (mut node, isolates) in live {
            node.connected = true;
            node.isolates = isolates.len() as u32;
            nodes.insert(node.node_id.clone(), node);
        }
        Ok(nodes.into_values().collect())
    }

    /// Isolates of connected nodes, optionally of one app (whole fleet, as [`Plane::nodes`]).
    pub fn isolates(&self, hostname: Option<&str>) -> Result<Vec<Isolate>, StoreError> {
        let Some(live) = self.store.live_nodes()? else {
            return Ok(self.fleet.isolates(hostname));
        };
        Ok(live
            .into_iter()
            .flat_map(|(node, isolates)| {
                isolates.into_iter().map(move |mut i| {
                    i.node_id = node.node_id.clone();
                    i
                })
            })
            .filter(|i| hostname.is_none_or(|h| i.hostname == h))
            .collect())
    }

    /// Whether a node has ever connected (to any replica).
    pub fn knows(&self, node_id: &str) -> Result<bool, StoreError> {
        if self.fleet.knows(node_id) {
            return Ok(true);
        }
        Ok(self.store.nodes()?.iter().any(|n| n.node_id == node_id))
    }

    /// Sends a command to the connected nodes it is for, whichever replica they are on;
    /// returns their ids. Blocks.
    pub fn command(&self, command: Command) -> Result<Vec<String>, StoreError> {
        if !self.store.shared() {
            return Ok(self.fleet.command(command));
        }
        let targets = self
            .nodes()?
            .into_iter()
            .filter(|n| n.connected)
            .filter(|n| command.node_id.is_empty() || n.node_id == command.node_id)
            .map(|n| n.node_id)
            .collect();
        self.store.broadcast(&command)?;
        Ok(targets)
    }
}

/// Tail lines a replica buffers for the others; past them lines are dropped.
const RELAY_LINES: usize = 1024;

/// Most lines, and bytes of events, in one relayed batch (one etcd write).
const RELAY_BATCH: (usize, usize) = (256, 512 * 1024);

/// How long the relay gathers lines before it writes a batch: at most ten writes a second per
/// replica while another one tails its nodes' apps.
const RELAY_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Replicas: records the apps tailed here in the store, and relays the lines the others want.
fn relay_tails(plane: &Arc<Plane>) {
    let (relay, mut lines) = tokio::sync::mpsc::channel(RELAY_LINES);
    plane.fleet.relay_to(relay);
    let mut tailed = plane.fleet.tailed_here();
    let store = plane.clone();
    tokio::spawn(async move {
        while tailed.changed().await.is_ok() {
            let rates = tailed.borrow_and_update().clone();
            let store = store.clone();
            let recorded =
                tokio::task::spawn_blocking(move || store.store.set_tailed(&rates)).await;
            if let Ok(Err(err)) = recorded {
                tracing::warn!(error = %err, "cannot record the apps tailed here in the store");
            }
        }
    });
    let store = plane.clone();
    tokio::spawn(async move {
        while let Some(first) = lines.recv().await {
            let mut batch = vec![first];
            let mut bytes = batch[0].event_json.len();
            let until = tokio::time::Instant::now() + RELAY_EVERY;
            while batch.len() < RELAY_BATCH.0 && bytes < RELAY_BATCH.1 {
                match tokio::time::timeout_at(until, lines.recv()).await {
                    Ok(Some(line)) => {
                        bytes += line.event_json.len();
                        batch.push(line);
                    }
                    _ => break,
                }
            }
            let store = store.clone();
            let relayed = tokio::task::spawn_blocking(move || store.store.relay_tail(batch)).await;
            if let Ok(Err(err)) = relayed {
                tracing::warn!(error = %err, "cannot relay tail lines to the other replicas");
            }
        }
    });
}

/// Passes what other replicas do (through a shared store) to this one's subscribers.
fn follow_cluster(plane: &Arc<Plane>) {
    let Some(mut events) = plane.store.events() else {
        return;
    };
    relay_tails(plane);
    let plane = plane.clone();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(ClusterEvent::Revision(revision)) => plane.fleet.publish(revision),
                Ok(ClusterEvent::Command(command)) => plane.fleet.deliver(command),
                Ok(ClusterEvent::Tailed(rates)) => plane.fleet.set_remote_tails(rates),
                Ok(ClusterEvent::TailLines(lines)) => {
                    for line in lines {
                        plane.fleet.deliver_tail(line);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Missed revisions: the subscribers reread the whole state anyway.
                    let store = plane.clone();
                    if let Ok(Ok(revision)) =
                        tokio::task::spawn_blocking(move || store.store.revision()).await
                    {
                        plane.fleet.publish(revision);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Serves `plane` until `shutdown` fires, then flushes the store.
pub async fn run(
    plane: Arc<Plane>,
    tls: Option<Tls>,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    if let Ok(addr) = grpc_listener.local_addr() {
        let store = plane.clone();
        let revision = tokio::task::spawn_blocking(move || store.store.revision())
            .await
            .unwrap_or(Ok(0))?;
        tracing::info!(grpc_addr = %addr, tls = tls.is_some(), revision, "grpc listening");
    }
    follow_cluster(&plane);
    if let Ok(addr) = http_listener.local_addr() {
        tracing::info!(http_addr = %addr, "admin listening");
    }
    let admin_stop = CancellationToken::new();
    let admin = tokio::spawn(admin::serve(
        plane.clone(),
        http_listener,
        admin_stop.clone(),
    ));
    {
        let plane = plane.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            plane.stopping.store(true, Ordering::Relaxed);
        });
    }
    let served = grpc::serve(plane.clone(), grpc_listener, tls, shutdown).await;
    admin_stop.cancel();
    let _ = admin.await;
    let flushed = tokio::task::spawn_blocking(move || plane.store.flush())
        .await
        .unwrap_or(Ok(()));
    served?;
    flushed?;
    tracing::info!("stopped");
    Ok(())
}
