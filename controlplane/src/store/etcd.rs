//! The replicated backend: etcd, shared by any number of control-plane replicas.
//!
//! Keys, all under `--etcd-prefix` (default `/nano`):
//!
//! | key | value |
//! | --- | --- |
//! | `meta/store_id`, `meta/revision` | the cluster's id; its config revision (decimal) |
//! | `apps/HOST` | the current [`App`] |
//! | `history/HOST/VERSION` (20 digits) | a kept [`App`] |
//! | `sliver-index/ID` | a whole sliver's size (written after its chunks) |
//! | `slivers/ID/N` (6 digits) | the sliver's N-th chunk of [`CHUNK_BYTES`] |
//! | `deploys/DEPLOY_ID` | a deploy's [`DeployResponse`], for retries |
//! | `drains/NODE` | present while the node is out of rotation |
//! | `nodes/NODE` | the node's last reported [`Node`] |
//! | `live/NODE` | [`LiveNode`], under the lease of the replica the node is connected to |
//! | `commands/KEY` | a [`Command`] for the nodes, put and deleted at once (read from the watch) |
//!
//! Every change of apps is one transaction that bumps `meta/revision` and is taken only if
//! `meta/revision` did not move since the change read the state (optimistic concurrency: a
//! conflict with another replica retries). A deploy's transaction also requires its sliver's
//! index key, which is written after all its chunks: a sliver collected meanwhile by another
//! replica makes the deploy write it again. Collection deletes a sliver only if `meta/revision`
//! did not move since it read the references. A read verifies the sliver's hash.
//!
//! etcd is async (tonic); the store's calls block, so the store owns a small runtime that runs
//! them, the replica's lease keeper and its watch.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};

use nano_proto::v1::{App, Command, DeployResponse, Isolate, LiveNode, Node, TailBatch, TailLine};
use prost::Message;
use tokio::sync::broadcast;

use super::{
    ClusterEvent, DEPLOY_IDS_KEPT_MS, Deploy, LiveNodes, Store, StoreError, TailRates, decode,
};

/// Where replica `replica` records that its tails follow `host` (under its lease; the value is
/// their highest sample rate).
fn tail_key(prefix: &str, host: &str, replica: &str) -> String {
    format!("{prefix}/tails/{host}/{replica}")
}

/// Bytes per stored sliver chunk: well under etcd's default request limit (1.5 MiB).
pub const CHUNK_BYTES: usize = 512 * 1024;

/// How long one etcd call may take before the store reports etcd unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times a change is retried against concurrent changes from other replicas.
const ATTEMPTS: u32 = 16;

/// How to reach etcd.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    pub endpoints: Vec<String>,
    /// Key prefix of this cluster (several clusters may share one etcd).
    pub prefix: String,
    pub ca_cert_pem: Option<Vec<u8>>,
    /// Client certificate and key, for etcd's `--client-cert-auth`.
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    pub user: Option<(String, String)>,
    /// Stored slivers may take at most this many bytes (a share of etcd's database quota).
    pub sliver_budget_bytes: u64,
    /// The replica's lease: nodes connected to a replica that died show as disconnected
    /// within this time.
    pub lease_ttl_secs: i64,
}

/// The store on etcd.
pub struct EtcdStore {
    runtime: Option<tokio::runtime::Runtime>,
    client: Client,
    endpoints: String,
    prefix: String,
    store_id: String,
    /// This replica's lease (0 while it has none).
    lease: Arc<AtomicI64>,
    events: broadcast::Sender<ClusterEvent>,
    sliver_budget_bytes: u64,
    /// The nodes connected here, by their `live/` key: put again under a new lease.
    live: Arc<std::sync::Mutex<std::collections::HashMap<String, Connected>>>,
    /// Names this replica's keys that must not outlive it or be read back by it (tails).
    replica_id: String,
    /// The apps this replica's tails follow, as recorded in etcd (`tails/HOST/REPLICA`).
    tailed: Arc<std::sync::Mutex<TailRates>>,
    /// Numbers this replica's relayed tail batches.
    relayed: std::sync::atomic::AtomicU64,
}

/// A node connected to this replica: its record, and what was last written of it (lease, what
/// its report says, when), so a report that changes nothing but counters is written at most
/// every [`REWRITE_EVERY`].
struct Connected {
    record: LiveNode,
    written: Option<(i64, u64, std::time::Instant)>,
}

/// How often a node's unchanged report is written again (for its isolates' counters).
const REWRITE_EVERY: Duration = Duration::from_secs(10);

/// What a status report says that matters to other replicas at once: revision, apps, drain,
/// version and which isolates run (not their counters, nor the time).
fn shape(node: &Node, isolates: &[Isolate]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    Node {
        last_seen_ms: 0,
        ..node.clone()
    }
    .encode_to_vec()
    .hash(&mut hasher);
    for isolate in isolates {
        (
            &isolate.hostname,
            &isolate.isolate,
            &isolate.state,
            &isolate.pressure,
        )
            .hash(&mut hasher);
    }
    hasher.finish()
}

fn etcd_error(endpoints: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Etcd {
        endpoints: endpoints.to_owned(),
        why: why.to_string(),
    }
}

