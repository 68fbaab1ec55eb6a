//! Starting apps and hot reload. `start_apps` prepares apps in parallel and starts their pools;
//! `Reloader` re-reads the config (on a file change seen by `notify`, or SIGHUP), prepares only
//! what changed, and swaps the routing table atomically: new requests go to the new isolates,
//! requests in flight finish on the old ones, whose pools stop once the last of them is done.
//! An invalid config or an app that fails to load never replaces what is serving.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nano_config::{App, Config};
use nano_sliver::sha256_hex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::isolate::prepare::listing_digest;
use crate::isolate::{self, AppImage, Preparer};
use crate::pool::AppPool;
use crate::router::{Route, Router, Routing};

fn source_label(app: &App) -> String {
    match (&app.sliver, &app.entrypoint) {
        (Some(sliver), _) => format!("sliver {}", sliver.display()),
        (None, Some(entry)) => entry.display().to_string(),
        (None, None) => String::new(),
    }
}

/// What an app was built from, so a reload can tell whether it changed: the sliver file's hash,
/// or the digest of every module file's hash. With `recorded` the module hashes are the ones
/// taken when the app was prepared; without, the files are read again from disk. `None` when
/// that cannot be known (a file is gone): such an app is prepared again.
fn fingerprint(app: &App, files: &[(String, String)], recorded: bool) -> Option<String> {
    match (&app.sliver, &app.entrypoint) {
        (Some(sliver), _) => std::fs::read(sliver).ok().map(|bytes| sha256_hex(&bytes)),
        (None, Some(_)) if recorded => Some(listing_digest(files)),
        (None, Some(entry)) => {
            let root = entry.parent()?;
            let mut current = Vec::with_capacity(files.len());
            for (name, _) in files {
                let bytes = std::fs::read(root.join(name)).ok()?;
                current.push((name.clone(), sha256_hex(&bytes)));
            }
            Some(listing_digest(&current))
        }
        (None, None) => None,
    }
}

/// Prepares `apps` in parallel (one thread each; the work happens in `prepare-app` children).
fn prepare_all(apps: &[App], preparer: &Preparer) -> Vec<Result<AppImage, isolate::AppLoadError>> {
    std::thread::scope(|threads| {
        let handles: Vec<_> = apps
            .iter()
            .map(|app| {
                std::thread::Builder::new()
                    .name(format!("nano-prepare-{}", app.hostname))
                    .spawn_scoped(threads, move || AppImage::prepare(app, preparer))
                    .expect("the OS can start a thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("app preparation does not panic"))
            .collect()
    })
}

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
            }
        }
        Err(err) => {
            tracing::error!(
                hostname = %app.hostname,
                source = %source_label(app),
                error = %err,
                "app failed to load; its requests get 503 until it is fixed"
            );
            let pool = AppPool::failed(
                app.hostname.to_ascii_lowercase().into(),
                format!("the app failed to load: {err}"),
            );
            Route {
                pool,
                timeout,
                app: app.clone(),
                files: Vec::new(),
                fingerprint: None,
            }
        }
    }
}

/// Prepares every app (in parallel) and starts its pool. An app that fails to load is logged with
/// its file and reason and answers 503 `app-unavailable`; the others serve normally.
pub fn start_apps(config: &Config, preparer: &Preparer) -> Router {
    let images = prepare_all(&config.apps, preparer);
    Router::from_routes(
        config
            .apps
            .iter()
            .zip(images)
            .map(|(app, image)| Arc::new(route_for(app, image))),
    )
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
        let taken: HashSet<String> = fleet
            .iter()
            .map(|a| nano_config::normalize_host_header(&a.hostname))
            .collect();
        config.apps = fleet
            .iter()
            .cloned()
            .chain(
                local
                    .apps
                    .iter()
                    .filter(|a| !taken.contains(&nano_config::normalize_host_header(&a.hostname)))
                    .cloned(),
            )
            .collect();
    }
    config
}

