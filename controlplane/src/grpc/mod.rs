//! The gRPC surface: `nano.v1.Control` (operator token), `nano.v1.Fleet` (node token) and
//! `grpc.health.v1` (open, for probes), with explicit message size limits and optional TLS.
//! [`ControlError`] is the one place control-plane errors become gRPC codes and HTTP statuses.

mod control;
mod fleet;

use std::sync::Arc;

use nano_proto::v1::control_server::ControlServer;
use nano_proto::v1::fleet_server::FleetServer;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Code, Request, Status};
use tonic_health::ServingStatus;

use crate::Plane;
use crate::store::StoreError;

/// How long open calls may run on after shutdown begins.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How often the store's health is checked.
const STORE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Largest status report or request a node or operator may send besides a deploy.
const MAX_SMALL_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Every way a control-plane call fails, with its gRPC code and HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the control plane is shutting down; retry in a moment")]
    ShuttingDown,
}

impl ControlError {
    pub fn code(&self) -> Code {
        match self {
            Self::Invalid(_) => Code::InvalidArgument,
            Self::Store(StoreError::NoApp(_) | StoreError::NoVersion { .. }) => Code::NotFound,
            Self::Store(StoreError::NoEarlierVersion(_)) => Code::FailedPrecondition,
            Self::Store(StoreError::HostnameTaken { .. }) => Code::AlreadyExists,
            Self::Store(StoreError::Etcd { .. } | StoreError::Contended(_)) => Code::Unavailable,
            Self::Store(StoreError::OverBudget { .. }) => Code::ResourceExhausted,
            Self::Store(_) => Code::Internal,
            Self::ShuttingDown => Code::Unavailable,
        }
    }

    /// The `result` label of a failed change: `failed` when the control plane is at fault,
    /// `refused` when the request was.
    pub fn outcome(&self) -> &'static str {
        if matches!(self.code(), Code::Internal | Code::Unavailable) {
            "failed"
        } else {
            "refused"
        }
    }

    pub fn http_status(&self) -> u16 {
        match self.code() {
            Code::InvalidArgument => 400,
            Code::NotFound => 404,
            Code::FailedPrecondition | Code::AlreadyExists => 409,
            Code::Unavailable => 503,
            Code::ResourceExhausted => 507,
            _ => 500,
        }
    }
}

impl From<ControlError> for Status {
    fn from(err: ControlError) -> Self {
        if err.code() == Code::Internal {
            tracing::error!(error = %err, "request failed");
        }
        Status::new(err.code(), err.to_string())
    }
}

/// Checks `authorization: Bearer <token>` in constant time.
fn check_token(req: &Request<()>, token: &str, who: &str) -> Result<(), Status> {
    let given = req
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if bool::from(given.as_bytes().ct_eq(token.as_bytes())) => Ok(()),
        Some(_) => Err(Status::unauthenticated(format!("the {who} token is wrong"))),
        None => Err(Status::unauthenticated(format!(
            "no {who} token was sent (`authorization: Bearer <token>`)"
        ))),
    }
}

/// TLS for the gRPC listener: PEM certificate chain and private key.
pub struct Tls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// Serves gRPC on `listener` until `shutdown` fires. Health turns NOT_SERVING first, then the
/// streams end and the server stops.
pub async fn serve(
    plane: Arc<Plane>,
    listener: TcpListener,
    tls: Option<Tls>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<ControlServer<control::ControlService>>()
        .await;
    health
        .set_serving::<FleetServer<fleet::FleetService>>()
        .await;
    health.set_service_status("", ServingStatus::Serving).await;

    // The store's health: `nano.v1.Control` is NOT_SERVING while the store cannot take changes
    // (etcd unreachable or without quorum); Fleet keeps serving what the nodes need.
    {
        let (plane, health, shutdown) = (plane.clone(), health.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut serving = true;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(STORE_CHECK_EVERY) => {}
                }
                let store = plane.clone();
                let checked = tokio::task::spawn_blocking(move || store.store.check()).await;
                let error = match checked {
                    Ok(Ok(())) => None,
                    Ok(Err(err)) => Some(err.to_string()),
                    Err(_) => return,
                };
                let ok = error.is_none();
                *plane.store_error.lock().unwrap_or_else(|p| p.into_inner()) = error.clone();
                if ok != serving && !shutdown.is_cancelled() {
                    serving = ok;
                    let status = if ok {
                        tracing::info!("the store answers again; nano.v1.Control is SERVING");
                        ServingStatus::Serving
                    } else {
                        tracing::warn!(
                            error = error.as_deref().unwrap_or(""),
                            "the store does not answer; nano.v1.Control is NOT_SERVING"
                        );
                        ServingStatus::NotServing
                    };
                    health.set_service_status("nano.v1.Control", status).await;
                }
            }
        });
    }
    let operator_token = plane.operator_token.clone();
    let control = ControlServer::new(control::ControlService::new(plane.clone()))
        .max_decoding_message_size(nano_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(nano_proto::MAX_MESSAGE_BYTES);
    let control = tonic::service::interceptor::InterceptedService::new(control, move |req| {
        check_token(&req, &operator_token, "operator").map(|()| req)
    });
    let node_token = plane.node_token.clone();
    let fleet = FleetServer::new(fleet::FleetService::new(plane.clone(), shutdown.clone()))
        .max_decoding_message_size(MAX_SMALL_MESSAGE_BYTES)
        .max_encoding_message_size(nano_proto::MAX_MESSAGE_BYTES);
    let fleet = tonic::service::interceptor::InterceptedService::new(fleet, move |req| {
        check_token(&req, &node_token, "node").map(|()| req)
    });

    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(
            ServerTlsConfig::new().identity(Identity::from_pem(tls.cert_pem, tls.key_pem)),
        )?;
    }
    let stopping = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            for service in ["", "nano.v1.Control", "nano.v1.Fleet"] {
                health
                    .set_service_status(service, ServingStatus::NotServing)
                    .await;
            }
            tracing::info!("grpc shutting down");
        }
    };
    // Small answers must not wait for a delayed ACK (Nagle's algorithm): that alone cost ~40 ms
    // per nanoctl call (bench/deploy.py).
    let incoming = TcpListenerStream::new(listener).map(|stream| {
        if let Ok(stream) = &stream {
            let _ = stream.set_nodelay(true);
        }
        stream
    });
    let serving = builder
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
        .add_service(health_service)
        .add_service(control)
        .add_service(fleet)
        .serve_with_incoming_shutdown(incoming, stopping);
    // Config and status streams end on shutdown; anything else still open (a health Watch, a
    // slow upload) gets a bounded grace.
    let grace = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = serving => served,
        () = grace => {
            tracing::warn!(grace_secs = SHUTDOWN_GRACE.as_secs(), "calls still open after the grace period; closing them");
            Ok(())
        }
    }
}
