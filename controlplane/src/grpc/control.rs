//! `nano.v1.Control`: what operators (nanoctl) do. Every refusal says what is wrong and what to
//! do; a refused deploy leaves the store untouched.

use std::sync::Arc;

use nano_proto::v1::control_server::Control;
use nano_proto::v1::{
    App, AppSpec, Command, DeleteAppRequest, DeleteAppResponse, DeployRequest, DeployResponse,
    DrainNode, DrainRequest, DrainResponse, EvictApp, EvictRequest, EvictResponse, GetAppRequest,
    GetAppResponse, ListAppsRequest, ListAppsResponse, ListIsolatesRequest, ListIsolatesResponse,
    ListNodesRequest, ListNodesResponse, RollbackRequest, TailLine, TailRequest, command,
};
use nano_sliver::Sliver;
use tonic::{Request, Response, Status};

use super::ControlError;
use crate::Plane;
use crate::fleet::now_ms;

/// What a tail shows of a node's line: its event if the filter admits it (without the request's
/// headers unless the tail asked for them), and the count of events lost before it; `None`
/// when that leaves nothing.
fn shown(line: &TailLine, filter: &nano_proto::tail::Filter, headers: bool) -> Option<TailLine> {
    // The node recorded the event among `line.sampled` of the requests (0: all of them).
    let event = (!line.event_json.is_empty() && filter.sample_hit_given(line.sampled))
        .then(|| serde_json::from_str::<serde_json::Value>(&line.event_json).unwrap_or_default())
        .filter(|event| filter.matches(event));
    let event_json = match event {
        Some(_) if headers => line.event_json.clone(),
        Some(mut event) => {
            if let Some(object) = event.as_object_mut() {
                object.remove("headers");
            }
            event.to_string()
        }
        None => String::new(),
    };
    (!event_json.is_empty() || line.dropped > 0).then(|| TailLine {
        event_json,
        ..line.clone()
    })
}

/// Lines a `Control.Tail` client buffers before its tail falls behind (and loses lines).
const TAIL_CLIENT_LINES: usize = 64;

pub struct ControlService {
    plane: Arc<Plane>,
}

impl ControlService {
    pub fn new(plane: Arc<Plane>) -> Self {
        Self { plane }
    }

    /// Refuses (NOT_FOUND, naming `nanoctl apps`) a hostname the store has no app for.
    async fn must_exist(&self, host: &str) -> Result<(), ControlError> {
        let lookup = host.to_owned();
        let known = self
            .blocking(move |plane| Ok(plane.store.app(&lookup)?))
            .await?;
        match known {
            Some(_) => Ok(()),
            None => Err(ControlError::Store(crate::store::StoreError::NoApp(
                host.to_owned(),
            ))),
        }
    }

    /// Runs a blocking store call off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Plane) -> Result<T, ControlError> + Send + 'static,
    ) -> Result<T, ControlError> {
        let plane = self.plane.clone();
        tokio::task::spawn_blocking(move || work(&plane))
            .await
            .map_err(|_| ControlError::ShuttingDown)?
    }
}

/// The normalised hostname of a request, or why it is not one.
fn hostname(raw: &str) -> Result<String, ControlError> {
    nano_config::normalize_hostname(raw)
        .map_err(|why| ControlError::Invalid(format!("{raw:?} is not a valid hostname: {why}")))
}

