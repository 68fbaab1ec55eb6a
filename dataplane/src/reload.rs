//! One way from desired state to serving. Each source only publishes the app set it wants on a
//! `watch` channel: the config file (re-read on a change seen by `notify`, or SIGHUP: [`Watch`])
//! and, in fleet mode, the control plane's client (`sync`). One reconciler ([`reconcile`]) owns
//! the routing table: it merges the sources (the fleet's apps first, the config's for the other
//! hostnames), prepares only what changed, swaps the table atomically, and publishes what it
//! serves ([`Serving`]) for whoever reports it. The first start is the same pass as any reload.
//! New requests go to the new isolates; requests in flight finish on the old ones, whose pools
//! stop once the last of them is done. An invalid config or an app that fails to load never
//! replaces what is serving.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nano_config::{App, AppCode, Config, Hostname};
use nano_sliver::sha256_hex;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::isolate::prepare::listing_digest;
use crate::isolate::{self, AppImage, Preparer};
use crate::job::NodeCommand;
use crate::pool::AppPool;
use crate::router::{Route, Router, Routing};

fn source_label(app: &App) -> String {
    match &app.code {
        AppCode::Sliver(sliver) => format!("sliver {}", sliver.display()),
        AppCode::Module(entry) => entry.display().to_string(),
    }
}

/// What an app was built from, so a reload can tell whether it changed: the sliver file's hash,
/// or the digest of every module file's hash. With `recorded` the module hashes are the ones
/// taken when the app was prepared; without, the files are read again from disk. `None` when
/// that cannot be known (a file is gone): such an app is prepared again.
fn fingerprint(app: &App, files: &[(String, String)], recorded: bool) -> Option<String> {
    match &app.code {
        AppCode::Sliver(sliver) => std::fs::read(sliver).ok().map(|bytes| sha256_hex(&bytes)),
        AppCode::Module(_) if recorded => Some(listing_digest(files)),
        AppCode::Module(entry) => {
            let root = entry.parent()?;
            let mut current = Vec::with_capacity(files.len());
            for (name, _) in files {
                let bytes = std::fs::read(root.join(name)).ok()?;
                current.push((name.clone(), sha256_hex(&bytes)));
            }
            Some(listing_digest(&current))
        }
    }
}

/// Prepares `apps` in parallel on a few threads (most are cache hits; the rest wait on a
/// `prepare-app` child each), in the order given.
fn prepare_all(
    apps: &[App],
    preparer: &Arc<Preparer>,
) -> Vec<Result<AppImage, isolate::AppLoadError>> {
    let threads = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .clamp(2, PREPARE_THREADS_MAX)
        .min(apps.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut prepared: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|n| {
                let next = &next;
                std::thread::Builder::new()
                    .name(format!("nano-prepare-{n}"))
                    .spawn_scoped(scope, move || {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(app) = apps.get(i) else { break done };
                            done.push((i, AppImage::prepare(app, preparer)));
                        }
                    })
                    .expect("the OS can start a thread")
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("app preparation does not panic"))
            .collect()
    });
    prepared.sort_by_key(|(i, _)| *i);
    prepared.into_iter().map(|(_, image)| image).collect()
}

/// Most threads preparing apps at once, however many cores.
const PREPARE_THREADS_MAX: usize = 8;

fn route_for(app: &App, image: Result<AppImage, isolate::AppLoadError>) -> Route {
    let timeout = Duration::from_secs(app.limits.timeout_secs.into());
    match image {
        Ok(image) => {
            tracing::info!(
                hostname = %app.hostname,
                source = %source_label(app),
                handler = %image.handler,
                workers = app.limits.workers,
                context_reset = app.context_reset,
                "app loaded"
            );
            let files: Vec<(String, String)> = image.files.clone();
            let fingerprint = fingerprint(app, &files, true);
            let pool = AppPool::start(
                Arc::new(image),
                app.limits.workers as usize,
                app.limits.queue_per_worker as usize,
            );
            Route {
                pool,
                timeout,
                app: app.clone(),
                files,
                fingerprint,
                sockets: Default::default(),
            }
        }
        Err(err) => {
            tracing::error!(
                hostname = %app.hostname,
                source = %source_label(app),
                kind = err.kind(),
                error = %err,
                "app failed to load; its requests get 503 until it is fixed"
            );
            let pool = AppPool::failed(
                app.hostname.as_str().into(),
                format!("the app failed to load: {err}"),
            );
            Route {
                pool,
                timeout,
                app: app.clone(),
                files: Vec::new(),
                fingerprint: None,
                sockets: Default::default(),
            }
        }
    }
}

