//! Fleet mode: the control-plane client. Subscribes to the control plane's config stream,
//! downloads and verifies the slivers a revision needs, publishes the revision's apps to the
//! reconciler (`reload::reconcile`, the same one a config-file reload goes through) only when all
//! of them are on disk and whole, reports what the node serves once the reconciler says so, and
//! reconnects with jittered backoff. It never touches a pool or the routing table, and keeps
//! reading its stream while apps prepare. The last good state and its slivers are kept in `cache_dir`, so a restart serves them
//! while the control plane is unreachable.

mod state;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use nano_proto::v1::fleet_client::FleetClient;
use nano_proto::v1::{
    AppStatus, DownloadSliverRequest, FleetUpdate, Isolate, NodeStatus, SubscribeRequest, command,
    fleet_update,
};
use nano_sliver::Sliver;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::job::WorkerStats;
use crate::metrics::METRICS;
use crate::reload::{FleetApps, Serving};
pub use state::{FleetApp, LastGood};

/// The node's live isolates, for status reports (read at report time).
pub type IsolateStats = Arc<dyn Fn() -> Vec<Arc<WorkerStats>> + Send + Sync>;

/// How a node joins a fleet.
#[derive(Clone, Debug)]
pub struct FleetOptions {
    pub url: String,
    pub token: String,
    pub node_id: String,
    pub cache_dir: PathBuf,
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot use the fleet cache dir {dir}: {source}")]
    CacheDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the fleet cache dir {dir} is in use by another nano process; give each node its own \
         (--cache-dir or control_plane.cache_dir)"
    )]
    CacheDirInUse { dir: PathBuf },
    #[error("bad control plane address {url:?}: {why}")]
    Url { url: String, why: String },
    #[error("cannot read the CA certificate {path}: {source}")]
    CaCert {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the node token cannot be sent as a header (use printable ASCII)")]
    Token,
    #[error("cannot connect to the control plane: {}", chain(.0))]
    Connect(#[from] tonic::transport::Error),
    #[error("{}", describe_status(.0))]
    Rpc(#[from] tonic::Status),
    #[error("the control plane closed the config stream")]
    Closed,
    #[error("sliver {id} failed verification: {why}")]
    Sliver { id: String, why: String },
}

/// An error with its causes (tonic's transport errors say little on their own).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        source = cause.source();
    }
    text
}

fn describe_status(status: &tonic::Status) -> String {
    match status.code() {
        tonic::Code::Unauthenticated => format!(
            "the control plane refused this node: {} (check --token / NANO_NODE_TOKEN)",
            status.message()
        ),
        code => format!("the control plane answered {code:?}: {}", status.message()),
    }
}