/// Checks a spec against the config contract's bounds and returns it normalised.
pub fn check_spec(spec: Option<AppSpec>) -> Result<AppSpec, ControlError> {
    let mut spec =
        spec.ok_or_else(|| ControlError::Invalid("the deploy has no app spec".into()))?;
    spec.hostname = hostname(&spec.hostname)?;
    if spec.name.len() > 128 || spec.name.chars().any(char::is_control) {
        return Err(ControlError::Invalid(format!(
            "{:?} is not a valid app name: use up to 128 printable characters",
            spec.name
        )));
    }
    let mut raw = nano_proto::json::config_settings(&spec);
    raw.insert("hostname".into(), spec.hostname.clone().into());
    nano_config::check_settings(serde_json::Value::Object(raw)).map_err(|problems| {
        ControlError::Invalid(
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    spec.limits = Some(spec.limits.unwrap_or_default());
    Ok(spec)
}

#[tonic::async_trait]
impl Control for ControlService {
    async fn deploy(
        &self,
        request: Request<DeployRequest>,
    ) -> Result<Response<DeployResponse>, Status> {
        let DeployRequest {
            spec,
            sliver,
            deploy_id,
        } = request.into_inner();
        let checked = check_spec(spec).and_then(|spec| {
            if deploy_id.len() > 128
                || !deploy_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ControlError::Invalid(format!(
                    "{deploy_id:?} is not a valid deploy id: use up to 128 letters, digits, '-' or '_'"
                )));
            }
            if sliver.is_empty() {
                return Err(ControlError::Invalid(
                    "the deploy carries no sliver; `nanoctl deploy app.js` builds one".into(),
                ));
            }
            let parsed = Sliver::from_bytes(sliver)
                .map_err(|err| ControlError::Invalid(format!("the sliver is invalid: {err}")))?;
            Ok((spec, parsed))
        });
        let (mut spec, sliver) = match checked {
            Ok(ok) => ok,
            Err(err) => {
                self.plane
                    .metrics
                    .deploys
                    .with_label_values(&["refused"])
                    .inc();
                tracing::warn!(error = %err, "deploy refused");
                return Err(err.into());
            }
        };
        if spec.name.is_empty() {
            spec.name = sliver.manifest.app.clone();
        }
        let result = self
            .blocking(move |plane| {
                Ok(plane.store.deploy(crate::store::Deploy {
                    spec,
                    sliver_id: &sliver.id,
                    sliver: sliver.bytes(),
                    entry: &sliver.manifest.entry,
                    now_ms: now_ms(),
                    deploy_id: &deploy_id,
                })?)
            })
            .await;
        match result {
            Ok(DeployResponse {
                app: Some(app),
                revision,
                previous_version,
            }) => {
                self.plane.metrics.deploys.with_label_values(&["ok"]).inc();
                self.plane.fleet.publish(revision);
                tracing::info!(
                    hostname = %app.spec.as_ref().map(|s| s.hostname.as_str()).unwrap_or(""),
                    version = app.version, sliver = %app.sliver_id, revision, "deployed"
                );
                Ok(Response::new(DeployResponse {
                    app: Some(app),
                    revision,
                    previous_version,
                }))
            }
            Ok(_) => unreachable!("a deploy answers with its app"),
            Err(err) => {
                self.plane
                    .metrics
                    .deploys
                    .with_label_values(&[err.outcome()])
                    .inc();
                Err(err.into())
            }
        }
    }

    async fn list_apps(
        &self,
        _request: Request<ListAppsRequest>,
    ) -> Result<Response<ListAppsResponse>, Status> {
        let apps = self.blocking(|plane| Ok(plane.store.apps()?)).await?;
        Ok(Response::new(ListAppsResponse { apps }))
    }

    async fn get_app(
        &self,
        request: Request<GetAppRequest>,
    ) -> Result<Response<GetAppResponse>, Status> {
        let host = hostname(&request.into_inner().hostname)?;
        let (app, history) = self
            .blocking(move |plane| {
                let app = plane
                    .store
                    .app(&host)?
                    .ok_or_else(|| crate::store::StoreError::NoApp(host.clone()))?;
                Ok((app, plane.store.history(&host)?))
            })
            .await?;
        Ok(Response::new(GetAppResponse {
            app: Some(app),
            history,
        }))
    }

    async fn delete_app(
        &self,
        request: Request<DeleteAppRequest>,
    ) -> Result<Response<DeleteAppResponse>, Status> {
        let host = hostname(&request.into_inner().hostname)?;
        let revision = {
            let host = host.clone();
            self.blocking(move |plane| Ok(plane.store.delete(&host)?))
                .await?
        };
        self.plane.fleet.publish(revision);
        tracing::info!(hostname = %host, revision, "app deleted");
        Ok(Response::new(DeleteAppResponse { revision }))
    }

    async fn rollback(
        &self,
        request: Request<RollbackRequest>,
    ) -> Result<Response<DeployResponse>, Status> {
        let RollbackRequest {
            hostname: raw,
            to_version,
        } = request.into_inner();
        let host = hostname(&raw)?;
        let result = self
            .blocking(move |plane| Ok(plane.store.rollback(&host, to_version)?))
            .await;
        let (app, revision): (App, u64) = match result {
            Ok(ok) => ok,
            Err(err) => {
                self.plane
                    .metrics
                    .rollbacks
                    .with_label_values(&[err.outcome()])
                    .inc();
                return Err(err.into());
            }
        };
        self.plane
            .metrics
            .rollbacks
            .with_label_values(&["ok"])
            .inc();
        self.plane.fleet.publish(revision);
        tracing::info!(version = app.version, revision, "rolled back");
        Ok(Response::new(DeployResponse {
            app: Some(app),
            revision,
            previous_version: 0,
        }))
    }

    async fn list_nodes(
        &self,
        _request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        let (nodes, revision) = self
            .blocking(|plane| Ok((plane.nodes()?, plane.store.revision()?)))
            .await?;
        Ok(Response::new(ListNodesResponse { nodes, revision }))
    }

    async fn list_isolates(
        &self,
        request: Request<ListIsolatesRequest>,
    ) -> Result<Response<ListIsolatesResponse>, Status> {
        let raw = request.into_inner().hostname;
        let host = if raw.is_empty() {
            None
        } else {
            Some(hostname(&raw)?)
        };
        let isolates = self
            .blocking(move |plane| Ok(plane.isolates(host.as_deref())?))
            .await?;
        Ok(Response::new(ListIsolatesResponse { isolates }))
    }

    async fn evict(
        &self,
        request: Request<EvictRequest>,
    ) -> Result<Response<EvictResponse>, Status> {
        let host = hostname(&request.into_inner().hostname)?;
        self.must_exist(&host).await?;
        let command = Command {
            kind: Some(command::Kind::Evict(EvictApp {
                hostname: host.clone(),
            })),
            node_id: String::new(),
        };
        let node_ids = self
            .blocking(move |plane| Ok(plane.command(command)?))
            .await?;
        tracing::info!(hostname = %host, nodes = node_ids.len(), "evict sent");
        Ok(Response::new(EvictResponse { node_ids }))
    }

    type TailStream = tokio_stream::wrappers::ReceiverStream<Result<TailLine, Status>>;

    async fn tail(
        &self,
        request: Request<TailRequest>,
    ) -> Result<Response<Self::TailStream>, Status> {
        let request = request.into_inner();
        let host = hostname(&request.hostname)?;
        let filter = nano_proto::tail::Filter::from_request(&request)
            .map_err(|reason| ControlError::Invalid(format!("tail: {reason}")))?;
        self.must_exist(&host).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(TAIL_CLIENT_LINES);
        let plane = self.plane.clone();
        let (node, headers) = (request.node_id, request.headers);
        tokio::spawn(async move {
            let mut tail = plane.fleet.tail(&host, filter.sample);
            tracing::info!(hostname = %host, "tail opened");
            loop {
                let line = tokio::select! {
                    _ = tx.closed() => break,
                    line = tail.lines.recv() => line,
                };
                let line = match line {
                    Ok(line) if !node.is_empty() && line.node_id != node => continue,
                    Ok(line) => match shown(&line, &filter, headers) {
                        Some(line) => line,
                        None => continue,
                    },
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(lost)) => TailLine {
                        hostname: host.clone(),
                        dropped: lost,
                        ..Default::default()
                    },
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                if tx.send(Ok(line)).await.is_err() {
                    break;
                }
            }
            tracing::info!(hostname = %host, "tail closed");
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn drain(
        &self,
        request: Request<DrainRequest>,
    ) -> Result<Response<DrainResponse>, Status> {
        let DrainRequest { node_id, drain } = request.into_inner();
        let known = {
            let node_id = node_id.clone();
            self.blocking(move |plane| Ok(plane.knows(&node_id)?))
                .await?
        };
        if !known {
            return Err(ControlError::Invalid(format!(
                "no node {node_id:?} has ever connected; `nanoctl nodes` lists them"
            ))
            .into());
        }
        // Recorded first: a node that is offline now (or reconnecting) gets it when it connects.
        {
            let node_id = node_id.clone();
            self.blocking(move |plane| Ok(plane.store.set_drained(&node_id, drain)?))
                .await?;
        }
        let command = Command {
            kind: Some(command::Kind::Drain(DrainNode { drain })),
            node_id: node_id.clone(),
        };
        let sent = self
            .blocking(move |plane| Ok(plane.command(command)?))
            .await?;
        tracing::info!(node_id = %node_id, drain, connected = !sent.is_empty(), "drain set");
        Ok(Response::new(DrainResponse {
            connected: !sent.is_empty(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nano_proto::v1::Limits;

    fn spec(host: &str, limits: Limits) -> Option<AppSpec> {
        Some(AppSpec {
            hostname: host.into(),
            limits: Some(limits),
            ..Default::default()
        })
    }

    #[test]
    fn specs_are_normalised_and_checked_against_the_config_bounds() {
        let ok = check_spec(spec("API.Example.com.", Limits::default())).unwrap();
        assert_eq!(ok.hostname, "api.example.com");
        for (host, limits, want) in [
            ("a b", Limits::default(), "not a valid hostname"),
            ("a:80", Limits::default(), "without a port"),
            (
                "a.test",
                Limits {
                    memory_mb: 8,
                    ..Default::default()
                },
                "limits.memory_mb",
            ),
            (
                "a.test",
                Limits {
                    workers: 65,
                    ..Default::default()
                },
                "limits.workers",
            ),
        ] {
            let err = check_spec(spec(host, limits)).unwrap_err().to_string();
            assert!(err.contains(want), "{host}: {err}");
        }
        assert!(check_spec(None).is_err());
    }
}