/// What a reload did, for the log and the tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
    /// Apps whose new version failed to load: their previous version keeps serving.
    pub kept_previous: Vec<String>,
    /// Every app that failed to load (with or without a previous version), with the reason.
    pub failed: Vec<(String, String)>,
}

/// The apps a node serves: the fleet's (from the control plane) first, then the local config's
/// for hostnames the fleet does not serve.
pub fn merge_fleet_apps(local: &Config, fleet: Option<&[App]>) -> Config {
    let mut config = local.clone();
    if let Some(fleet) = fleet {
        let taken: HashSet<&Hostname> = fleet.iter().map(|a| &a.hostname).collect();
        config.apps = fleet
            .iter()
            .cloned()
            .chain(
                local
                    .apps
                    .iter()
                    .filter(|a| !taken.contains(&a.hostname))
                    .cloned(),
            )
            .collect();
    }
    config
}

/// The fleet's apps as the control plane's client publishes them, with the revision they are.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetApps {
    pub revision: u64,
    pub apps: Vec<App>,
}

/// What the reconciler serves, published after each pass.
#[derive(Debug, Clone, Default)]
pub struct Serving {
    /// Passes done (0: none yet).
    pub generation: u64,
    /// The fleet revision the pass applied (None: no fleet apps).
    pub fleet_revision: Option<u64>,
    pub summary: Arc<ReloadSummary>,
    /// The config file and every file the config's apps were loaded from (a change to one is a
    /// reason to reload); the fleet's slivers change only through the control plane.
    pub watched: Arc<HashSet<PathBuf>>,
    /// The config's apps that loaded, so the file watch can tell whether one changed before
    /// it began.
    pub loaded: Arc<Vec<Loaded>>,
}

/// A config app that loaded: the files it was built from and their fingerprint.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub app: App,
    pub files: Vec<(String, String)>,
    pub fingerprint: String,
}

/// Owns the routing table: applies what the sources publish, until `stop` fires. `evicts` are
/// the control plane's commands for the node's apps (replace an app's isolates, close the
/// WebSockets of a drained node).
#[allow(clippy::too_many_arguments)]
pub async fn reconcile(
    config_path: Option<PathBuf>,
    mut local: watch::Receiver<Config>,
    mut fleet: watch::Receiver<Option<FleetApps>>,
    mut evicts: mpsc::UnboundedReceiver<NodeCommand>,
    preparer: Arc<Preparer>,
    routing: Arc<Routing>,
    serving: watch::Sender<Serving>,
    stop: CancellationToken,
) {
    let (mut local_open, mut fleet_open) = (true, true);
    let mut generation = 0;
    loop {
        let config = local.borrow_and_update().clone();
        let wanted_fleet = fleet.borrow_and_update().clone();
        let merged = merge_fleet_apps(&config, wanted_fleet.as_ref().map(|f| f.apps.as_slice()));
        let summary = {
            let (routing, preparer, first) = (routing.clone(), preparer.clone(), generation == 0);
            tokio::task::spawn_blocking(move || apply(&merged, &routing, &preparer, first))
                .await
                .expect("applying apps does not panic")
        };
        generation += 1;
        let fleet_hosts: HashSet<String> = wanted_fleet
            .iter()
            .flat_map(|f| &f.apps)
            .map(|a| a.hostname.to_string())
            .collect();
        let (watched, loaded) = local_view(config_path.as_deref(), &routing.load(), &fleet_hosts);
        serving.send_replace(Serving {
            generation,
            fleet_revision: wanted_fleet.map(|f| f.revision),
            summary: Arc::new(summary),
            watched: Arc::new(watched),
            loaded: Arc::new(loaded),
        });
        // Until a source publishes again.
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = local.changed(), if local_open => match changed {
                    Ok(()) => break,
                    Err(_) => local_open = false,
                },
                changed = fleet.changed(), if fleet_open => match changed {
                    Ok(()) => break,
                    Err(_) => fleet_open = false,
                },
                Some(command) = evicts.recv() => match command {
                    NodeCommand::Evict(hostname) => {
                        if let Some(route) = routing.load().route(&hostname) {
                            tracing::info!(hostname = %hostname, "evicting isolates on the control plane's command");
                            route.pool.evict_all();
                        }
                    }
                    NodeCommand::CloseSockets => {
                        tracing::info!("drained: closing every WebSocket so their clients reconnect elsewhere");
                        for route in routing.load().routes() {
                            route.pool.close_sockets();
                        }
                    }
                },
            }
        }
    }
}