/// Adds the node token to every call.
#[derive(Clone)]
struct Auth(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

type Client = FleetClient<InterceptedService<Channel, Auth>>;

/// A fleet member: its options and what it knows.
pub struct Member {
    options: FleetOptions,
    /// What serves now (persisted after every activation).
    last_good: LastGood,
    /// What the control plane wants, and at which revision.
    desired: BTreeMap<String, FleetApp>,
    desired_revision: u64,
    store_id: String,
    /// The desired state is not active yet (a download or an activation failed): retried.
    pending: bool,
    /// The last revision that could not be activated, and why.
    failure: Option<(u64, String)>,
    /// Apps whose wanted version failed to load: (wanted version, reason).
    app_errors: BTreeMap<String, (u64, String)>,
    /// The revision published to the reconciler whose outcome is not known yet.
    awaiting: Option<u64>,
    /// Slivers verified on disk by this process.
    verified: HashSet<String>,
    /// Held for the process's life: one node per cache dir.
    _lock: std::fs::File,
}

impl Member {
    /// Opens the cache dir and the last good state in it. Slivers that are missing or fail
    /// verification are dropped from it (and fetched again once the control plane answers).
    pub fn open(options: FleetOptions) -> Result<Self, SyncError> {
        let slivers = options.cache_dir.join("slivers");
        std::fs::create_dir_all(&slivers).map_err(|source| SyncError::CacheDir {
            dir: options.cache_dir.clone(),
            source,
        })?;
        let lock = state::lock_dir(&options.cache_dir).map_err(|source| {
            if source.kind() == std::io::ErrorKind::WouldBlock {
                SyncError::CacheDirInUse {
                    dir: options.cache_dir.clone(),
                }
            } else {
                SyncError::CacheDir {
                    dir: options.cache_dir.clone(),
                    source,
                }
            }
        })?;
        let mut last_good = LastGood::load(&options.cache_dir);
        let mut verified = HashSet::new();
        last_good.apps.retain(|host, app| {
            match state::verify_file(
                &state::sliver_path(&options.cache_dir, &app.sliver_id),
                &app.sliver_id,
            ) {
                Ok(()) => {
                    verified.insert(app.sliver_id.clone());
                    true
                }
                Err(why) => {
                    tracing::error!(
                        hostname = %host, sliver = %app.sliver_id, error = %why,
                        "a cached sliver is damaged; the app waits for the control plane"
                    );
                    false
                }
            }
        });
        if !last_good.apps.is_empty() {
            tracing::info!(
                apps = last_good.apps.len(),
                revision = last_good.revision,
                "serving the last good fleet state until the control plane answers"
            );
        }
        METRICS
            .fleet_revision
            .set(i64::try_from(last_good.revision).unwrap_or(i64::MAX));
        Ok(Self {
            desired: last_good.apps.clone(),
            desired_revision: last_good.revision,
            store_id: last_good.store_id.clone(),
            last_good,
            options,
            pending: false,
            failure: None,
            app_errors: BTreeMap::new(),
            awaiting: None,
            verified,
            _lock: lock,
        })
    }

    pub fn node_id(&self) -> &str {
        &self.options.node_id
    }

    /// Whether the control plane took this node out of rotation.
    pub fn drained(&self) -> bool {
        self.last_good.drained
    }

    /// The last good state's apps, as config apps: what the node serves until the control
    /// plane answers.
    pub fn initial(&self) -> FleetApps {
        FleetApps {
            revision: self.last_good.revision,
            apps: self
                .last_good
                .apps
                .values()
                .filter_map(|app| app.to_config(&self.options.cache_dir).ok())
                .collect(),
        }
    }

    /// What this node serves, for the control plane.
    fn status(&self, isolates: &IsolateStats) -> NodeStatus {
        let mut apps = Vec::new();
        let hosts: std::collections::BTreeSet<&String> = self
            .desired
            .keys()
            .chain(self.last_good.apps.keys())
            .collect();
        for host in hosts {
            let serving = self.last_good.apps.get(host);
            let wanted = self.desired.get(host);
            // An error belongs to the version that failed: a newer wanted one is pending until
            // the reconciler has tried it.
            let error = self
                .app_errors
                .get(host)
                .filter(|(version, _)| wanted.is_some_and(|w| w.version == *version));
            let state = match (serving, wanted, error) {
                (_, _, Some(_)) if serving.is_some() => "stale",
                (_, _, Some(_)) => "failed",
                (Some(s), Some(w), None) if s.version == w.version => "serving",
                (Some(_), None, None) => "removing",
                _ => "pending",
            };
            apps.push(AppStatus {
                hostname: host.clone(),
                version: serving.map_or(0, |a| a.version),
                sliver_id: serving.map(|a| a.sliver_id.clone()).unwrap_or_default(),
                state: state.into(),
                wanted_version: wanted.map_or(0, |a| a.version),
                error: error.map(|(_, e)| e.clone()).unwrap_or_default(),
            });
        }
        let isolates = isolates()
            .into_iter()
            .filter(|s| s.is_live())
            .map(|s| {
                let load =
                    |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
                Isolate {
                    node_id: self.options.node_id.clone(),
                    hostname: s.hostname.to_string(),
                    isolate: s.isolate_id(),
                    state: s.state().label().into(),
                    heap_used_bytes: load(&s.heap_used),
                    heap_limit_bytes: load(&s.heap_limit),
                    pressure: crate::limits::memory::Pressure::from_number(
                        s.pressure.load(std::sync::atomic::Ordering::Relaxed),
                    )
                    .label()
                    .into(),
                    requests: load(&s.requests),
                    last_used_ms: load(&s.last_used_ms) as i64,
                }
            })
            .collect();
        let (failed_revision, error) = self.failure.clone().unwrap_or_default();
        NodeStatus {
            node_id: self.options.node_id.clone(),
            revision: self.last_good.revision,
            apps,
            isolates,
            version: env!("CARGO_PKG_VERSION").into(),
            failed_revision,
            error,
            drained: self.last_good.drained,
        }
    }

    /// Takes in an update; returns whether the desired state changed.
    fn take(
        &mut self,
        update: FleetUpdate,
        evicts: &mpsc::UnboundedSender<String>,
        drained: &AtomicBool,
    ) -> bool {
        let new_store = update.store_id != self.store_id;
        match update.kind {
            Some(fleet_update::Kind::Command(command)) => {
                if !command.node_id.is_empty() && command.node_id != self.options.node_id {
                    return false;
                }
                if let Some(command::Kind::Drain(drain)) = &command.kind
                    && drain.drain != self.last_good.drained
                {
                    tracing::info!(
                        drain = drain.drain,
                        "drain set by the control plane; readiness follows"
                    );
                    drained.store(drain.drain, std::sync::atomic::Ordering::Release);
                    self.last_good.drained = drain.drain;
                    if let Err(err) = self.last_good.save(&self.options.cache_dir) {
                        tracing::warn!(error = %err, "cannot persist the drain state");
                    }
                }
                if let Some(command::Kind::Evict(evict)) = command.kind {
                    let _ = evicts.send(evict.hostname);
                }
                false
            }
            Some(fleet_update::Kind::Full(full)) => {
                if !new_store && update.revision < self.desired_revision {
                    tracing::warn!(
                        revision = update.revision,
                        current = self.desired_revision,
                        "ignoring an older revision from the control plane"
                    );
                    return false;
                }
                if new_store && !self.store_id.is_empty() {
                    tracing::warn!("the control plane's database changed; taking its state as is");
                }
                let desired: BTreeMap<String, FleetApp> = full
                    .apps
                    .into_iter()
                    .filter_map(FleetApp::from_proto)
                    .map(|a| (a.hostname.clone(), a))
                    .collect();
                let changed = desired != self.last_good.apps
                    || update.revision != self.last_good.revision
                    || new_store;
                self.desired = desired;
                self.desired_revision = update.revision;
                self.store_id = update.store_id;
                self.pending |= changed;
                changed
            }
            Some(fleet_update::Kind::Delta(delta)) => {
                if new_store || update.revision <= self.desired_revision {
                    tracing::warn!(
                        revision = update.revision,
                        current = self.desired_revision,
                        "ignoring an out-of-order revision from the control plane"
                    );
                    return false;
                }
                for app in delta.upserts.into_iter().filter_map(FleetApp::from_proto) {
                    self.desired.insert(app.hostname.clone(), app);
                }
                for host in delta.removed {
                    self.desired.remove(&host);
                }
                self.desired_revision = update.revision;
                self.pending = true;
                true
            }
            None => false,
        }
    }

    /// Downloads what the desired state lacks, then publishes it to the reconciler; its
    /// outcome comes back through [`Member::activated`]. On failure the current state keeps
    /// serving and the failure is reported.
    async fn activate(
        &mut self,
        client: &mut Client,
        fleet: &watch::Sender<Option<FleetApps>>,
    ) -> Result<(), SyncError> {
        let revision = self.desired_revision;
        let result = self.download_and_publish(client, fleet).await;
        if let Err(err) = &result {
            METRICS
                .fleet_activations
                .with_label_values(&["failed"])
                .inc();
            tracing::error!(
                revision, error = %err,
                "cannot activate the control plane's revision; the current state keeps serving"
            );
            self.failure = Some((revision, err.to_string()));
        }
        result
    }

    async fn download_and_publish(
        &mut self,
        client: &mut Client,
        fleet: &watch::Sender<Option<FleetApps>>,
    ) -> Result<(), SyncError> {
        let dir = self.options.cache_dir.clone();
        let wanted: Vec<String> = self
            .desired
            .values()
            .map(|a| a.sliver_id.clone())
            .filter(|id| !self.verified.contains(id))
            .collect();
        for id in wanted {
            let path = state::sliver_path(&dir, &id);
            if state::verify_file(&path, &id).is_err() {
                let sliver = download(client, &id).await?;
                let write = {
                    let path = path.clone();
                    tokio::task::spawn_blocking(move || {
                        crate::isolate::prepare::write_atomically(&path, sliver.bytes())
                    })
                };
                write
                    .await
                    .expect("writing a file does not panic")
                    .map_err(|source| SyncError::CacheDir {
                        dir: dir.clone(),
                        source,
                    })?;
            }
            self.verified.insert(id);
        }
        let mut apps = Vec::new();
        for app in self.desired.values() {
            apps.push(app.to_config(&dir).map_err(|why| SyncError::Sliver {
                id: app.sliver_id.clone(),
                why,
            })?);
        }
        self.awaiting = Some(self.desired_revision);
        fleet.send_replace(Some(FleetApps {
            revision: self.desired_revision,
            apps,
        }));
        Ok(())
    }

    /// Takes in what the reconciler serves: once it has applied the revision published last,
    /// records what serves (an app whose new version failed keeps its previous one), persists
    /// it, and reports it from then on.
    async fn activated(&mut self, serving: &Serving) {
        let Some(revision) = self.awaiting else {
            return;
        };
        if serving
            .fleet_revision
            .is_none_or(|applied| applied < revision)
        {
            return;
        }
        self.awaiting = None;
        let summary = &serving.summary;
        let dir = self.options.cache_dir.clone();
        let failed: BTreeMap<&String, &String> =
            summary.failed.iter().map(|(h, e)| (h, e)).collect();
        self.app_errors.clear();
        let mut now_serving = BTreeMap::new();
        for (host, app) in &self.desired {
            match failed.get(host) {
                Some(error) => {
                    self.app_errors
                        .insert(host.clone(), (app.version, (*error).clone()));
                    if summary.kept_previous.contains(host)
                        && let Some(previous) = self.last_good.apps.get(host)
                    {
                        now_serving.insert(host.clone(), previous.clone());
                    }
                }
                None => {
                    now_serving.insert(host.clone(), app.clone());
                }
            }
        }
        let drained = self.last_good.drained;
        let previous = std::mem::replace(
            &mut self.last_good,
            LastGood {
                store_id: self.store_id.clone(),
                revision: self.desired_revision,
                apps: now_serving,
                drained,
            },
        );
        // Kept on disk: what serves, what is wanted, and what served before (a rollback then
        // needs no download). Everything else goes, and is no longer known as verified.
        let keep: HashSet<String> = self
            .last_good
            .apps
            .values()
            .chain(self.desired.values())
            .chain(previous.apps.values())
            .map(|a| a.sliver_id.clone())
            .collect();
        self.verified.retain(|id| keep.contains(id));
        let last_good = self.last_good.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let saved = last_good.save(&dir);
            state::prune_slivers(&dir, &keep);
            saved
        })
        .await
        .expect("saving state does not panic");
        if let Err(err) = saved {
            tracing::warn!(error = %err, "cannot persist the fleet state; a restart will wait for the control plane");
        }
        if self.awaiting.is_none() && revision == self.desired_revision {
            self.failure = None;
            self.pending = false;
        }
        METRICS
            .fleet_revision
            .set(i64::try_from(self.last_good.revision).unwrap_or(i64::MAX));
        METRICS.fleet_activations.with_label_values(&["ok"]).inc();
        tracing::info!(
            revision = self.desired_revision,
            apps = self.desired.len(),
            failed = self.app_errors.len(),
            "fleet revision activated"
        );
    }
}

