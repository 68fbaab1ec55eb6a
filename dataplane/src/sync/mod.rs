//! Fleet mode: the control-plane client. Subscribes to the control plane's config stream,
//! downloads and verifies the slivers a revision needs, publishes the revision's apps to the
//! reconciler (`reload::reconcile`, the same one a config-file reload goes through) only when all
//! of them are on disk and whole, reports what the node serves once the reconciler says so, and
//! reconnects with jittered backoff. It never touches a pool or the routing table, and keeps
//! reading its stream while apps prepare. The last good state and its slivers are kept in
//! `cache_dir`, so a restart serves them while the control plane is unreachable.
//!
//! Here: the session loop and reconnecting. `client`: connecting and downloading. `member`: the
//! desired and last good state. `status`: what is reported. `state`: what is kept on disk.

mod client;
mod member;
mod state;
mod status;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use nano_proto::v1::{NodeStatus, SubscribeRequest, TailLine, command, fleet_update};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::job::{NodeCommand, WorkerStats};
use crate::metrics::METRICS;
use crate::reload::{FleetApps, Serving};
pub use client::FleetOptions;
use client::{SyncError, connect};
pub use member::Member;
pub use state::{FleetApp, LastGood};

/// The node's live isolates, for status reports (read at report time).
pub type IsolateStats = Arc<dyn Fn() -> Vec<Arc<WorkerStats>> + Send + Sync>;

/// The control-plane address this node's config stream is open to now (empty: none), for
/// `/_admin/health` (with replicas: which one).
static CONNECTED_TO: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// The control-plane address the config stream is open to, if it is.
pub fn connected_to() -> Option<String> {
    let url = CONNECTED_TO.lock().unwrap_or_else(|p| p.into_inner());
    (!url.is_empty()).then(|| url.clone())
}

fn set_connected_to(url: &str) {
    *CONNECTED_TO.lock().unwrap_or_else(|p| p.into_inner()) = url.to_owned();
}

/// How often a connected node reports its isolates, and retries a pending activation.
const REPORT_EVERY: Duration = Duration::from_secs(2);

/// What connects the fleet client to the rest of the node: it publishes the fleet's apps and
/// evict commands, and reads what is served.
pub struct Links {
    pub fleet: watch::Sender<Option<FleetApps>>,
    pub serving: watch::Receiver<Serving>,
    pub evicts: mpsc::UnboundedSender<NodeCommand>,
    pub isolates: IsolateStats,
    pub drained: Arc<AtomicBool>,
}

/// One connection: subscribe, report, apply, until the stream breaks or `stop` fires.
/// Returns whether it got as far as receiving the state (the backoff then starts over).
async fn session(
    member: &mut Member,
    links: &mut Links,
    stop: &CancellationToken,
    url: &str,
    connected: &mut bool,
) -> Result<(), SyncError> {
    let mut client = connect(&member.options, url).await?;
    let mut updates = client
        .subscribe(SubscribeRequest {
            node_id: member.options.node_id.clone(),
            revision: member.last_good.revision,
            version: env!("CARGO_PKG_VERSION").into(),
        })
        .await?
        .into_inner();
    let (reports, reports_rx) = mpsc::channel::<NodeStatus>(4);
    let mut reporter = client.clone();
    let reporting = tokio::spawn(async move {
        reporter
            .report_status(ReceiverStream::new(reports_rx))
            .await
    });
    let _stop_reporting = AbortOnDrop(reporting);
    // Tail events of the apps the control plane asks for, on their own stream.
    let (tail_lines, tail_rx) = mpsc::channel::<TailLine>(TAIL_LINES);
    let mut pusher = client.clone();
    let pushing = tokio::spawn(async move { pusher.push_tail(ReceiverStream::new(tail_rx)).await });
    let _stop_pushing = AbortOnDrop(pushing);
    let mut tails = Tails::default();
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {
                if member.pending && member.awaiting.is_none() && *connected {
                    let _ = member.activate(&mut client, &links.fleet).await;
                }
            }
            Ok(()) = links.serving.changed() => {
                let serving = links.serving.borrow_and_update().clone();
                member.activated(&serving).await;
            }
            update = updates.message() => {
                let update = update?.ok_or(SyncError::Closed)?;
                if !*connected {
                    *connected = true;
                    METRICS.fleet_connected.set(1);
                    set_connected_to(url);
                    tracing::info!(url, revision = update.revision, "connected to the control plane");
                }
                if let Some(fleet_update::Kind::Command(nano_proto::v1::Command {
                    kind: Some(command::Kind::Tail(apps)),
                    node_id,
                })) = &update.kind
                {
                    if node_id.is_empty() || *node_id == member.options.node_id {
                        tails.follow(apps, &member.options.node_id, &tail_lines);
                    }
                    continue;
                }
                if member.take(update, &links.evicts, &links.drained) {
                    // A failure is recorded and reported; the stream goes on.
                    let _ = member.activate(&mut client, &links.fleet).await;
                }
            }
        }
        if reports.send(member.status(&links.isolates)).await.is_err() {
            return Err(SyncError::Closed);
        }
    }
}