/// The files of the config's apps (not the fleet's) in `router`, and those that loaded.
fn local_view(
    config_path: Option<&Path>,
    router: &Router,
    fleet_hosts: &HashSet<String>,
) -> (HashSet<PathBuf>, Vec<Loaded>) {
    let mut files: HashSet<PathBuf> = config_path.iter().map(|p| p.to_path_buf()).collect();
    let mut loaded = Vec::new();
    for route in router
        .routes()
        .filter(|r| !fleet_hosts.contains(r.pool.hostname()))
    {
        match &route.app.code {
            AppCode::Sliver(sliver) => {
                files.insert(sliver.to_path_buf());
            }
            AppCode::Module(entry) => {
                files.insert(entry.to_path_buf());
                if let Some(root) = entry.parent() {
                    files.extend(route.files.iter().map(|(name, _)| root.join(name)));
                }
            }
        }
        if let Some(fingerprint) = &route.fingerprint {
            loaded.push(Loaded {
                app: route.app.clone(),
                files: route.files.clone(),
                fingerprint: fingerprint.clone(),
            });
        }
    }
    let files = files
        .into_iter()
        .map(|f| std::path::absolute(&f).unwrap_or(f))
        .collect();
    (files, loaded)
}

/// Prepares what changed between `config` and what `routing` serves, and swaps the table.
/// Blocking (apps are prepared in child processes); run it off the async threads.
fn apply(
    config: &Config,
    routing: &Routing,
    preparer: &Arc<Preparer>,
    first: bool,
) -> ReloadSummary {
    let current = routing.load_full();
    let mut summary = ReloadSummary::default();
    let mut keep: HashMap<String, Arc<Route>> = HashMap::new();
    let mut to_prepare = Vec::new();
    for app in &config.apps {
        let host = app.hostname.to_string();
        match current.route(&host) {
            Some(route)
                if route.app == *app
                    && route.fingerprint.is_some()
                    && route.fingerprint == fingerprint(app, &route.files, false) =>
            {
                summary.unchanged.push(host.clone());
                keep.insert(host, route.clone());
            }
            Some(_) => {
                summary.changed.push(host);
                to_prepare.push(app.clone());
            }
            None => {
                summary.added.push(host);
                to_prepare.push(app.clone());
            }
        }
    }
    let wanted: HashSet<String> = config.apps.iter().map(|a| a.hostname.to_string()).collect();
    summary.removed = current
        .routes()
        .map(|r| r.pool.hostname().to_owned())
        .filter(|h| !wanted.contains(h))
        .collect();

    let images = prepare_all(&to_prepare, preparer);
    for (app, image) in to_prepare.iter().zip(images) {
        let host = app.hostname.to_string();
        let previous = current.route(&host).filter(|r| r.pool.failure().is_none());
        match (image, previous) {
            (Err(err), Some(previous)) => {
                tracing::error!(
                    hostname = %host, kind = err.kind(), error = %err,
                    "the new version failed to load; the previous version keeps serving"
                );
                summary.kept_previous.push(host.clone());
                summary.failed.push((host.clone(), err.to_string()));
                keep.insert(host, previous.clone());
            }
            (image, _) => {
                if let Err(err) = &image {
                    summary.failed.push((host.clone(), err.to_string()));
                }
                keep.insert(host, Arc::new(route_for(app, image)));
            }
        }
    }
    // Swap: from here new requests see the new table; requests holding old routes finish
    // there, and an old pool stops when its last route reference is dropped.
    routing.store(Arc::new(Router::from_routes(keep.into_values())));
    // A removed app's Cache API entries go with it; a new version of an app keeps them.
    for host in &summary.removed {
        crate::cache::STORE.drop_app(host);
    }
    crate::cache::configure(&config.cache);
    for list in [
        &mut summary.added,
        &mut summary.changed,
        &mut summary.removed,
        &mut summary.unchanged,
    ] {
        list.sort();
    }
    if !first {
        tracing::info!(
            added = ?summary.added, changed = ?summary.changed, removed = ?summary.removed,
            unchanged = summary.unchanged.len(), kept_previous = ?summary.kept_previous,
            "config reloaded"
        );
    }
    summary
}