fn decimal(kv: Option<&KeyValue>) -> u64 {
    kv.and_then(|kv| std::str::from_utf8(kv.value()).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The key-values of a transaction's `n`-th operation (a get).
fn kvs(responses: &[TxnOpResponse], n: usize) -> &[KeyValue] {
    match responses.get(n) {
        Some(TxnOpResponse::Get(get)) => get.kvs(),
        _ => &[],
    }
}

fn records<M: Message + Default>(kvs: &[KeyValue]) -> Result<Vec<M>, StoreError> {
    kvs.iter().map(|kv| decode(kv.key(), kv.value())).collect()
}

fn prefixed() -> Option<GetOptions> {
    Some(GetOptions::new().with_prefix())
}

impl EtcdStore {
    /// Connects, makes sure the cluster has a store id, and starts the replica's lease and
    /// watch. Fails when etcd cannot be reached (a replica without etcd has nothing to serve).
    pub fn connect(options: EtcdOptions) -> Result<Self, StoreError> {
        let endpoints = options.endpoints.join(",");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("nano-etcd")
            .enable_all()
            .build()
            .map_err(|err| etcd_error(&endpoints, err))?;
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(CALL_TIMEOUT)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3))
            .with_keep_alive_while_idle(true);
        if let Some((user, password)) = &options.user {
            connect = connect.with_user(user, password);
        }
        if options.ca_cert_pem.is_some() || options.identity_pem.is_some() {
            let mut tls = etcd_client::TlsOptions::new();
            if let Some(ca) = &options.ca_cert_pem {
                tls = tls.ca_certificate(etcd_client::Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &options.identity_pem {
                tls = tls.identity(etcd_client::Identity::from_pem(cert, key));
            }
            connect = connect.with_tls(tls);
        }
        let client = runtime
            .block_on(async {
                tokio::time::timeout(
                    CALL_TIMEOUT,
                    Client::connect(options.endpoints.clone(), Some(connect)),
                )
                .await
                .map_err(|_| "connecting timed out".to_string())?
                .map_err(|err| err.to_string())
            })
            .map_err(|why| etcd_error(&endpoints, why))?;
        let prefix = options.prefix.trim_end_matches('/').to_owned();
        let mut store = Self {
            runtime: Some(runtime),
            client,
            endpoints,
            prefix,
            store_id: String::new(),
            lease: Arc::new(AtomicI64::new(0)),
            events: broadcast::Sender::new(256),
            sliver_budget_bytes: options.sliver_budget_bytes,
            live: Arc::default(),
            replica_id: super::new_id()?,
            tailed: Arc::default(),
            relayed: std::sync::atomic::AtomicU64::new(0),
        };
        store.store_id = store.ensure_store_id()?;
        store.start_lease(options.lease_ttl_secs.max(2));
        store.start_watch();
        store.collect_slivers()?;
        Ok(store)
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the store")
    }

    fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.prefix)
    }

    /// The key that records this replica's tails of `host`.
    fn own_tail_key(&self, host: &str) -> String {
        tail_key(&self.prefix, host, &self.replica_id)
    }

    /// Runs one etcd call to completion (from a blocking thread), bounded by [`CALL_TIMEOUT`].
    /// A transient failure (a leader election, a member down while others are up) is tried
    /// again within that time: every call here is safe to repeat (puts and deletes are
    /// idempotent, and a switch repeated after it was applied fails its revision check).
    fn call<T, F>(&self, work: impl Fn(Client) -> F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + CALL_TIMEOUT;
        self.runtime().block_on(async {
            let mut pause = Duration::from_millis(50);
            loop {
                let attempt = tokio::time::timeout_at(deadline, work(self.client.clone())).await;
                let err = match attempt {
                    Ok(Ok(answer)) => return Ok(answer),
                    Ok(Err(err)) => err,
                    Err(_) => {
                        return Err(etcd_error(
                            &self.endpoints,
                            "the call timed out (no quorum?)",
                        ));
                    }
                };
                let transient = match &err {
                    etcd_client::Error::GRpcStatus(status) => matches!(
                        status.code(),
                        tonic::Code::Unavailable | tonic::Code::Unknown
                    ),
                    etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
                    _ => false,
                };
                if !transient || tokio::time::Instant::now() + pause >= deadline {
                    return Err(etcd_error(&self.endpoints, err));
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
        })
    }

    fn get(&self, key: String, options: Option<GetOptions>) -> Result<Vec<KeyValue>, StoreError> {
        let mut response = self.call(|mut c| {
            let (key, options) = (key.clone(), options.clone());
            async move { c.get(key, options).await }
        })?;
        Ok(response.take_kvs())
    }

    fn put_key(&self, key: String, value: impl Into<Vec<u8>>) -> Result<(), StoreError> {
        let value = value.into();
        self.call(|mut c| {
            let (key, value) = (key.clone(), value.clone());
            async move { c.put(key, value, None).await }
        })?;
        Ok(())
    }

    fn delete_key(&self, key: impl Into<Vec<u8>>) -> Result<(), StoreError> {
        let key = key.into();
        self.call(|mut c| {
            let key = key.clone();
            async move { c.delete(key, None).await }
        })?;
        Ok(())
    }

    fn txn(&self, txn: Txn) -> Result<(bool, Vec<TxnOpResponse>), StoreError> {
        let response = self.call(|mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })?;
        Ok((response.succeeded(), response.op_responses()))
    }

    /// The cluster's id: created by the first replica (`migrate` then writes the sled
    /// store's over it).
    fn ensure_store_id(&self) -> Result<String, StoreError> {
        let key = self.key("meta/store_id");
        let fresh = super::new_id()?;
        let (created, responses) = self.txn(
            Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.clone(), fresh.clone(), None)])
                .or_else([TxnOp::get(key, None)]),
        )?;
        if created {
            return Ok(fresh);
        }
        Ok(kvs(&responses, 0)
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
            .unwrap_or(fresh))
    }

    /// Keeps a lease for this replica: granted at start and kept alive; when the keep-alive
    /// stream breaks (say, the member it was on died) it is opened again on the same lease as
    /// long as the lease can still be alive. Only a lease that expired (etcd away longer than
    /// its TTL) is replaced, and the records of the nodes connected here are put again under
    /// the new one at once.
    fn start_lease(&self, ttl: i64) {
        let client = self.client.clone();
        let lease = self.lease.clone();
        let live = self.live.clone();
        let tailed = self.tailed.clone();
        let tail_key = {
            let (prefix, replica) = (self.prefix.clone(), self.replica_id.clone());
            move |host: &str| tail_key(&prefix, host, &replica)
        };
        let endpoints = self.endpoints.clone();
        let ttl_duration = Duration::from_secs(ttl as u64);
        let every = Duration::from_millis((ttl as u64 * 1000) / 3);
        self.runtime().spawn(async move {
            loop {
                let mut leases = client.lease_client();
                let granted = match tokio::time::timeout(CALL_TIMEOUT, leases.grant(ttl, None)).await
                {
                    Ok(Ok(granted)) => granted.id(),
                    Ok(Err(err)) => {
                        tracing::warn!(etcd = %endpoints, error = %err, "cannot get a lease from etcd; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                    Err(_) => {
                        tracing::warn!(etcd = %endpoints, "etcd did not grant a lease in time; retrying");
                        continue;
                    }
                };
                lease.store(granted, Ordering::Relaxed);
                tracing::info!(lease = format!("{granted:x}"), ttl_secs = ttl, "replica lease granted");
                // The nodes connected here, under the new lease.
                let records: Vec<(String, LiveNode)> = live
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .map(|(k, v)| (k.clone(), v.record.clone()))
                    .collect();
                let mut puts: Vec<(String, Vec<u8>)> = records
                    .into_iter()
                    .map(|(key, mut record)| {
                        record.replica = format!("{granted:x}");
                        (key, record.encode_to_vec())
                    })
                    .collect();
                // And the apps tailed here.
                let rates: TailRates = tailed.lock().unwrap_or_else(|p| p.into_inner()).clone();
                puts.extend(
                    rates
                        .iter()
                        .map(|(host, rate)| (tail_key(host), rate.to_string().into_bytes())),
                );
                for (key, value) in puts {
                    let mut c = client.clone();
                    let put = c.put(key, value, Some(PutOptions::new().with_lease(granted)));
                    let _ = tokio::time::timeout(CALL_TIMEOUT, put).await;
                }
                let mut renewed = tokio::time::Instant::now();
                'alive: loop {
                    let opened = tokio::time::timeout(CALL_TIMEOUT, leases.keep_alive(granted)).await;
                    if let Ok(Ok((mut keeper, mut answers))) = opened {
                        loop {
                            if keeper.keep_alive().await.is_err() {
                                break;
                            }
                            match tokio::time::timeout(CALL_TIMEOUT, answers.message()).await {
                                Ok(Ok(Some(answer))) if answer.ttl() > 0 => {
                                    renewed = tokio::time::Instant::now();
                                }
                                Ok(Ok(Some(_))) => break 'alive,
                                _ => break,
                            }
                            tokio::time::sleep(every).await;
                        }
                    }
                    if renewed.elapsed() >= ttl_duration {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tracing::warn!(lease = format!("{granted:x}"), "replica lease expired; its nodes show as disconnected until a new one is granted");
                lease.store(0, Ordering::Relaxed);
            }
        });
    }

    /// Watches the revision, the command keys, the other replicas' tails and the tail lines
    /// they relay; sends what it sees to [`Store::events`]. A watch that breaks or was
    /// compacted away starts again from the current state (the subscribers then compute their
    /// deltas from the full state; the tailed apps are read whole).
    fn start_watch(&self) {
        let client = self.client.clone();
        let events = self.events.clone();
        let revision_key = self.key("meta/revision");
        let commands_key = self.key("commands/");
        let tails_key = self.key("tails/");
        let lines_key = self.key("tail-lines/");
        let own_lines = self.key(&format!("tail-lines/{}/", self.replica_id));
        let own_suffix = format!("/{}", self.replica_id);
        let endpoints = self.endpoints.clone();
        self.runtime().spawn(async move {
            // Apps tailed by other replicas: tails/HOST/REPLICA keys, each holding the highest
            // sample rate among that replica's tails of the app (a value that does not parse,
            // as "1" from before rates were recorded, counts as every request).
            let remote = |tails: &std::collections::BTreeMap<Vec<u8>, f64>| -> TailRates {
                let mut rates = TailRates::new();
                for (key, rate) in tails {
                    let Ok(key) = std::str::from_utf8(key) else { continue };
                    let Some(rest) = key.strip_prefix(&tails_key) else { continue };
                    if key.ends_with(&own_suffix) {
                        continue;
                    }
                    let Some(host) = rest.split('/').next() else { continue };
                    let highest = rates.entry(host.to_owned()).or_insert(0.0);
                    *highest = highest.max(*rate);
                }
                rates
            };
            let rate_of = |value: &[u8]| -> f64 {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|r| (0.0..=1.0).contains(r))
                    .unwrap_or(1.0)
            };
            loop {
                let mut c = client.clone();
                let current = tokio::time::timeout(
                    CALL_TIMEOUT,
                    c.txn(Txn::new().and_then([
                        TxnOp::get(revision_key.clone(), None),
                        TxnOp::get(tails_key.clone(), Some(GetOptions::new().with_prefix())),
                    ])),
                )
                .await;
                let Ok(Ok(current)) = current else {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                let start = current.header().map_or(0, |h| h.revision()) + 1;
                let responses = current.op_responses();
                let _ = events.send(ClusterEvent::Revision(decimal(kvs(&responses, 0).first())));
                let mut tails: std::collections::BTreeMap<Vec<u8>, f64> =
                    kvs(&responses, 1).iter().map(|kv| (kv.key().to_vec(), rate_of(kv.value()))).collect();
                let mut tailed = remote(&tails);
                let _ = events.send(ClusterEvent::Tailed(tailed.clone()));
                let options = |prefix: bool| {
                    let options = WatchOptions::new().with_start_revision(start);
                    Some(if prefix { options.with_prefix() } else { options })
                };
                let watch = |key: String, prefix: bool| {
                    let mut c = client.clone();
                    async move { tokio::time::timeout(CALL_TIMEOUT, c.watch(key, options(prefix))).await }
                };
                let (Ok(Ok(mut revisions)), Ok(Ok(mut commands)), Ok(Ok(mut tail_keys)), Ok(Ok(mut lines))) = (
                    watch(revision_key.clone(), false).await,
                    watch(commands_key.clone(), true).await,
                    watch(tails_key.clone(), true).await,
                    watch(lines_key.clone(), true).await,
                ) else {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                loop {
                    let answer = tokio::select! {
                        answer = revisions.message() => answer,
                        answer = commands.message() => answer,
                        answer = tail_keys.message() => answer,
                        answer = lines.message() => answer,
                    };
                    let answer = match answer {
                        Ok(Some(answer)) if !answer.canceled() => answer,
                        Ok(Some(answer)) => {
                            tracing::warn!(etcd = %endpoints, reason = answer.cancel_reason(), compacted = answer.compact_revision(), "etcd watch cancelled; starting again from the full state");
                            break;
                        }
                        Ok(None) | Err(_) => {
                            tracing::warn!(etcd = %endpoints, "etcd watch broke; starting again from the full state");
                            break;
                        }
                    };
                    let mut tails_changed = false;
                    for event in answer.events() {
                        let Some(kv) = event.kv() else { continue };
                        let key = kv.key();
                        let put = event.event_type() == etcd_client::EventType::Put;
                        if key.starts_with(tails_key.as_bytes()) {
                            if put {
                                tails.insert(key.to_vec(), rate_of(kv.value()));
                            } else {
                                tails.remove(key);
                            }
                            tails_changed = true;
                        } else if !put {
                            continue;
                        } else if key == revision_key.as_bytes() {
                            let _ = events.send(ClusterEvent::Revision(decimal(Some(kv))));
                        } else if key.starts_with(lines_key.as_bytes()) {
                            if !key.starts_with(own_lines.as_bytes())
                                && let Ok(batch) = TailBatch::decode(kv.value())
                            {
                                let _ = events.send(ClusterEvent::TailLines(batch.lines));
                            }
                        } else if let Ok(command) = Command::decode(kv.value()) {
                            let _ = events.send(ClusterEvent::Command(command));
                        }
                    }
                    if tails_changed {
                        let now = remote(&tails);
                        if now != tailed {
                            tailed = now;
                            let _ = events.send(ClusterEvent::Tailed(tailed.clone()));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    /// Reads the revision (with its key's mod revision) and `gets`, all at one etcd revision.
    fn read(&self, gets: Vec<TxnOp>) -> Result<(u64, i64, Vec<TxnOpResponse>), StoreError> {
        let mut ops = vec![TxnOp::get(self.key("meta/revision"), None)];
        ops.extend(gets);
        let (_, mut responses) = self.txn(Txn::new().and_then(ops))?;
        let meta = kvs(&responses, 0).first();
        let (revision, modified) = (decimal(meta), meta.map_or(0, KeyValue::mod_revision));
        responses.remove(0);
        Ok((revision, modified, responses))
    }

    fn history_prefix(&self, host: &str) -> String {
        self.key(&format!("history/{host}/"))
    }

    fn history_key(&self, host: &str, version: u64) -> String {
        self.key(&format!("history/{host}/{version:020}"))
    }

    /// Commits `ops` plus the revision bump if the revision did not move since `modified`
    /// (and `extra` holds). Returns the new revision, or `None` on a conflict.
    fn switch(
        &self,
        revision: u64,
        modified: i64,
        extra: Vec<Compare>,
        mut ops: Vec<TxnOp>,
    ) -> Result<Option<u64>, StoreError> {
        let key = self.key("meta/revision");
        let next = revision + 1;
        ops.push(TxnOp::put(key.clone(), next.to_string(), None));
        let mut compares = vec![Compare::mod_revision(key, CompareOp::Equal, modified)];
        compares.extend(extra);
        let (succeeded, _) = self.txn(Txn::new().when(compares).and_then(ops))?;
        Ok(succeeded.then_some(next))
    }

    /// Writes a sliver (chunks, then its index key) unless it is stored; refuses one that
    /// would exceed the budget.
    fn put_sliver(&self, id: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let index = self.key(&format!("sliver-index/{id}"));
        if !self.get(index.clone(), None)?.is_empty() {
            return Ok(());
        }
        let (stored, _) = self.sliver_usage()?;
        let total = stored + bytes.len() as u64;
        if total > self.sliver_budget_bytes {
            return Err(StoreError::OverBudget {
                bytes: bytes.len() as u64,
                total,
                budget: self.sliver_budget_bytes,
            });
        }
        for (n, chunk) in bytes.chunks(CHUNK_BYTES).enumerate() {
            let key = self.key(&format!("slivers/{id}/{n:06}"));
            let value = chunk.to_vec();
            self.put_key(key, value)?;
        }
        let size = bytes.len().to_string();
        self.put_key(index, size)?;
        Ok(())
    }

    /// Removes slivers no kept version refers to, if no change came between.
    fn collect_slivers(&self) -> Result<(), StoreError> {
        let (_, modified, responses) = self.read(vec![
            TxnOp::get(self.key("apps/"), prefixed()),
            TxnOp::get(self.key("history/"), prefixed()),
            TxnOp::get(
                self.key("sliver-index/"),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            ),
        ])?;
        let mut referenced = std::collections::HashSet::new();
        for kv in kvs(&responses, 0).iter().chain(kvs(&responses, 1)) {
            let app: App = decode(kv.key(), kv.value())?;
            referenced.insert(app.sliver_id);
        }
        let index = self.key("sliver-index/");
        let unreferenced: Vec<String> = kvs(&responses, 2)
            .iter()
            .filter_map(|kv| {
                let key = String::from_utf8_lossy(kv.key());
                let id = key.strip_prefix(&index)?.to_owned();
                (!referenced.contains(&id)).then_some(id)
            })
            .collect();
        for batch in unreferenced.chunks(32) {
            let mut ops = Vec::new();
            for id in batch {
                ops.push(TxnOp::delete(self.key(&format!("sliver-index/{id}")), None));
                ops.push(TxnOp::delete(
                    self.key(&format!("slivers/{id}/")),
                    Some(etcd_client::DeleteOptions::new().with_prefix()),
                ));
            }
            let compare =
                Compare::mod_revision(self.key("meta/revision"), CompareOp::Equal, modified);
            let (succeeded, _) = self.txn(Txn::new().when([compare]).and_then(ops))?;
            if !succeeded {
                // A change came between; the replica that made it collects after it.
                break;
            }
        }
        Ok(())
    }

    fn forget_deploy_ids(&self, now_ms: i64) -> Result<(), StoreError> {
        for kv in self.get(self.key("deploys/"), prefixed())? {
            let answer: DeployResponse = decode(kv.key(), kv.value())?;
            if now_ms - answer.app.map_or(0, |a| a.deployed_at_ms) > DEPLOY_IDS_KEPT_MS {
                let key = kv.key().to_vec();
                self.delete_key(key)?;
            }
        }
        Ok(())
    }

    /// Copies a sled store's content here (`migrate`); the prefix must be empty.
    pub fn import(&self, dump: super::sled::Dump) -> Result<(), StoreError> {
        for (id, bytes) in &dump.slivers {
            self.put_sliver(id, bytes)?;
        }
        let mut ops = Vec::new();
        for app in &dump.history {
            let host = app.spec.as_ref().map(|s| s.hostname.as_str()).unwrap_or("");
            ops.push(TxnOp::put(
                self.history_key(host, app.version),
                app.encode_to_vec(),
                None,
            ));
        }
        for app in &dump.apps {
            let host = app.spec.as_ref().map(|s| s.hostname.as_str()).unwrap_or("");
            ops.push(TxnOp::put(
                self.key(&format!("apps/{host}")),
                app.encode_to_vec(),
                None,
            ));
        }
        for node in &dump.nodes {
            ops.push(TxnOp::put(
                self.key(&format!("nodes/{}", node.node_id)),
                node.encode_to_vec(),
                None,
            ));
        }
        for node in &dump.drains {
            ops.push(TxnOp::put(self.key(&format!("drains/{node}")), "1", None));
        }
        // etcd takes at most 128 operations per transaction (its default); the revision goes
        // last, so a crash midway leaves the prefix without a revision: run migrate again
        // after clearing it. The store id is the sled store's, so the nodes' revisions stay
        // comparable.
        ops.push(TxnOp::put(
            self.key("meta/store_id"),
            dump.store_id.clone(),
            None,
        ));
        for batch in ops.chunks(100) {
            self.txn(Txn::new().and_then(batch.to_vec()))?;
        }
        let key = self.key("meta/revision");
        let revision = dump.revision.to_string();
        self.put_key(key, revision)?;
        Ok(())
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        // Revoke the lease (the nodes connected here show as disconnected at once), then stop
        // the runtime without blocking (this may run on an async thread).
        let lease = self.lease.load(Ordering::Relaxed);
        if lease != 0 {
            let mut leases = self.client.lease_client();
            let _ = std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        self.runtime().block_on(async {
                            tokio::time::timeout(Duration::from_secs(2), leases.revoke(lease)).await
                        })
                    })
                    .join()
            });
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Store for EtcdStore {
    fn describe(&self) -> String {
        format!("etcd at {} under {}/", self.endpoints, self.prefix)
    }

    fn store_id(&self) -> &str {
        &self.store_id
    }

    fn revision(&self) -> Result<u64, StoreError> {
        Ok(decimal(self.get(self.key("meta/revision"), None)?.first()))
    }

    fn app(&self, host: &str) -> Result<Option<App>, StoreError> {
        self.get(self.key(&format!("apps/{host}")), None)?
            .first()
            .map(|kv| decode(kv.key(), kv.value()))
            .transpose()
    }

    fn history(&self, host: &str) -> Result<Vec<App>, StoreError> {
        records(&self.get(self.history_prefix(host), prefixed())?)
    }

    fn state(&self) -> Result<(u64, Vec<App>), StoreError> {
        let (revision, _, responses) =
            self.read(vec![TxnOp::get(self.key("apps/"), prefixed())])?;
        Ok((revision, records(kvs(&responses, 0))?))
    }

    fn sliver(&self, id: &str) -> Result<Option<bytes::Bytes>, StoreError> {
        let Some(size) = self
            .get(self.key(&format!("sliver-index/{id}")), None)?
            .first()
            .map(|kv| decimal(Some(kv)) as usize)
        else {
            return Ok(None);
        };
        let mut bytes = Vec::with_capacity(size);
        for n in 0..size.div_ceil(CHUNK_BYTES) {
            let key = self.key(&format!("slivers/{id}/{n:06}"));
            let chunk = self.get(key.clone(), None)?;
            let chunk = chunk.first().ok_or_else(|| StoreError::Corrupt {
                key: key.clone(),
                why: "the chunk is missing".into(),
            })?;
            bytes.extend_from_slice(chunk.value());
        }
        if bytes.len() != size || nano_sliver::sha256_hex(&bytes) != id {
            return Err(StoreError::Corrupt {
                key: self.key(&format!("slivers/{id}/")),
                why: format!(
                    "the chunks ({} bytes) do not hash to the sliver's id",
                    bytes.len()
                ),
            });
        }
        Ok(Some(bytes.into()))
    }

    fn sliver_usage(&self) -> Result<(u64, u64), StoreError> {
        let kvs = self.get(self.key("sliver-index/"), prefixed())?;
        Ok((
            kvs.iter().map(|kv| decimal(Some(kv))).sum(),
            kvs.len() as u64,
        ))
    }

    fn deploy(&self, deploy: Deploy<'_>) -> Result<DeployResponse, StoreError> {
        let host = deploy.spec.hostname.clone();
        let record = self.key(&format!("deploys/{}", deploy.deploy_id));
        for _ in 0..ATTEMPTS {
            if !deploy.deploy_id.is_empty()
                && let Some(kv) = self.get(record.clone(), None)?.first()
            {
                return decode(kv.key(), kv.value());
            }
            let (revision, modified, responses) = self.read(vec![
                TxnOp::get(self.key(&format!("apps/{host}")), None),
                TxnOp::get(self.history_prefix(&host), prefixed()),
            ])?;
            let current: Option<App> = records(kvs(&responses, 0))?.pop();
            let history: Vec<App> = records(kvs(&responses, 1))?;
            super::check_owner(&deploy.spec, current.as_ref())?;
            let current_version = current.map(|a| a.version);
            // 1. The sliver, whole before anything refers to it.
            self.put_sliver(deploy.sliver_id, deploy.sliver)?;
            let (version, pruned) = super::next_version(&history, current_version);
            let app = super::new_app(&deploy, version);
            let answer = DeployResponse {
                app: Some(app.clone()),
                revision: revision + 1,
                previous_version: current_version.unwrap_or(0),
            };
            let encoded = app.encode_to_vec();
            let mut ops = vec![
                TxnOp::put(self.key(&format!("apps/{host}")), encoded.clone(), None),
                TxnOp::put(self.history_key(&host, version), encoded, None),
            ];
            ops.extend(
                pruned
                    .iter()
                    .map(|v| TxnOp::delete(self.history_key(&host, *v), None)),
            );
            if !deploy.deploy_id.is_empty() {
                ops.push(TxnOp::put(record.clone(), answer.encode_to_vec(), None));
            }
            let sliver = self.key(&format!("sliver-index/{}", deploy.sliver_id));
            // 2. The switch, taken only if nothing moved and the sliver is still there.
            let extra = vec![Compare::version(sliver, CompareOp::Greater, 0)];
            if self.switch(revision, modified, extra, ops)?.is_none() {
                continue;
            }
            if !pruned.is_empty() {
                self.collect_slivers()?;
            }
            self.forget_deploy_ids(deploy.now_ms)?;
            return Ok(answer);
        }
        Err(StoreError::Contended(ATTEMPTS))
    }

    fn rollback(&self, host: &str, to: u64) -> Result<(App, u64), StoreError> {
        for _ in 0..ATTEMPTS {
            let (revision, modified, responses) = self.read(vec![
                TxnOp::get(self.key(&format!("apps/{host}")), None),
                TxnOp::get(self.history_prefix(host), prefixed()),
            ])?;
            let current: App = records(kvs(&responses, 0))?
                .pop()
                .ok_or_else(|| StoreError::NoApp(host.to_owned()))?;
            let history: Vec<App> = records(kvs(&responses, 1))?;
            let target = super::rollback_target(host, &current, &history, to)?;
            let ops = vec![TxnOp::put(
                self.key(&format!("apps/{host}")),
                target.encode_to_vec(),
                None,
            )];
            if let Some(revision) = self.switch(revision, modified, vec![], ops)? {
                return Ok((target, revision));
            }
        }
        Err(StoreError::Contended(ATTEMPTS))
    }

    fn delete(&self, host: &str) -> Result<u64, StoreError> {
        for _ in 0..ATTEMPTS {
            let (revision, modified, responses) =
                self.read(vec![TxnOp::get(self.key(&format!("apps/{host}")), None)])?;
            if kvs(&responses, 0).is_empty() {
                return Err(StoreError::NoApp(host.to_owned()));
            }
            let ops = vec![
                TxnOp::delete(self.key(&format!("apps/{host}")), None),
                TxnOp::delete(
                    self.history_prefix(host),
                    Some(etcd_client::DeleteOptions::new().with_prefix()),
                ),
            ];
            if let Some(revision) = self.switch(revision, modified, vec![], ops)? {
                self.collect_slivers()?;
                return Ok(revision);
            }
        }
        Err(StoreError::Contended(ATTEMPTS))
    }

    fn put_node(&self, node: &Node, isolates: &[Isolate]) -> Result<(), StoreError> {
        let lease = self.lease.load(Ordering::Relaxed);
        let shape = shape(node, isolates);
        let now = std::time::Instant::now();
        let live_key = self.key(&format!("live/{}", node.node_id));
        let record = LiveNode {
            node: Some(node.clone()),
            isolates: isolates.to_vec(),
            replica: format!("{lease:x}"),
        };
        {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((l, s, at)) = live.get(&live_key).and_then(|c| c.written)
                && (l, s) == (lease, shape)
                && now.duration_since(at) < REWRITE_EVERY
            {
                return Ok(());
            }
            // Not marked written until the write succeeds: a failed one is retried at the next
            // report.
            live.insert(
                live_key.clone(),
                Connected {
                    record: record.clone(),
                    written: None,
                },
            );
        }
        let mut ops = vec![TxnOp::put(
            self.key(&format!("nodes/{}", node.node_id)),
            node.encode_to_vec(),
            None,
        )];
        if lease != 0 {
            ops.push(TxnOp::put(
                live_key.clone(),
                record.encode_to_vec(),
                Some(PutOptions::new().with_lease(lease)),
            ));
        }
        self.txn(Txn::new().and_then(ops))?;
        if lease != 0
            && let Some(connected) = self
                .live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&live_key)
        {
            connected.written = Some((lease, shape, now));
        }
        Ok(())
    }

    fn node_left(&self, node_id: &str) -> Result<(), StoreError> {
        let lease = self.lease.load(Ordering::Relaxed);
        let key = self.key(&format!("live/{node_id}"));
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        // Only if it is still ours: the node may already be connected to another replica.
        self.txn(
            Txn::new()
                .when([Compare::lease(key.clone(), CompareOp::Equal, lease)])
                .and_then([TxnOp::delete(key, None)]),
        )?;
        Ok(())
    }

    fn nodes(&self) -> Result<Vec<Node>, StoreError> {
        records(&self.get(self.key("nodes/"), prefixed())?)
    }

    fn set_drained(&self, node_id: &str, drained: bool) -> Result<(), StoreError> {
        let key = self.key(&format!("drains/{node_id}"));
        if drained {
            self.put_key(key, "1")?;
        } else {
            self.delete_key(key)?;
        }
        Ok(())
    }

    fn drained(&self, node_id: &str) -> Result<bool, StoreError> {
        Ok(!self
            .get(self.key(&format!("drains/{node_id}")), None)?
            .is_empty())
    }

    fn shared(&self) -> bool {
        true
    }

    fn live_nodes(&self) -> Result<Option<LiveNodes>, StoreError> {
        let live: Vec<LiveNode> = records(&self.get(self.key("live/"), prefixed())?)?;
        Ok(Some(
            live.into_iter()
                .filter_map(|l| l.node.map(|node| (node, l.isolates)))
                .collect(),
        ))
    }

    fn broadcast(&self, command: &Command) -> Result<bool, StoreError> {
        let mut random = [0u8; 8];
        let _ = getrandom::fill(&mut random);
        let key = self.key(&format!(
            "commands/{}-{}",
            crate::fleet::now_ms(),
            hex::encode(random)
        ));
        let value = command.encode_to_vec();
        // The watchers see the put; the key need not stay (etcd refuses a put and a delete of
        // one key in a transaction, hence two calls; a key left by a crash between is harmless).
        let put = key.clone();
        self.put_key(put, value)?;
        self.delete_key(key)?;
        Ok(true)
    }

    fn set_tailed(&self, rates: &TailRates) -> Result<(), StoreError> {
        let mut tailed = self.tailed.lock().unwrap_or_else(|p| p.into_inner());
        let lease = self.lease.load(Ordering::Relaxed);
        for (host, rate) in rates {
            if tailed.get(host) == Some(rate) {
                continue;
            }
            if lease != 0 {
                // Without a lease yet, the lease keeper puts it once it has one (never without
                // one: the key must go with this replica).
                let key = self.own_tail_key(host);
                let options = PutOptions::new().with_lease(lease);
                let value = rate.to_string();
                self.call(|mut c| {
                    let (key, options, value) = (key.clone(), options.clone(), value.clone());
                    async move { c.put(key, value, Some(options)).await }
                })?;
            }
            tailed.insert(host.clone(), *rate);
        }
        let gone: Vec<String> = tailed
            .keys()
            .filter(|host| !rates.contains_key(*host))
            .cloned()
            .collect();
        for host in gone {
            self.delete_key(self.own_tail_key(&host))?;
            tailed.remove(&host);
        }
        Ok(())
    }

    fn relay_tail(&self, lines: Vec<TailLine>) -> Result<(), StoreError> {
        let seq = self.relayed.fetch_add(1, Ordering::Relaxed);
        let key = self.key(&format!("tail-lines/{}/{seq:020}", self.replica_id));
        let lease = self.lease.load(Ordering::Relaxed);
        let value = TailBatch { lines }.encode_to_vec();
        // Like commands: the watchers see the put; the lease removes a key a crash left.
        self.call(|mut c| {
            let (key, value) = (key.clone(), value.clone());
            async move {
                c.put(key, value, Some(PutOptions::new().with_lease(lease)))
                    .await
            }
        })?;
        self.delete_key(key)
    }

    fn events(&self) -> Option<broadcast::Receiver<ClusterEvent>> {
        Some(self.events.subscribe())
    }

    fn check(&self) -> Result<(), StoreError> {
        self.revision().map(|_| ())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A real etcd on loopback ports, stopped when dropped.
    pub struct Etcd {
        child: std::process::Child,
        _dir: tempfile::TempDir,
        pub url: String,
    }

    impl Drop for Etcd {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// Starts etcd (Debian's etcd-server); `None` when it is not installed and this is not CI.
    pub fn etcd() -> Option<Etcd> {
        let binary = std::env::var("NANO_ETCD").unwrap_or_else(|_| "etcd".into());
        if std::process::Command::new(&binary)
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "etcd is not installed (Debian's etcd-server; .ci/run installs it)"
            );
            eprintln!("skipping: etcd is not installed (apt-get install etcd-server)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let child = std::process::Command::new(&binary)
            .args(["--data-dir", &dir.path().join("etcd").to_string_lossy()])
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args([
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-cluster",
                &format!("default=http://127.0.0.1:{peer}"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let etcd = Etcd {
            child,
            _dir: dir,
            url,
        };
        let address = format!("127.0.0.1:{client}");
        for _ in 0..200 {
            if std::net::TcpStream::connect(&address).is_ok() {
                return Some(etcd);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("etcd did not start listening on {address}");
    }

    pub fn options(url: &str, prefix: &str) -> EtcdOptions {
        EtcdOptions {
            endpoints: vec![url.to_owned()],
            prefix: prefix.to_owned(),
            ca_cert_pem: None,
            identity_pem: None,
            user: None,
            sliver_budget_bytes: 1 << 30,
            lease_ttl_secs: 5,
        }
    }

    fn with_store(test: impl FnOnce(&dyn Store)) {
        let Some(etcd) = etcd() else { return };
        let store = EtcdStore::connect(options(&etcd.url, "/test")).unwrap();
        test(&store);
    }

    super::super::contract_tests!(with_store);

    #[test]
    fn large_slivers_are_chunked_verified_and_budgeted() {
        let Some(etcd) = etcd() else { return };
        let mut opts = options(&etcd.url, "/big");
        opts.sliver_budget_bytes = 3 * CHUNK_BYTES as u64;
        let store = EtcdStore::connect(opts).unwrap();
        let bytes: Vec<u8> = (0..(2 * CHUNK_BYTES + 7))
            .map(|i| (i % 251) as u8)
            .collect();
        let id = nano_sliver::sha256_hex(&bytes);
        let spec = |host: &str| nano_proto::v1::AppSpec {
            hostname: host.into(),
            ..Default::default()
        };
        let deploy = |host: &'static str, id: &'static str, bytes: &'static [u8]| Deploy {
            spec: spec(host),
            sliver_id: id,
            sliver: bytes,
            entry: "a.js",
            now_ms: 1,
            deploy_id: "",
        };
        let bytes: &'static [u8] = bytes.leak();
        let id: &'static str = id.leak();
        store.deploy(deploy("big.test", id, bytes)).unwrap();
        assert_eq!(store.sliver(id).unwrap().unwrap().as_ref(), bytes);
        // A second sliver of the same size would pass the budget of three chunks.
        let other: Vec<u8> = bytes.iter().map(|b| b.wrapping_add(1)).collect();
        let other_id = nano_sliver::sha256_hex(&other);
        match store.deploy(deploy("big2.test", other_id.leak(), other.leak())) {
            Err(err @ StoreError::OverBudget { .. }) => {
                assert!(err.to_string().contains("--etcd-sliver-budget-mb"), "{err}")
            }
            other => panic!("{other:?}"),
        }
        // A damaged chunk is refused, not served.
        let key = store.key(&format!("slivers/{id}/000001"));
        store.put_key(key, "junk").unwrap();
        assert!(matches!(store.sliver(id), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn two_replicas_share_one_revision_and_see_each_others_changes() {
        let Some(etcd) = etcd() else { return };
        let a = EtcdStore::connect(options(&etcd.url, "/pair")).unwrap();
        let b = EtcdStore::connect(options(&etcd.url, "/pair")).unwrap();
        assert_eq!(a.store_id(), b.store_id(), "the id names the cluster");
        let mut events = b.events().unwrap();
        let bytes = b"shared".to_vec();
        let id = nano_sliver::sha256_hex(&bytes);
        let answer = a
            .deploy(Deploy {
                spec: nano_proto::v1::AppSpec {
                    hostname: "s.test".into(),
                    ..Default::default()
                },
                sliver_id: &id,
                sliver: &bytes,
                entry: "a.js",
                now_ms: 1,
                deploy_id: "",
            })
            .unwrap();
        assert_eq!(b.revision().unwrap(), answer.revision);
        assert_eq!(b.sliver(&id).unwrap().unwrap().as_ref(), b"shared");
        // B's watch hears A's revision.
        let heard = b.runtime().block_on(async {
            tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    if let Ok(ClusterEvent::Revision(r)) = events.recv().await
                        && r == answer.revision
                    {
                        return r;
                    }
                }
            })
            .await
        });
        assert_eq!(heard.unwrap(), answer.revision);
        // A node reported through A is live for B, and gone when A leaves.
        let node = Node {
            node_id: "n1".into(),
            ..Default::default()
        };
        for _ in 0..100 {
            if a.lease.load(Ordering::Relaxed) != 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        a.put_node(&node, &[]).unwrap();
        assert_eq!(b.live_nodes().unwrap().unwrap().len(), 1);
        drop(a);
        assert!(
            b.live_nodes().unwrap().unwrap().is_empty(),
            "A's lease went with it"
        );
        assert_eq!(b.nodes().unwrap().len(), 1, "the record stays");
    }
}
