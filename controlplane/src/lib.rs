//! The NANO control plane as a library: [`run`] opens the store and serves gRPC (Control, Fleet,
//! health) and the `/_admin` HTTP surface until a cancellation token fires, then flushes the
//! store. `main.rs` only parses flags and maps errors to exit codes.

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
use store::{Store, StoreError};

/// Everything the services share.
pub struct Plane {
    pub store: Store,
    pub fleet: fleet::Fleet,
    pub metrics: metrics::Metrics,
    pub operator_token: String,
    pub node_token: String,
    pub started: Instant,
    pub stopping: AtomicBool,
}

/// How to run a control plane.
pub struct Options {
    pub data_dir: PathBuf,
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

/// Opens the store in `options.data_dir` (failing fast if another process holds it).
pub fn open(options: &Options) -> Result<Arc<Plane>, StoreError> {
    let store = Store::open(&options.data_dir)?;
    let fleet = fleet::Fleet::new(store.revision()?, store.nodes()?);
    Ok(Arc::new(Plane {
        store,
        fleet,
        metrics: metrics::Metrics::new(),
        operator_token: options.operator_token.clone(),
        node_token: options.node_token.clone(),
        started: Instant::now(),
        stopping: AtomicBool::new(false),
    }))
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
        tracing::info!(grpc_addr = %addr, tls = tls.is_some(), revision = plane.store.revision()?, "grpc listening");
    }
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