/// Reads the config file for a reload: `None` (logged with every problem) when it is invalid,
/// so the previous one keeps serving.
fn read_config(path: &Path, current: &Config) -> Option<Config> {
    let config = match nano_config::load(path) {
        Ok(config) => config,
        Err(err) => {
            // One line per log event: the problems are joined.
            let problems = err.to_string().replace("\n  - ", " | ");
            tracing::error!(error = %problems, "config reload rejected; the previous config keeps serving");
            return None;
        }
    };
    if config.server != current.server
        || config.admin != current.admin
        || config.node != current.node
        || config.control_plane != current.control_plane
    {
        tracing::warn!(
            "server, admin, node and control_plane settings change only on restart; \
             reloading the apps"
        );
    }
    Some(config)
}

/// Whether the config file, or a file a loaded app of it was built from, differs from what
/// `serving` was made from (an app that failed to load is not compared: nothing of it was
/// recorded).
fn has_drifted(path: &Path, current: &Config, serving: &Serving) -> bool {
    if nano_config::load(path).map_or(true, |config| config != *current) {
        return true;
    }
    serving
        .loaded
        .iter()
        .any(|l| fingerprint(&l.app, &l.files, false).as_ref() != Some(&l.fingerprint))
}

/// The config file as a source: watches it and its apps' files, and on a change (or SIGHUP)
/// publishes the config again. Started before the node announces it is listening, so a change
/// made once it serves is never missed; a change made between the first read and the start of
/// the watch is caught by a drift check when [`Watch::run`] begins.
pub struct Watch {
    path: PathBuf,
    watcher: Option<notify::RecommendedWatcher>,
    events: mpsc::UnboundedReceiver<PathBuf>,
    dirs: HashSet<PathBuf>,
    files: HashSet<PathBuf>,
}

