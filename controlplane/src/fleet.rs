//! What the control plane knows about its data planes: who is connected (has a Subscribe stream
//! open), what each last reported, and the channels that push new revisions and commands to them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use nano_proto::v1::{Command, Isolate, Node, NodeStatus};
use tokio::sync::{broadcast, watch};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Default)]
struct Entry {
    node: Node,
    isolates: Vec<Isolate>,
    streams: u32,
}

/// The fleet registry and its push channels.
pub struct Fleet {
    nodes: Mutex<BTreeMap<String, Entry>>,
    revision: watch::Sender<u64>,
    commands: broadcast::Sender<Command>,
}

/// Held while a node's Subscribe stream is open; marks it disconnected when dropped.
pub struct Connection<'a> {
    fleet: &'a Fleet,
    node_id: String,
}

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        let mut nodes = self.fleet.lock();
        if let Some(entry) = nodes.get_mut(&self.node_id) {
            entry.streams = entry.streams.saturating_sub(1);
            entry.node.connected = entry.streams > 0;
            entry.node.last_seen_ms = now_ms();
        }
        tracing::info!(node_id = %self.node_id, "node disconnected");
    }
}

impl Fleet {
    /// A registry that starts from the nodes recorded in the store (all disconnected).
    pub fn new(revision: u64, known: Vec<Node>) -> Self {
        let nodes = known
            .into_iter()
            .map(|mut node| {
                node.connected = false;
                (
                    node.node_id.clone(),
                    Entry {
                        node,
                        ..Default::default()
                    },
                )
            })
            .collect();
        Self {
            nodes: Mutex::new(nodes),
            revision: watch::Sender::new(revision),
            commands: broadcast::Sender::new(64),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells every subscriber that the store moved to `revision`.
    pub fn publish(&self, revision: u64) {
        self.revision.send_replace(revision);
    }

    pub fn revisions(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    pub fn commands(&self) -> broadcast::Receiver<Command> {
        self.commands.subscribe()
    }

    /// Sends a command to the connected nodes it is for; returns their ids.
    pub fn command(&self, command: Command) -> Vec<String> {
        let targets = self
            .lock()
            .values()
            .filter(|e| e.node.connected)
            .filter(|e| command.node_id.is_empty() || e.node.node_id == command.node_id)
            .map(|e| e.node.node_id.clone())
            .collect();
        let _ = self.commands.send(command);
        targets
    }

    /// Whether a node has ever connected.
    pub fn knows(&self, node_id: &str) -> bool {
        self.lock().contains_key(node_id)
    }

    pub fn connect(
        &self,
        node_id: &str,
        address: Option<SocketAddr>,
        version: &str,
    ) -> Connection<'_> {
        let mut nodes = self.lock();
        let entry = nodes.entry(node_id.to_owned()).or_default();
        entry.streams += 1;
        entry.node.node_id = node_id.to_owned();
        entry.node.connected = true;
        entry.node.last_seen_ms = now_ms();
        entry.node.version = version.to_owned();
        if let Some(address) = address {
            entry.node.address = address.to_string();
        }
        tracing::info!(node_id, address = ?address, "node connected");
        Connection {
            fleet: self,
            node_id: node_id.to_owned(),
        }
    }

    /// Records a status report; returns the node as it now stands (for the store).
    pub fn report(&self, status: NodeStatus) -> Node {
        let mut nodes = self.lock();
        let entry = nodes.entry(status.node_id.clone()).or_default();
        entry.node.node_id = status.node_id.clone();
        entry.node.revision = status.revision;
        entry.node.apps = status.apps;
        entry.node.last_seen_ms = now_ms();
        entry.node.isolates = status.isolates.len() as u32;
        entry.node.drained = status.drained;
        if !status.version.is_empty() {
            entry.node.version = status.version;
        }
        entry.isolates = status
            .isolates
            .into_iter()
            .map(|mut i| {
                i.node_id = status.node_id.clone();
                i
            })
            .collect();
        entry.node.clone()
    }

    pub fn nodes(&self) -> Vec<Node> {
        self.lock().values().map(|e| e.node.clone()).collect()
    }

    /// Isolates of connected nodes, optionally of one app.
    pub fn isolates(&self, hostname: Option<&str>) -> Vec<Isolate> {
        self.lock()
            .values()
            .filter(|e| e.node.connected)
            .flat_map(|e| e.isolates.iter())
            .filter(|i| hostname.is_none_or(|h| i.hostname == h))
            .cloned()
            .collect()
    }
}
