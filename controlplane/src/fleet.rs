//! What the control plane knows about its data planes: who is connected (has a Subscribe stream
//! open), what each last reported, and the channels that push new revisions and commands to them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use nano_proto::v1::{Command, Isolate, Node, NodeStatus, TailApps, TailLine, command};
use tokio::sync::{broadcast, mpsc, watch};

use crate::store::TailRates;

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

/// An app someone tails here: where its lines go, and the sample rate of each of its tails.
struct TailedApp {
    lines: broadcast::Sender<Arc<TailLine>>,
    samples: Vec<f64>,
}

/// Tailed apps (and, as the nodes and the other replicas are told, the highest sample rate among
/// each app's tails).
type Tailed = BTreeMap<String, TailedApp>;

/// The highest sample rate among `samples`.
fn highest(samples: &[f64]) -> f64 {
    samples.iter().copied().fold(0.0, f64::max)
}

/// The fleet registry and its push channels.
pub struct Fleet {
    nodes: Mutex<BTreeMap<String, Entry>>,
    revision: watch::Sender<u64>,
    commands: broadcast::Sender<Command>,
    /// Apps someone tails now: their lines from the nodes, and each tail's sample rate.
    tails: Mutex<Tailed>,
    /// Replicas on a shared store: the apps the other replicas tail (their lines from the
    /// nodes here go to `relay`), and the apps tailed here (for the store to publish).
    remote_tails: Mutex<TailRates>,
    relay: Mutex<Option<mpsc::Sender<TailLine>>>,
    tailed_here: watch::Sender<TailRates>,
}

/// One open `Control.Tail`; the app stops being tailed when its last one is dropped.
pub struct TailSubscription<'a> {
    fleet: &'a Fleet,
    hostname: String,
    sample: f64,
    pub lines: broadcast::Receiver<Arc<TailLine>>,
}