/// Applies new app sets and swaps the routing table: the config file's (on a reload) and, in
/// fleet mode, the control plane's.
pub struct Reloader {
    config_path: Option<PathBuf>,
    local: Config,
    fleet_apps: Option<Vec<App>>,
    preparer: Arc<Preparer>,
    routing: Arc<Routing>,
}

impl Reloader {
    /// `config_path`: the file to re-read on reload (none for the embedded example);
    /// `fleet_apps`: the control plane's apps, in fleet mode.
    pub fn new(
        config_path: Option<PathBuf>,
        local: Config,
        fleet_apps: Option<Vec<App>>,
        preparer: Arc<Preparer>,
        routing: Arc<Routing>,
    ) -> Self {
        Self {
            config_path,
            local,
            fleet_apps,
            preparer,
            routing,
        }
    }

    /// Files whose change should trigger a reload: the config and every app's sources.
    pub fn watched_files(&self) -> HashSet<PathBuf> {
        let mut files: HashSet<PathBuf> = self.config_path.iter().cloned().collect();
        for route in self.local_routes() {
            if let Some(sliver) = &route.app.sliver {
                files.insert(sliver.clone());
            }
            if let Some(entry) = &route.app.entrypoint {
                files.insert(entry.clone());
                if let Some(root) = entry.parent() {
                    files.extend(route.files.iter().map(|(name, _)| root.join(name)));
                }
            }
        }
        files
            .into_iter()
            .map(|f| std::path::absolute(&f).unwrap_or(f))
            .collect()
    }

    /// Whether the config file or a loaded app's files differ from what is serving (an app that
    /// failed to load is not compared: nothing of it was recorded).
    pub fn has_drifted(&self) -> bool {
        let Some(path) = &self.config_path else {
            return false;
        };
        if nano_config::load(path).map_or(true, |config| config != self.local) {
            return true;
        }
        self.local_routes().iter().any(|route| {
            route.fingerprint.is_some()
                && route.fingerprint != fingerprint(&route.app, &route.files, false)
        })
    }

    /// The routes serving apps from the config file: the fleet's slivers change only through
    /// the control plane, never by editing.
    fn local_routes(&self) -> Vec<Arc<Route>> {
        let fleet: HashSet<String> = self
            .fleet_apps
            .iter()
            .flatten()
            .map(|a| nano_config::normalize_host_header(&a.hostname))
            .collect();
        self.routing
            .load()
            .routes()
            .filter(|r| !fleet.contains(&nano_config::normalize_host_header(r.pool.hostname())))
            .cloned()
            .collect()
    }

    /// Re-reads the config file and applies it. Blocking (prepares apps); run it off the async
    /// threads. `None` when the new config is invalid (the previous one keeps serving).
    pub fn reload(&mut self) -> Option<ReloadSummary> {
        let path = self.config_path.clone()?;
        let config = match nano_config::load(&path) {
            Ok(config) => config,
            Err(err) => {
                // One line per log event: the problems are joined.
                let problems = err.to_string().replace("\n  - ", " | ");
                tracing::error!(error = %problems, "config reload rejected; the previous config keeps serving");
                return None;
            }
        };
        if config.server != self.local.server
            || config.admin != self.local.admin
            || config.node != self.local.node
            || config.control_plane != self.local.control_plane
        {
            tracing::warn!(
                "server, admin, node and control_plane settings change only on restart; \
                 reloading the apps"
            );
        }
        self.local = config;
        Some(self.apply())
    }

    /// Replaces the fleet's apps and applies them. Blocking, like [`Reloader::reload`].
    pub fn set_fleet_apps(&mut self, apps: Vec<App>) -> ReloadSummary {
        self.fleet_apps = Some(apps);
        self.apply()
    }

