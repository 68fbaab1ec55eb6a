//! `nano.v1.Fleet`: what data planes call. Subscribe sends the full state on connect, then a
//! delta for every new revision (computed against what this stream last sent, so a burst of
//! revisions collapses into one delta) and commands; ReportStatus records what a node serves;
//! DownloadSliver streams a stored sliver in chunks.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use nano_proto::v1::fleet_server::Fleet;
use nano_proto::v1::{
    App, Command, Delta, DownloadSliverRequest, DrainNode, FleetUpdate, FullState, NodeStatus,
    ReportAck, SliverChunk, SubscribeRequest, TailLine, command, fleet_update,
};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::Plane;

pub struct FleetService {
    plane: Arc<Plane>,
    shutdown: CancellationToken,
}

impl FleetService {
    pub fn new(plane: Arc<Plane>, shutdown: CancellationToken) -> Self {
        Self { plane, shutdown }
    }
}

type Updates = ReceiverStream<Result<FleetUpdate, Status>>;

fn by_host(apps: Vec<App>) -> BTreeMap<String, App> {
    apps.into_iter()
        .map(|app| {
            let host = app
                .spec
                .as_ref()
                .map(|s| s.hostname.clone())
                .unwrap_or_default();
            (host, app)
        })
        .collect()
}

/// What changed from `sent` to `now`.
fn delta(sent: &BTreeMap<String, App>, now: &BTreeMap<String, App>) -> Delta {
    Delta {
        upserts: now
            .iter()
            .filter(|(host, app)| sent.get(*host) != Some(app))
            .map(|(_, app)| app.clone())
            .collect(),
        removed: sent
            .keys()
            .filter(|host| !now.contains_key(*host))
            .cloned()
            .collect(),
    }
}

/// The store's state, read on a blocking thread.
async fn state(plane: &Arc<Plane>) -> Option<(u64, Vec<App>)> {
    let plane = plane.clone();
    match tokio::task::spawn_blocking(move || plane.store.state()).await {
        Ok(Ok(state)) => Some(state),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "cannot read the store's state");
            None
        }
        Err(_) => None,
    }
}