/// Tail lines a node buffers toward the control plane; past them events are dropped (and the
/// next line says how many).
const TAIL_LINES: usize = 256;

/// The apps this node forwards tail events for: a task per app reading its hub, and the handle
/// that sets the share of the app's requests it records.
#[derive(Default)]
struct Tails(std::collections::HashMap<String, (AbortOnDrop<()>, crate::tail::Rate)>);

impl Tails {
    /// Forwards exactly the apps in `apps`, each at its sample rate: starts what is new, stops
    /// what is no longer asked for.
    fn follow(
        &mut self,
        apps: &nano_proto::v1::TailApps,
        node_id: &str,
        lines: &mpsc::Sender<TailLine>,
    ) {
        let hostnames = &apps.hostnames;
        self.0.retain(|host, _| hostnames.contains(host));
        for host in hostnames {
            // Only the share the app's most-sampling tail wants: the control plane thins it
            // further for the tails that want less.
            let sample = apps.samples.get(host).copied().unwrap_or(1.0);
            if let Some((_, rate)) = self.0.get(host) {
                rate.set(sample);
                continue;
            }
            let mut tail = crate::tail::hub(host).subscribe(sample);
            let rate = tail.rate();
            let (host_name, node_id, lines) = (host.clone(), node_id.to_owned(), lines.clone());
            let task = tokio::spawn(async move {
                // Events lost here (the stream to the control plane was full) or in the hub.
                let mut dropped = 0;
                loop {
                    let (event_json, sampled) = match tail.next().await {
                        // With its headers (credentials masked): the control plane shows them
                        // only to tails that ask.
                        crate::tail::Next::Event(event) => (
                            crate::tail::to_json(&event, true).to_string(),
                            event.sampled,
                        ),
                        crate::tail::Next::Dropped(lost) => {
                            dropped += lost;
                            continue;
                        }
                    };
                    let line = TailLine {
                        node_id: node_id.clone(),
                        hostname: host_name.clone(),
                        event_json,
                        dropped,
                        sampled,
                    };
                    match lines.try_send(line) {
                        Ok(()) => dropped = 0,
                        Err(mpsc::error::TrySendError::Full(_)) => dropped += 1,
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
            });
            tracing::info!(hostname = %host, sample, "forwarding tail events to the control plane");
            self.0.insert(host.clone(), (AbortOnDrop(task), rate));
        }
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Jittered exponential backoff: 200 ms doubling to 5 s, each wait drawn from its upper half.
struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> Duration {
        let ceiling = (200u64 << self.0.min(5)).min(5_000);
        self.0 += 1;
        let mut random = [0u8; 8];
        let _ = getrandom::fill(&mut random);
        let jitter = u64::from_le_bytes(random) % (ceiling / 2 + 1);
        Duration::from_millis(ceiling / 2 + jitter)
    }
}

/// Runs the member until `stop` fires. With several control-plane replicas, each attempt goes
/// to the next one: a node whose replica died resumes on another (from its revision: what it
/// has verified is not downloaded again).
pub async fn run(mut member: Member, mut links: Links, stop: CancellationToken) {
    let mut backoff = Backoff(0);
    let urls = member.options.urls.clone();
    for attempt in 0usize.. {
        let url = &urls[attempt % urls.len()];
        let mut connected = false;
        METRICS.fleet_connected.set(0);
        let result = session(&mut member, &mut links, &stop, url, &mut connected).await;
        METRICS.fleet_connected.set(0);
        set_connected_to("");
        if stop.is_cancelled() {
            return;
        }
        if connected {
            backoff = Backoff(0);
        }
        let wait = backoff.next();
        if let Err(err) = result {
            tracing::warn!(
                url = %url, error = %err, retry_in_ms = wait.as_millis() as u64,
                "control plane unreachable; the last good state keeps serving"
            );
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