/// Downloads a sliver and checks it is the one asked for.
async fn download(client: &mut Client, id: &str) -> Result<Sliver, SyncError> {
    let mut stream = client
        .download_sliver(DownloadSliverRequest { id: id.to_owned() })
        .await?
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await? {
        if chunk.total_bytes > nano_proto::MAX_SLIVER_BYTES as u64 {
            return Err(SyncError::Sliver {
                id: id.to_owned(),
                why: format!("{} bytes is over the sliver limit", chunk.total_bytes),
            });
        }
        if bytes.is_empty() {
            bytes.reserve(chunk.total_bytes as usize);
        }
        bytes.extend_from_slice(&chunk.data);
        if bytes.len() > nano_proto::MAX_SLIVER_BYTES {
            return Err(SyncError::Sliver {
                id: id.to_owned(),
                why: "the download is over the sliver limit".into(),
            });
        }
    }
    state::verify(bytes, id).map_err(|why| SyncError::Sliver {
        id: id.to_owned(),
        why,
    })
}

async fn connect(options: &FleetOptions) -> Result<Client, SyncError> {
    let bad_url = |why: String| SyncError::Url {
        url: options.url.clone(),
        why,
    };
    let mut endpoint = Endpoint::from_shared(options.url.clone())
        .map_err(|err| bad_url(err.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10));
    if options.url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_webpki_roots();
        if let Some(path) = &options.ca_cert {
            let pem = std::fs::read(path).map_err(|source| SyncError::CaCert {
                path: path.clone(),
                source,
            })?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    let channel = endpoint.connect().await?;
    let token: MetadataValue<_> = nano_proto::bearer(&options.token)
        .parse()
        .map_err(|_| SyncError::Token)?;
    Ok(FleetClient::with_interceptor(channel, Auth(token))
        .max_decoding_message_size(nano_proto::MAX_MESSAGE_BYTES))
}

/// How often a connected node reports its isolates, and retries a pending activation.
const REPORT_EVERY: Duration = Duration::from_secs(2);

/// What connects the fleet client to the rest of the node: it publishes the fleet's apps and
/// evict commands, and reads what is served.
pub struct Links {
    pub fleet: watch::Sender<Option<FleetApps>>,
    pub serving: watch::Receiver<Serving>,
    pub evicts: mpsc::UnboundedSender<String>,
    pub isolates: IsolateStats,
    pub drained: Arc<AtomicBool>,
}

/// One connection: subscribe, report, apply, until the stream breaks or `stop` fires.
/// Returns whether it got as far as receiving the state (the backoff then starts over).
async fn session(
    member: &mut Member,
    links: &mut Links,
    stop: &CancellationToken,
    connected: &mut bool,
) -> Result<(), SyncError> {
    let mut client = connect(&member.options).await?;
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
                    tracing::info!(url = %member.options.url, revision = update.revision, "connected to the control plane");
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

/// Runs the member until `stop` fires.
pub async fn run(mut member: Member, mut links: Links, stop: CancellationToken) {
    let mut backoff = Backoff(0);
    loop {
        let mut connected = false;
        METRICS.fleet_connected.set(0);
        let result = session(&mut member, &mut links, &stop, &mut connected).await;
        METRICS.fleet_connected.set(0);
        if stop.is_cancelled() {
            return;
        }
        if connected {
            backoff = Backoff(0);
        }
        let wait = backoff.next();
        if let Err(err) = result {
            tracing::warn!(
                url = %member.options.url, error = %err, retry_in_ms = wait.as_millis() as u64,
                "control plane unreachable; the last good state keeps serving"
            );
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nano_proto::v1::{App, AppSpec, Delta, FullState};

    fn member(dir: &std::path::Path) -> Member {
        Member::open(FleetOptions {
            url: "http://127.0.0.1:1".into(),
            token: "t".into(),
            node_id: "n1".into(),
            cache_dir: dir.to_owned(),
            ca_cert: None,
        })
        .unwrap()
    }

    fn app(host: &str, version: u64) -> App {
        App {
            spec: Some(AppSpec {
                hostname: host.into(),
                ..Default::default()
            }),
            version,
            sliver_id: format!("{version:064x}"),
            ..Default::default()
        }
    }

    fn full(store: &str, revision: u64, apps: Vec<App>) -> FleetUpdate {
        FleetUpdate {
            revision,
            store_id: store.into(),
            kind: Some(fleet_update::Kind::Full(FullState { apps })),
        }
    }

    fn delta(store: &str, revision: u64, upserts: Vec<App>, removed: &[&str]) -> FleetUpdate {
        FleetUpdate {
            revision,
            store_id: store.into(),
            kind: Some(fleet_update::Kind::Delta(Delta {
                upserts,
                removed: removed.iter().map(|s| s.to_string()).collect(),
            })),
        }
    }

    #[test]
    fn one_node_per_cache_dir() {
        let dir = tempfile::tempdir().unwrap();
        let _first = member(dir.path());
        let options = FleetOptions {
            url: "http://127.0.0.1:1".into(),
            token: "t".into(),
            node_id: "n2".into(),
            cache_dir: dir.path().to_owned(),
            ca_cert: None,
        };
        let err = Member::open(options)
            .err()
            .expect("a second member is refused");
        assert!(err.to_string().contains("in use by another nano"), "{err}");
    }

    #[test]
    fn stale_and_out_of_order_revisions_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = member(dir.path());
        let (routing, _evicted) = mpsc::unbounded_channel::<String>();
        let drained = AtomicBool::new(false);
        assert!(m.take(full("s1", 5, vec![app("a", 1)]), &routing, &drained));
        assert_eq!(m.desired_revision, 5);
        // A delta at or below the current revision, or from another store, changes nothing.
        assert!(!m.take(delta("s1", 5, vec![app("b", 1)], &[]), &routing, &drained));
        assert!(!m.take(delta("s1", 3, vec![app("b", 1)], &[]), &routing, &drained));
        assert!(!m.take(delta("s2", 9, vec![app("b", 1)], &[]), &routing, &drained));
        assert!(!m.desired.contains_key("b"));
        // An older full state from the same store is ignored too.
        assert!(!m.take(full("s1", 4, vec![]), &routing, &drained));
        assert!(m.desired.contains_key("a"));
        // In order: applied.
        assert!(m.take(
            delta("s1", 6, vec![app("b", 1)], &["a"]),
            &routing,
            &drained
        ));
        assert_eq!(m.desired.keys().collect::<Vec<_>>(), vec!["b"]);
        // A different store (a new database) is taken as it is, whatever its revision.
        assert!(m.take(full("s2", 1, vec![app("c", 7)]), &routing, &drained));
        assert_eq!(m.desired_revision, 1);
        assert_eq!(m.desired.keys().collect::<Vec<_>>(), vec!["c"]);
    }

    #[test]
    fn drain_commands_for_other_nodes_are_ignored_and_drains_persist() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = member(dir.path());
        let (routing, _evicted) = mpsc::unbounded_channel::<String>();
        let drained = AtomicBool::new(false);
        let drain = |node: &str, on: bool| FleetUpdate {
            revision: 0,
            store_id: String::new(),
            kind: Some(fleet_update::Kind::Command(nano_proto::v1::Command {
                kind: Some(command::Kind::Drain(nano_proto::v1::DrainNode {
                    drain: on,
                })),
                node_id: node.into(),
            })),
        };
        m.take(drain("n2", true), &routing, &drained);
        assert!(!drained.load(std::sync::atomic::Ordering::Acquire));
        m.take(drain("n1", true), &routing, &drained);
        assert!(drained.load(std::sync::atomic::Ordering::Acquire));
        drop(m);
        assert!(member(dir.path()).drained(), "kept across a restart");
    }
}