fn check_node_id(id: &str) -> Result<(), Status> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Status::invalid_argument(format!(
            "{id:?} is not a valid node id: use 1-128 letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl Fleet for FleetService {
    type SubscribeStream = Updates;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Updates>, Status> {
        let address = request.remote_addr();
        let SubscribeRequest {
            node_id,
            revision: node_revision,
            version,
        } = request.into_inner();
        check_node_id(&node_id)?;
        let (tx, rx) = mpsc::channel(16);
        let plane = self.plane.clone();
        let shutdown = self.shutdown.clone();
        let mut revisions = plane.fleet.revisions();
        let mut commands = plane.fleet.commands();
        let span = tracing::info_span!("subscriber", node_id = %node_id);
        let left = (plane.clone(), node_id.clone());
        let session = async move {
            let _connection = plane.fleet.connect(&node_id, address, &version);
            let store_id = plane.store.store_id().to_owned();
            let Some((mut revision, apps)) = state(&plane).await else {
                let _ = tx
                    .send(Err(Status::unavailable("the store cannot be read; retry")))
                    .await;
                return;
            };
            tracing::debug!(node_revision, revision, "sending full state");
            let mut sent = by_host(apps.clone());
            let full = FleetUpdate {
                revision,
                store_id: store_id.clone(),
                kind: Some(fleet_update::Kind::Full(FullState { apps })),
            };
            if tx.send(Ok(full)).await.is_err() {
                return;
            }
            // Then whether it is to be drained (the operator may have changed it while the
            // node was away).
            let drained = {
                let (plane, node_id) = (plane.clone(), node_id.clone());
                tokio::task::spawn_blocking(move || plane.store.drained(&node_id))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(false)
            };
            let drain = FleetUpdate {
                revision,
                store_id: store_id.clone(),
                kind: Some(fleet_update::Kind::Command(Command {
                    kind: Some(command::Kind::Drain(DrainNode { drain: drained })),
                    node_id: node_id.clone(),
                })),
            };
            if tx.send(Ok(drain)).await.is_err() {
                return;
            }
            // And which apps are tailed now.
            let mut tail = plane.fleet.tail_command();
            tail.node_id = node_id.clone();
            let tail = FleetUpdate {
                revision,
                store_id: store_id.clone(),
                kind: Some(fleet_update::Kind::Command(tail)),
            };
            if tx.send(Ok(tail)).await.is_err() {
                return;
            }
            loop {
                let update = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tx.closed() => return,
                    changed = revisions.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let Some((now_revision, apps)) = state(&plane).await else {
                            continue;
                        };
                        if now_revision <= revision {
                            continue;
                        }
                        let now = by_host(apps);
                        let delta = delta(&sent, &now);
                        sent = now;
                        revision = now_revision;
                        FleetUpdate {
                            revision,
                            store_id: store_id.clone(),
                            kind: Some(fleet_update::Kind::Delta(delta)),
                        }
                    }
                    command = commands.recv() => match command {
                        Ok(command) if !command.node_id.is_empty() && command.node_id != node_id => continue,
                        Ok(command) => FleetUpdate {
                            revision,
                            store_id: store_id.clone(),
                            kind: Some(fleet_update::Kind::Command(command)),
                        },
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                };
                if tx.send(Ok(update)).await.is_err() {
                    return;
                }
            }
        };
        tokio::spawn(
            async move {
                session.await;
                // No longer connected here (a shared store forgets it only if no other replica
                // took it meanwhile).
                let (plane, node_id) = left;
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(err) = plane.store.node_left(&node_id) {
                        tracing::warn!(error = %err, "cannot record that a node left");
                    }
                })
                .await;
            }
            .instrument(span),
        );
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn report_status(
        &self,
        request: Request<Streaming<NodeStatus>>,
    ) -> Result<Response<ReportAck>, Status> {
        let mut stream = request.into_inner();
        loop {
            let status = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                status = stream.message() => status?,
            };
            let Some(status) = status else { break };
            check_node_id(&status.node_id)?;
            if !status.error.is_empty() {
                tracing::warn!(
                    node_id = %status.node_id, revision = status.failed_revision,
                    error = %status.error, "node could not activate a revision"
                );
            }
            let (node, isolates) = self.plane.fleet.report(status);
            let plane = self.plane.clone();
            // Recording the last status is best effort: it serves `nanoctl nodes` after a
            // restart, and (shared stores) the other replicas' view of the fleet.
            tokio::task::spawn_blocking(move || {
                if let Err(err) = plane.store.put_node(&node, &isolates) {
                    tracing::warn!(error = %err, "cannot record a node's status");
                }
            });
        }
        Ok(Response::new(ReportAck {}))
    }

    async fn push_tail(
        &self,
        request: Request<Streaming<TailLine>>,
    ) -> Result<Response<ReportAck>, Status> {
        let mut stream = request.into_inner();
        loop {
            let line = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                line = stream.message() => line?,
            };
            let Some(line) = line else { break };
            check_node_id(&line.node_id)?;
            if !line.event_json.is_empty() {
                self.plane.metrics.tail_events.inc();
            }
            self.plane.fleet.push_tail(line);
        }
        Ok(Response::new(ReportAck {}))
    }

    type DownloadSliverStream =
        Pin<Box<dyn Stream<Item = Result<SliverChunk, Status>> + Send + 'static>>;

    async fn download_sliver(
        &self,
        request: Request<DownloadSliverRequest>,
    ) -> Result<Response<Self::DownloadSliverStream>, Status> {
        let id = request.into_inner().id;
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Status::invalid_argument(format!(
                "{id:?} is not a sliver id (64 hex digits)"
            )));
        }
        let plane = self.plane.clone();
        let lookup = id.clone();
        let bytes = tokio::task::spawn_blocking(move || plane.store.sliver(&lookup))
            .await
            .map_err(|_| Status::unavailable("the control plane is shutting down"))?
            .map_err(|err| Status::from(super::ControlError::Store(err)))?
            .ok_or_else(|| {
                self.plane
                    .metrics
                    .sliver_downloads
                    .with_label_values(&["missing"])
                    .inc();
                Status::not_found(format!(
                    "sliver {id} is not stored (its app version may have been removed); \
                     resubscribe for the current state"
                ))
            })?;
        self.plane
            .metrics
            .sliver_downloads
            .with_label_values(&["ok"])
            .inc();
        let total = bytes.len();
        // Chunks are copied out one at a time as the client reads (the stored bytes are shared,
        // not copied whole).
        let chunk = nano_proto::SLIVER_CHUNK_BYTES;
        let chunks = (0..total.div_ceil(chunk).max(1)).map(move |i| {
            let range = (i * chunk)..((i + 1) * chunk).min(total);
            Ok(SliverChunk {
                total_bytes: if i == 0 { total as u64 } else { 0 },
                data: bytes[range].to_vec(),
            })
        });
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(host: &str, version: u64) -> App {
        App::named(host, version)
    }

    #[test]
    fn deltas_carry_changed_and_removed_apps_only() {
        let sent = by_host(vec![app("a", 1), app("b", 1), app("c", 1)]);
        let now = by_host(vec![app("a", 1), app("b", 2), app("d", 1)]);
        let d = delta(&sent, &now);
        let upserts: Vec<_> = d
            .upserts
            .iter()
            .map(|a| (a.spec.clone().unwrap().hostname, a.version))
            .collect();
        assert_eq!(upserts, vec![("b".to_string(), 2), ("d".to_string(), 1)]);
        assert_eq!(d.removed, vec!["c".to_string()]);
    }
}