    /// Prepares what changed and swaps the routing table.
    fn apply(&mut self) -> ReloadSummary {
        let config = merge_fleet_apps(&self.local, self.fleet_apps.as_deref());
        let current = self.routing.load_full();
        let mut summary = ReloadSummary::default();
        let mut keep: HashMap<String, Arc<Route>> = HashMap::new();
        let mut to_prepare = Vec::new();
        for app in &config.apps {
            let host = nano_config::normalize_host_header(&app.hostname);
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
        let wanted: HashSet<String> = config
            .apps
            .iter()
            .map(|a| nano_config::normalize_host_header(&a.hostname))
            .collect();
        summary.removed = current
            .routes()
            .map(|r| nano_config::normalize_host_header(r.pool.hostname()))
            .filter(|h| !wanted.contains(h))
            .collect();

        let images = prepare_all(&to_prepare, &self.preparer);
        for (app, image) in to_prepare.iter().zip(images) {
            let host = nano_config::normalize_host_header(&app.hostname);
            let previous = current.route(&host).filter(|r| r.pool.failure().is_none());
            match (image, previous) {
                (Err(err), Some(previous)) => {
                    tracing::error!(
                        hostname = %host, error = %err,
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
        self.routing
            .store(Arc::new(Router::from_routes(keep.into_values())));
        for list in [
            &mut summary.added,
            &mut summary.changed,
            &mut summary.removed,
            &mut summary.unchanged,
        ] {
            list.sort();
        }
        tracing::info!(
            added = ?summary.added, changed = ?summary.changed, removed = ?summary.removed,
            unchanged = summary.unchanged.len(), kept_previous = ?summary.kept_previous,
            "config reloaded"
        );
        summary
    }
}

/// The reloader, even if a reload panicked while holding it (the routing table is swapped whole,
/// so a half-done reload leaves nothing inconsistent behind).
pub fn lock(reloader: &Mutex<Reloader>) -> MutexGuard<'_, Reloader> {
    reloader.lock().unwrap_or_else(|p| p.into_inner())
}

/// Watches the config and the apps' files. Started before the node announces it is listening,
/// so a change made once it serves is never missed; a change made between the first read and the
/// start of the watch is caught by a drift check when [`Watch::run`] begins.
pub struct Watch {
    watcher: Option<notify::RecommendedWatcher>,
    events: mpsc::UnboundedReceiver<PathBuf>,
    dirs: HashSet<PathBuf>,
    files: HashSet<PathBuf>,
}

impl Watch {
    /// Registers the watches for what `reloader` serves now.
    pub fn start(reloader: &Mutex<Reloader>) -> Self {
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
            watcher,
            events,
            dirs: HashSet::new(),
            files: HashSet::new(),
        };
        watch.follow(lock(reloader).watched_files());
        watch
    }

    /// Watches the folders of `files` (editors replace files by renaming) and no others.
    fn follow(&mut self, files: HashSet<PathBuf>) {
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
        self.files = files;
    }

    /// Reloads when the config or an app's files change, or on SIGHUP, until `stop` fires.
    pub async fn run(mut self, reloader: Arc<Mutex<Reloader>>, stop: CancellationToken) {
        use tokio::signal::unix::{SignalKind, signal};

        let mut hangup = signal(SignalKind::hangup()).expect("SIGHUP handler installs");
        let drifted = {
            let reloader = reloader.clone();
            tokio::task::spawn_blocking(move || lock(&reloader).has_drifted())
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
            let summary = {
                let reloader = reloader.clone();
                tokio::task::spawn_blocking(move || lock(&reloader).reload())
                    .await
                    .expect("reloading does not panic")
            };
            if summary.is_some() {
                let files = lock(&reloader).watched_files();
                self.follow(files);
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
        let reloader = Reloader::new(
            Some(path.clone()),
            local,
            None,
            Arc::new(Preparer::new(PathBuf::from("nano"), None, 0)),
            Arc::new(Routing::from_pointee(Router::default())),
        );
        assert!(!reloader.has_drifted(), "unchanged");
        std::fs::write(&path, r#"{ "server": { "port": 1 } }"#).unwrap();
        assert!(reloader.has_drifted(), "edited");
        std::fs::write(&path, "{ not json").unwrap();
        assert!(reloader.has_drifted(), "broken (the reload reports why)");
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
            .map(|a| a.entrypoint.clone().unwrap())
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