impl Watch {
    /// Registers the watches for the files `serving` was made from.
    pub fn start(path: PathBuf, serving: &Serving) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel::<PathBuf>();
        let watcher =
            match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && !matches!(event.kind, notify::EventKind::Access(_))
                {
                    for path in event.paths {
                        let _ = events_tx.send(path);
                    }
                }
            }) {
                Ok(watcher) => Some(watcher),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot watch files; reload with SIGHUP");
                    None
                }
            };
        let mut watch = Self {
            path,
            watcher,
            events,
            dirs: HashSet::new(),
            files: HashSet::new(),
        };
        watch.follow(&serving.watched);
        watch
    }

    /// Watches the folders of `files` (editors replace files by renaming) and no others.
    fn follow(&mut self, files: &HashSet<PathBuf>) {
        use notify::{RecursiveMode, Watcher};
        if let Some(watcher) = self.watcher.as_mut() {
            let dirs: HashSet<PathBuf> = files
                .iter()
                .filter_map(|f| f.parent().map(Path::to_path_buf))
                .collect();
            for dir in dirs.difference(&self.dirs) {
                if let Err(err) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                    tracing::warn!(dir = %dir.display(), error = %err, "cannot watch a folder");
                }
            }
            for dir in self.dirs.difference(&dirs) {
                let _ = watcher.unwatch(dir);
            }
            self.dirs = dirs;
        }
        self.files = files.clone();
    }

    /// Publishes the config on `local` when it or an app's files change, or on SIGHUP, and
    /// follows the files of what is served, until `stop` fires.
    pub async fn run(
        mut self,
        local: watch::Sender<Config>,
        mut serving: watch::Receiver<Serving>,
        stop: CancellationToken,
    ) {
        use tokio::signal::unix::{SignalKind, signal};

        let mut hangup = signal(SignalKind::hangup()).expect("SIGHUP handler installs");
        let drifted = {
            let (path, current, now) = (
                self.path.clone(),
                local.borrow().clone(),
                serving.borrow_and_update().clone(),
            );
            tokio::task::spawn_blocking(move || has_drifted(&path, &current, &now))
                .await
                .unwrap_or(false)
        };
        let mut pending = drifted.then_some("changed while starting");
        loop {
            let trigger = match pending.take() {
                Some(trigger) => trigger,
                None => tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = hangup.recv() => "SIGHUP",
                    Ok(()) = serving.changed() => {
                        let files = serving.borrow_and_update().watched.clone();
                        self.follow(&files);
                        continue;
                    }
                    Some(path) = self.events.recv() => {
                        let path = std::path::absolute(&path).unwrap_or(path);
                        if !self.files.contains(&path) {
                            continue;
                        }
                        "file change"
                    }
                },
            };
            // Let a burst of writes (an editor saving, a deploy copying files) settle first.
            tokio::time::sleep(Duration::from_millis(150)).await;
            while self.events.try_recv().is_ok() {}
            tracing::info!(trigger = %trigger, "reload requested");
            let read = {
                let (path, current) = (self.path.clone(), local.borrow().clone());
                tokio::task::spawn_blocking(move || read_config(&path, &current))
                    .await
                    .expect("reading the config does not panic")
            };
            if let Some(config) = read {
                // Sent even when equal: an app's own files may have changed.
                local.send_replace(config);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(host: &str, entry: &str) -> App {
        serde_json::from_value(serde_json::json!({ "hostname": host, "entrypoint": entry }))
            .unwrap()
    }

    #[test]
    fn a_config_edited_before_the_watch_began_is_seen_as_drift() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nano.json");
        std::fs::write(&path, r#"{ "server": { "port": 0 } }"#).unwrap();
        let local = nano_config::load(&path).unwrap();
        let serving = Serving::default();
        assert!(!has_drifted(&path, &local, &serving), "unchanged");
        std::fs::write(&path, r#"{ "server": { "port": 1 } }"#).unwrap();
        assert!(has_drifted(&path, &local, &serving), "edited");
        std::fs::write(&path, "{ not json").unwrap();
        assert!(
            has_drifted(&path, &local, &serving),
            "broken (the reload reports why)"
        );
    }

    #[test]
    fn the_fleet_wins_a_hostname_and_local_apps_fill_in() {
        let mut local = nano_config::parse("{}", Path::new(".")).unwrap();
        local.apps = vec![app("a.test", "local-a.js"), app("b.test", "local-b.js")];
        assert_eq!(
            merge_fleet_apps(&local, None).apps,
            local.apps,
            "standalone"
        );
        let fleet = vec![app("B.test", "fleet-b.js"), app("c.test", "fleet-c.js")];
        let merged = merge_fleet_apps(&local, Some(&fleet));
        let entries: Vec<_> = merged
            .apps
            .iter()
            .map(|a| a.code.path().to_owned())
            .collect();
        assert_eq!(
            entries,
            vec![
                PathBuf::from("fleet-b.js"),
                PathBuf::from("fleet-c.js"),
                PathBuf::from("local-a.js")
            ]
        );
    }
}
