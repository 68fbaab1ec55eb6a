//! What the control plane knows about its data planes: who is connected (has a Subscribe stream
//! open), what each last reported, and the channels that push new revisions and commands to them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use nano_proto::v1::{Command, Isolate, Node, NodeStatus, TailApps, TailLine, command};
use tokio::sync::{broadcast, mpsc, watch};

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

/// Tail lines the control plane keeps per tailed app for tails that have not read them yet.
const TAIL_LINES: usize = 256;

/// Tailed apps: where their lines go, and how many tails read them.
type Tailed = BTreeMap<String, (broadcast::Sender<Arc<TailLine>>, usize)>;

/// The fleet registry and its push channels.
pub struct Fleet {
    nodes: Mutex<BTreeMap<String, Entry>>,
    revision: watch::Sender<u64>,
    commands: broadcast::Sender<Command>,
    /// Apps someone tails now: their lines from the nodes, and how many tails read them.
    tails: Mutex<Tailed>,
    /// Replicas on a shared store: the apps the other replicas tail (their lines from the
    /// nodes here go to `relay`), and the apps tailed here (for the store to publish).
    remote_tails: Mutex<BTreeSet<String>>,
    relay: Mutex<Option<mpsc::Sender<TailLine>>>,
    tailed_here: watch::Sender<BTreeSet<String>>,
}

/// One open `Control.Tail`; the app stops being tailed when its last one is dropped.
pub struct TailSubscription<'a> {
    fleet: &'a Fleet,
    hostname: String,
    pub lines: broadcast::Receiver<Arc<TailLine>>,
}

impl Drop for TailSubscription<'_> {
    fn drop(&mut self) {
        let mut tails = self.fleet.lock_tails();
        let last = tails.get_mut(&self.hostname).is_some_and(|(_, count)| {
            *count -= 1;
            *count == 0
        });
        if last {
            tails.remove(&self.hostname);
            drop(tails);
            self.fleet.send_tail_set();
        }
    }
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
            tails: Mutex::default(),
            remote_tails: Mutex::default(),
            relay: Mutex::default(),
            tailed_here: watch::Sender::new(BTreeSet::new()),
        }
    }

    /// Replicas: where lines from the nodes here go when another replica tails their app.
    pub fn relay_to(&self, relay: mpsc::Sender<TailLine>) {
        *self.relay.lock().unwrap_or_else(|p| p.into_inner()) = Some(relay);
    }

    /// The apps tailed here, as they change (for the shared store).
    pub fn tailed_here(&self) -> watch::Receiver<BTreeSet<String>> {
        self.tailed_here.subscribe()
    }

    /// Replicas: the apps the other replicas tail now. The nodes here are told to send their
    /// events too.
    pub fn set_remote_tails(&self, hostnames: BTreeSet<String>) {
        let mut remote = self.remote_tails.lock().unwrap_or_else(|p| p.into_inner());
        if *remote == hostnames {
            return;
        }
        *remote = hostnames;
        drop(remote);
        self.send_tail_set();
    }

    /// A tail line another replica relayed: for the tails here only.
    pub fn deliver_tail(&self, line: TailLine) {
        if let Some((sender, _)) = self.lock_tails().get(&line.hostname) {
            let _ = sender.send(Arc::new(line));
        }
    }

    fn lock_tails(&self) -> std::sync::MutexGuard<'_, Tailed> {
        self.tails.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a tail of `hostname`; the nodes are told to send its events if nobody tailed it.
    pub fn tail(&self, hostname: &str) -> TailSubscription<'_> {
        let mut tails = self.lock_tails();
        let first = !tails.contains_key(hostname);
        let (sender, count) = tails
            .entry(hostname.to_owned())
            .or_insert_with(|| (broadcast::Sender::new(TAIL_LINES), 0));
        *count += 1;
        let lines = sender.subscribe();
        if first {
            drop(tails);
            self.send_tail_set();
        }
        TailSubscription {
            fleet: self,
            hostname: hostname.to_owned(),
            lines,
        }
    }

    /// The apps tailed here or (replicas) by another replica.
    fn tailed(&self) -> Vec<String> {
        let mut all: BTreeSet<String> = self.lock_tails().keys().cloned().collect();
        all.extend(
            self.remote_tails
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned(),
        );
        all.into_iter().collect()
    }

    /// The apps tailed now, as the command that tells a node so.
    pub fn tail_command(&self) -> Command {
        Command {
            kind: Some(command::Kind::Tail(TailApps {
                hostnames: self.tailed(),
            })),
            node_id: String::new(),
        }
    }

    fn send_tail_set(&self) {
        let here: BTreeSet<String> = self.lock_tails().keys().cloned().collect();
        self.tailed_here.send_if_modified(|current| {
            let changed = *current != here;
            *current = here;
            changed
        });
        let hostnames = self.tailed();
        tracing::info!(tailed = ?hostnames, "tailed apps changed");
        let _ = self.commands.send(Command {
            kind: Some(command::Kind::Tail(TailApps { hostnames })),
            node_id: String::new(),
        });
    }

    /// A tail line from a node, for the tails of its app here, and (replicas) relayed to the
    /// others if they tail it. Dropped if nobody tails it now, or the relay is full.
    pub fn push_tail(&self, line: TailLine) {
        let remote = self
            .remote_tails
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&line.hostname);
        if remote && let Some(relay) = &*self.relay.lock().unwrap_or_else(|p| p.into_inner()) {
            let _ = relay.try_send(line.clone());
        }
        self.deliver_tail(line);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells every subscriber that the store moved to `revision` (never backwards: a replica
    /// may hear an older revision from etcd after its own newer one).
    pub fn publish(&self, revision: u64) {
        self.revision.send_if_modified(|current| {
            let newer = revision > *current;
            if newer {
                *current = revision;
            }
            newer
        });
    }

    /// Passes a command (from another replica) to the subscribers here.
    pub fn deliver(&self, command: Command) {
        let _ = self.commands.send(command);
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

    /// Records a status report; returns the node as it now stands and its isolates (for the
    /// store).
    pub fn report(&self, status: NodeStatus) -> (Node, Vec<Isolate>) {
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
        (entry.node.clone(), entry.isolates.clone())
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
