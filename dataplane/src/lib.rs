//! The NANO data plane as a library: `run` serves a validated config on a bound listener until a
//! cancellation token fires. `main.rs` only parses flags and maps errors to exit codes, so tests
//! and benchmarks can run a whole data plane in-process on port 0.

pub mod http;
pub mod isolate;
pub mod limits;
pub mod metrics;
pub mod pool;
pub mod router;
pub mod slivers;
mod webapi;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use nano_config::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::isolate::{AppImage, Preparer};
use crate::pool::AppPool;
use crate::router::{Route, Router};

fn source_label(app: &nano_config::App) -> String {
    match (&app.sliver, &app.entrypoint) {
        (Some(sliver), _) => format!("sliver {}", sliver.display()),
        (None, Some(entry)) => entry.display().to_string(),
        (None, None) => String::new(),
    }
}

/// Prepares every app (in parallel) and starts its pool. An app that fails to load is logged with
/// its file and reason and answers 503 `app-unavailable`; the others serve normally.
pub fn start_apps(config: &Config, preparer: &Preparer) -> Router {
    let prepared: Vec<_> = std::thread::scope(|threads| {
        let handles: Vec<_> = config
            .apps
            .iter()
            .map(|app| {
                std::thread::Builder::new()
                    .name(format!("nano-prepare-{}", app.hostname))
                    .stack_size(isolate::WORKER_STACK_BYTES)
                    .spawn_scoped(threads, move || AppImage::prepare(app, preparer))
                    .expect("the OS can start a thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("app preparation does not panic"))
            .collect()
    });
    let routes = config.apps.iter().zip(prepared).map(|(app, image)| {
        let timeout = Duration::from_secs(app.limits.timeout_secs.into());
        let pool = match image {
            Ok(image) => {
                tracing::info!(
                    hostname = %app.hostname,
                    source = %source_label(app),
                    handler = %image.handler,
                    workers = app.limits.workers,
                    context_reset = app.context_reset,
                    "app loaded"
                );
                AppPool::start(
                    Arc::new(image),
                    app.limits.workers as usize,
                    app.limits.queue_per_worker as usize,
                )
            }
            Err(err) => {
                tracing::error!(
                    hostname = %app.hostname,
                    source = %source_label(app),
                    error = %err,
                    "app failed to load; its requests get 503 until it is fixed"
                );
                AppPool::failed(
                    app.hostname.to_ascii_lowercase().into(),
                    format!("the app failed to load: {err}"),
                )
            }
        };
        Route { pool, timeout }
    });
    Router::new(routes.collect::<Vec<_>>())
}

/// Serves `config` on `listener` (and the admin surface on `admin_listener`, when
/// `admin.listen` is set) until `shutdown` is cancelled, then drains and stops the workers.
pub async fn run(
    config: Config,
    preparer: Preparer,
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    shutdown: CancellationToken,
) {
    let router = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || start_apps(&config, &preparer))
            .await
            .expect("starting apps does not panic")
    };
    let router = Arc::new(router);
    metrics::set_recording(config.admin.metrics);
    let front = Arc::new(http::Front {
        router: router.clone(),
        admin: config.admin.enabled.then(|| config.admin.token.clone()),
        draining: AtomicBool::new(false),
        started: Instant::now(),
        max_body_bytes: config.server.max_body_bytes,
        header_timeout: Duration::from_secs(config.server.header_timeout_secs),
    });
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);

    // The admin listener outlives the tenant drain, so probes see readiness turn 503.
    let admin_stop = CancellationToken::new();
    let admin_task = admin_listener.map(|admin| {
        if let Ok(addr) = admin.local_addr() {
            tracing::info!(admin_addr = %addr, "admin listening");
        }
        let (front, stop) = (front.clone(), admin_stop.clone());
        tokio::spawn(http::serve(
            admin,
            front,
            http::Surface::AdminOnly,
            stop,
            Duration::ZERO,
        ))
    });
    let evictor_stop = CancellationToken::new();
    let evictor = config.node.memory_mb.map(|memory_mb| {
        let limit = u64::from(memory_mb) * 1024 * 1024;
        tokio::spawn(pool::evict::enforce(
            router.clone(),
            limit,
            evictor_stop.clone(),
        ))
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, apps = config.apps.len(), "listening");
    }
    let surface = http::Surface::Tenants {
        admin_here: admin_task.is_none(),
    };
    http::serve(listener, front.clone(), surface, shutdown, grace).await;
    admin_stop.cancel();
    evictor_stop.cancel();
    if let Some(task) = evictor {
        let _ = task.await;
    }
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    drop(front);

    // Connections are closed; stop the workers (they finish any waitUntil work they hold).
    match Arc::try_unwrap(router) {
        Ok(router) => {
            tokio::task::spawn_blocking(move || {
                for route in router.into_routes() {
                    if let Ok(route) = Arc::try_unwrap(route) {
                        route.pool.shutdown();
                    }
                }
            })
            .await
            .expect("stopping workers does not panic");
        }
        Err(_) => {
            tracing::warn!("requests still running after the grace period; not waiting for them")
        }
    }
    tracing::info!("stopped");
}
