//! The NANO data plane as a library: `run` serves a validated config on a bound listener until a
//! cancellation token fires. `main.rs` only parses flags and maps errors to exit codes, so tests
//! and benchmarks can run a whole data plane in-process on port 0.

pub mod cache;
pub mod evict;
pub mod http;
pub mod isolate;
pub mod job;
pub mod limits;
pub mod metrics;
pub mod pool;
pub mod reload;
pub mod router;
pub mod slivers;
pub mod sync;
pub mod tail;
pub mod text;
mod webapi;

#[cfg(test)]
mod tidy;

pub use webapi::fetch::trust_extra_roots as trust_fetch_roots;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use nano_config::Config;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::isolate::Preparer;
use crate::router::{Router, Routing};

/// Time given to idle workers to stop even when the grace period is spent.
const WORKER_STOP_MIN: Duration = Duration::from_millis(500);

/// Serves `config` on `listener` (and the admin surface on `admin_listener`, when
/// `admin.listen` is set) until `shutdown` is cancelled, then drains and stops the workers.
/// With `config_path`, the config and the apps' files are watched and reloaded on change (and
/// on SIGHUP). With `fleet`, the node also serves the control plane's apps (starting from the
/// last good state it kept) and follows the control plane's revisions.
pub async fn run(
    config: Config,
    config_path: Option<PathBuf>,
    fleet: Option<sync::Member>,
    preparer: Preparer,
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    shutdown: CancellationToken,
) {
    let preparer = Arc::new(preparer);
    let drained = Arc::new(AtomicBool::new(
        fleet.as_ref().is_some_and(sync::Member::drained),
    ));
    // Helpers that stop after the tenant listener has drained.
    let helpers = CancellationToken::new();
    let mut tasks = Vec::new();

    // Before any worker starts: each reads it when it creates its isolate.
    metrics::set_recording(config.admin.metrics);
    cache::configure(&config.cache);

    // The sources publish what they want; the reconciler serves it. The first pass (what the
    // config and the last good fleet state hold) is done before the node says it listens.
    let routing = Arc::new(Routing::from_pointee(Router::default()));
    let (local_tx, local_rx) = watch::channel(config.clone());
    let (fleet_tx, fleet_rx) = watch::channel(fleet.as_ref().map(sync::Member::initial));
    let (evicts_tx, evicts_rx) = mpsc::unbounded_channel();
    let (serving_tx, mut serving) = watch::channel(reload::Serving::default());
    tasks.push(tokio::spawn(reload::reconcile(
        config_path.clone(),
        local_rx,
        fleet_rx,
        evicts_rx,
        preparer.clone(),
        routing.clone(),
        serving_tx,
        helpers.clone(),
    )));
    let first = serving
        .wait_for(|s| s.generation >= 1)
        .await
        .expect("the reconciler runs")
        .clone();
    let front = Arc::new(http::Front {
        router: routing.clone(),
        admin: config.admin.enabled.then(|| config.admin.token.clone()),
        draining: AtomicBool::new(false),
        drained: drained.clone(),
        fleet: fleet.is_some(),
        started: Instant::now(),
        max_body_bytes: config.server.max_body_bytes,
        header_timeout: Duration::from_secs(config.server.header_timeout_secs),
        body_timeout: Duration::from_secs(config.server.body_timeout_secs),
        idle_timeout: Duration::from_secs(config.server.idle_timeout_secs),
        max_connections: config.server.max_connections as usize,
        bodies: http::conns::BodyBudget::new(config.server.max_buffered_body_bytes),
        stopping: CancellationToken::new(),
    });
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);

    if let Some(admin) = &admin_listener
        && let Ok(addr) = admin.local_addr()
    {
        tracing::info!(admin_addr = %addr, "admin listening");
    }
    if let Some(admin) = admin_listener {
        // The admin listener outlives the tenant drain, so probes see readiness turn 503.
        let (front, helpers) = (front.clone(), helpers.clone());
        tasks.push(tokio::spawn(async move {
            http::serve(
                admin,
                front,
                http::Surface::AdminOnly,
                helpers,
                Duration::ZERO,
            )
            .await;
        }));
    }
    tasks.push(tokio::spawn(evict::join_ended_workers(
        routing.clone(),
        helpers.clone(),
    )));
    if let Some(memory_mb) = config.node.memory_mb {
        let limit = u64::from(memory_mb) * 1024 * 1024;
        tasks.push(tokio::spawn(evict::enforce(
            routing.clone(),
            preparer.clone(),
            limit,
            helpers.clone(),
        )));
    }
    match config_path {
        // Watching starts before the node says it listens: a change after that is seen.
        Some(path) => {
            let watch = reload::Watch::start(path, &first);
            tasks.push(tokio::spawn(watch.run(
                local_tx,
                serving.clone(),
                helpers.clone(),
            )));
        }
        // Nothing will change the local apps: the reconciler keeps them.
        None => drop(local_tx),
    }
    if let Some(member) = fleet {
        // Its own scheduler, so an overloaded HTTP front never delays config updates and
        // status reports (and the reverse).
        let isolates: sync::IsolateStats = {
            let routing = routing.clone();
            Arc::new(move || {
                routing
                    .load()
                    .routes()
                    .flat_map(|route| route.pool.stats())
                    .collect()
            })
        };
        let links = sync::Links {
            fleet: fleet_tx,
            serving: serving.clone(),
            evicts: evicts_tx,
            isolates,
            drained: drained.clone(),
        };
        let stop = helpers.clone();
        let thread = std::thread::Builder::new()
            .name("nano-sync".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the OS can start the fleet client's runtime");
                let span = tracing::info_span!("fleet", node_id = %member.node_id());
                runtime.block_on(tracing::Instrument::instrument(
                    sync::run(member, links, stop),
                    span,
                ));
            })
            .expect("the OS can start a thread");
        tasks.push(tokio::task::spawn_blocking(move || {
            let _ = thread.join();
        }));
    } else {
        drop((fleet_tx, evicts_tx));
    }
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, apps = routing.load().routes().count(), "listening");
    }
    let surface = http::Surface::Tenants {
        admin_here: front.admin.is_some() && config.admin.listen.is_none(),
    };
    let stopped = http::serve(listener, front.clone(), surface, shutdown, grace).await;
    helpers.cancel();
    for task in tasks {
        let _ = task.await;
    }
    drop(front);

    // Connections are closed; stop the workers (they finish any waitUntil work they hold), within
    // what is left of the grace period: a worker stuck in code V8 cannot interrupt is left behind
    // (the process exit ends it).
    let router = routing.swap(Arc::new(Router::default()));
    let stopping = tokio::task::spawn_blocking(move || match Arc::try_unwrap(router) {
        Ok(router) => {
            for route in router.into_routes() {
                match Arc::try_unwrap(route) {
                    Ok(route) => route.pool.shutdown(),
                    Err(_) => tracing::warn!("a request still holds an app; not waiting for it"),
                }
            }
        }
        Err(_) => {
            tracing::warn!("requests still running after the grace period; not waiting for them")
        }
    });
    let left = grace.saturating_sub(stopped.elapsed());
    let stopped_workers = tokio::time::timeout(left.max(WORKER_STOP_MIN), stopping).await;
    // The workers closed their WebSockets (1001) as they stopped: let the close frames go out
    // and the handshakes finish, within what is left of the grace period.
    http::websocket::SOCKETS.close();
    let left = grace.saturating_sub(stopped.elapsed());
    let _ = tokio::time::timeout(left.max(WORKER_STOP_MIN), http::websocket::SOCKETS.wait()).await;
    if stopped_workers.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "workers still busy after the grace period (stuck in code that cannot be interrupted); exiting without them"
        );
    }
    tracing::info!("stopped");
}