impl Drop for TailSubscription<'_> {
    fn drop(&mut self) {
        let mut tails = self.fleet.lock_tails();
        let Some(app) = tails.get_mut(&self.hostname) else {
            return;
        };
        let before = highest(&app.samples);
        if let Some(at) = app.samples.iter().position(|s| *s == self.sample) {
            app.samples.swap_remove(at);
        }
        let last = app.samples.is_empty();
        let lowered = highest(&app.samples) != before;
        if last {
            tails.remove(&self.hostname);
        }
        drop(tails);
        if last || lowered {
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
            tailed_here: watch::Sender::new(TailRates::new()),
        }
    }

    /// Replicas: where lines from the nodes here go when another replica tails their app.
    pub fn relay_to(&self, relay: mpsc::Sender<TailLine>) {
        *self.relay.lock().unwrap_or_else(|p| p.into_inner()) = Some(relay);
    }

    /// The apps tailed here, as they change (for the shared store).
    pub fn tailed_here(&self) -> watch::Receiver<TailRates> {
        self.tailed_here.subscribe()
    }

    /// Replicas: the apps the other replicas tail now (with their highest sample rates). The
    /// nodes here are told to send their events too.
    pub fn set_remote_tails(&self, tailed: TailRates) {
        let mut remote = self.remote_tails.lock().unwrap_or_else(|p| p.into_inner());
        if *remote == tailed {
            return;
        }
        *remote = tailed;
        drop(remote);
        self.send_tail_set();
    }

    /// A tail line another replica relayed: for the tails here only.
    pub fn deliver_tail(&self, line: TailLine) {
        if let Some(app) = self.lock_tails().get(&line.hostname) {
            let _ = app.lines.send(Arc::new(line));
        }
    }

    fn lock_tails(&self) -> std::sync::MutexGuard<'_, Tailed> {
        self.tails.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a tail of `hostname` for `sample` of its requests; the nodes are told to send
    /// its events if nobody tailed it, or more of them if this tail wants more.
    pub fn tail(&self, hostname: &str, sample: f64) -> TailSubscription<'_> {
        let mut tails = self.lock_tails();
        let app = tails
            .entry(hostname.to_owned())
            .or_insert_with(|| TailedApp {
                lines: broadcast::Sender::new(TAIL_LINES),
                samples: Vec::new(),
            });
        let raised = app.samples.is_empty() || sample > highest(&app.samples);
        app.samples.push(sample);
        let lines = app.lines.subscribe();
        drop(tails);
        if raised {
            self.send_tail_set();
        }
        TailSubscription {
            fleet: self,
            hostname: hostname.to_owned(),
            sample,
            lines,
        }
    }

    /// The apps tailed here, each with its highest sample rate.
    fn tailed_here_now(&self) -> TailRates {
        self.lock_tails()
            .iter()
            .map(|(host, app)| (host.clone(), highest(&app.samples)))
            .collect()
    }

    /// The apps tailed here or (replicas) by another replica, each with the highest sample
    /// rate among its tails anywhere.
    fn tailed(&self) -> TailRates {
        let mut all = self.tailed_here_now();
        for (host, sample) in self
            .remote_tails
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let rate = all.entry(host.clone()).or_insert(0.0);
            *rate = rate.max(*sample);
        }
        all
    }

    /// The apps tailed now, as the command that tells a node so.
    pub fn tail_command(&self) -> Command {
        let tailed = self.tailed();
        Command {
            kind: Some(command::Kind::Tail(TailApps {
                hostnames: tailed.keys().cloned().collect(),
                samples: tailed.into_iter().collect(),
            })),
            node_id: String::new(),
        }
    }

    fn send_tail_set(&self) {
        let here = self.tailed_here_now();
        self.tailed_here.send_if_modified(|current| {
            let changed = *current != here;
            *current = here;
            changed
        });
        let command = self.tail_command();
        if let Some(command::Kind::Tail(apps)) = &command.kind {
            tracing::info!(tailed = ?apps.samples, "tailed apps changed");
        }
        let _ = self.commands.send(command);
    }

    /// A tail line from a node, for the tails of its app here, and (replicas) relayed to the
    /// others if they tail it. Dropped if nobody tails it now, or the relay is full.
    pub fn push_tail(&self, line: TailLine) {
        let remote = self
            .remote_tails
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&line.hostname);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample rates the last tail command sent gives the nodes.
    fn rates(commands: &mut broadcast::Receiver<Command>) -> Vec<(String, f64)> {
        let mut last = None;
        while let Ok(command) = commands.try_recv() {
            last = Some(command);
        }
        match last.and_then(|c| c.kind) {
            Some(command::Kind::Tail(apps)) => {
                assert_eq!(
                    apps.hostnames.len(),
                    apps.samples.len(),
                    "a rate per tailed app"
                );
                let mut rates: Vec<_> = apps.samples.into_iter().collect();
                rates.sort_by(|a, b| a.0.cmp(&b.0));
                rates
            }
            other => panic!("no tail command: {other:?}"),
        }
    }

    #[test]
    fn nodes_are_told_the_highest_sample_rate_among_an_apps_tails() {
        let fleet = Fleet::new(0, Vec::new());
        let mut commands = fleet.commands();
        let low = fleet.tail("a.test", 0.01);
        assert_eq!(rates(&mut commands), [("a.test".into(), 0.01)]);
        let high = fleet.tail("a.test", 0.5);
        let other = fleet.tail("b.test", 1.0);
        assert_eq!(
            rates(&mut commands),
            [("a.test".into(), 0.5), ("b.test".into(), 1.0)]
        );
        drop(high);
        drop(other);
        assert_eq!(rates(&mut commands), [("a.test".into(), 0.01)]);
        // Another replica's tail of the app counts too, and outlives this one's.
        fleet.set_remote_tails([("a.test".to_owned(), 0.2)].into());
        assert_eq!(rates(&mut commands), [("a.test".into(), 0.2)]);
        drop(low);
        assert_eq!(rates(&mut commands), [("a.test".into(), 0.2)]);
        assert!(fleet.tailed_here.borrow().is_empty());
    }
}
