//! Every metric of the data plane, declared once. Only configured hostnames become label values;
//! requests for unknown hosts count under `UNKNOWN_HOST`. Per-isolate series (memory, pressure)
//! are not stored: they are read from the workers' published stats at scrape time, so they
//! disappear with their isolate.

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::job::WorkerStats;

/// The `hostname` label of requests whose Host matches no app.
pub const UNKNOWN_HOST: &str = "_unknown";

static RECORDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns per-request recording on or off (`admin.metrics`), for measuring its cost.
pub fn set_recording(on: bool) {
    RECORDING.store(on, Ordering::Relaxed);
}

/// Whether per-request metrics are recorded.
pub fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration_ms: HistogramVec,
    pub cpu_time_ms: HistogramVec,
    pub context_resets: IntCounterVec,
    pub terminations: IntCounterVec,
    pub evictions: IntCounterVec,
    pub queue_rejections: IntCounterVec,
    /// Workers taken out of their pool while stuck in JS the limits cannot interrupt, whose
    /// threads have not yet exited.
    pub stuck_workers: IntGaugeVec,
    pub console_dropped: IntCounterVec,
    /// With `node.memory_mb`: what the node budget counts, by part (`isolates`, `snapshots`).
    pub node_memory: IntGaugeVec,
    /// Fleet mode: 1 while the control plane's config stream is up.
    pub fleet_connected: IntGauge,
    /// Fleet mode: the config revision this node has activated.
    pub fleet_revision: IntGauge,
    /// Fleet mode: revisions activated (`ok`) or not (`failed`).
    pub fleet_activations: IntCounterVec,
    /// Cache API: `match` calls that found an entry, and those that did not.
    pub cache_hits: IntCounterVec,
    pub cache_misses: IntCounterVec,
    /// Cache API: responses `put` stored.
    pub cache_stores: IntCounterVec,
    /// Cache API: entries dropped by reason (`quota`, `node_cap`, `expired`).
    pub cache_evictions: IntCounterVec,
    /// Cache API: bytes each app's entries hold.
    pub cache_bytes: IntGaugeVec,
    /// WebSockets open now, per app.
    pub websockets_open: IntGaugeVec,
    /// WebSocket messages by direction (`in`: from clients, `out`: from the app).
    pub websocket_messages: IntCounterVec,
    /// WebSockets closed, by close code.
    pub websocket_closes: IntCounterVec,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(counter.clone()))
        .expect("metric registered once");
    counter
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let histogram = HistogramVec::new(opts, &["hostname"]).expect("valid metric");
    registry
        .register(Box::new(histogram.clone()))
        .expect("metric registered once");
    histogram
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let requests = counter(
            &registry,
            "nano_requests_total",
            "HTTP requests answered, by app hostname and status code.",
            &["hostname", "status"],
        );
        let request_duration_ms = histogram(
            &registry,
            "nano_request_duration_ms",
            "Time from request received to response headers, in milliseconds.",
            &[
                1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
                10000.0, 30000.0,
            ],
        );
        let cpu_time_ms = histogram(
            &registry,
            "nano_cpu_time_ms",
            "CPU time the JS of one request used, in milliseconds.",
            &[
                1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0, 30000.0,
            ],
        );
        let context_resets = counter(
            &registry,
            "nano_context_resets_total",
            "Fresh V8 contexts created for requests (context reset).",
            &["hostname"],
        );
        let terminations = counter(
            &registry,
            "nano_terminations_total",
            "Requests whose JS was ended by a limit, by reason (cpu, memory, timeout).",
            &["hostname", "reason"],
        );
        let evictions = counter(
            &registry,
            "nano_evictions_total",
            "Isolates disposed, by reason (memory, terminations, node_budget).",
            &["hostname", "reason"],
        );
        let queue_rejections = counter(
            &registry,
            "nano_queue_rejections_total",
            "Requests refused with 503 because every request slot of the app was taken.",
            &["hostname"],
        );
        let stuck_workers = IntGaugeVec::new(
            Opts::new(
                "nano_stuck_workers",
                "Workers replaced because their JS did not stop at the wall-clock limit (stuck in a builtin V8 cannot interrupt), whose threads still run.",
            ),
            &["hostname"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(stuck_workers.clone()))
            .expect("metric registered once");
        let node_memory = IntGaugeVec::new(
            Opts::new(
                "nano_node_memory_bytes",
                "What node.memory_mb counts, by part: isolates (their footprints), snapshots (each app snapshot in memory once) and ended_workers (what workers that ended leave, 9 KiB each).",
            ),
            &["part"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(node_memory.clone()))
            .expect("metric registered once");
        let console_dropped = counter(
            &registry,
            "nano_console_dropped_total",
            "console lines an app wrote past the per-request or per-worker log caps, dropped.",
            &["hostname"],
        );
        let fleet_gauge = |name: &str, help: &str| {
            let gauge = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(gauge.clone()))
                .expect("metric registered once");
            gauge
        };
        let fleet_connected = fleet_gauge(
            "nano_fleet_connected",
            "Fleet mode: 1 while the control plane's config stream is up, else 0.",
        );
        let fleet_revision = fleet_gauge(
            "nano_fleet_config_revision",
            "Fleet mode: the control plane's config revision this node has activated.",
        );
        let fleet_activations = counter(
            &registry,
            "nano_fleet_activations_total",
            "Fleet mode: config revisions activated (ok) or not (failed: a download or check failed).",
            &["result"],
        );
        let cache_hits = counter(
            &registry,
            "nano_cache_hits_total",
            "Cache API match() calls that found a fresh entry, by app hostname.",
            &["hostname"],
        );
        let cache_misses = counter(
            &registry,
            "nano_cache_misses_total",
            "Cache API match() calls that found none (or only an expired one), by app hostname.",
            &["hostname"],
        );
        let cache_stores = counter(
            &registry,
            "nano_cache_stores_total",
            "Responses the Cache API's put() stored, by app hostname.",
            &["hostname"],
        );
        let cache_evictions = counter(
            &registry,
            "nano_cache_evictions_total",
            "Cache API entries dropped, by app hostname and reason (quota: the app's \
             cache.app_quota_mb; node_cap: cache.memory_mb; expired).",
            &["hostname", "reason"],
        );
        let cache_bytes = IntGaugeVec::new(
            Opts::new(
                "nano_cache_bytes",
                "Bytes the Cache API entries of each app hold (URL, headers and body).",
            ),
            &["hostname"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(cache_bytes.clone()))
            .expect("metric registered once");
        let websockets_open = IntGaugeVec::new(
            Opts::new(
                "nano_websockets_open",
                "WebSockets open now, by app hostname.",
            ),
            &["hostname"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(websockets_open.clone()))
            .expect("metric registered once");
        let websocket_messages = counter(
            &registry,
            "nano_websocket_messages_total",
            "WebSocket messages, by app hostname and direction (in: from clients, out: from the app).",
            &["hostname", "direction"],
        );
        let websocket_closes = counter(
            &registry,
            "nano_websocket_closes_total",
            "WebSockets closed, by app hostname and close code (1006: ended without a close \
             handshake).",
            &["hostname", "code"],
        );
        let build = IntGauge::with_opts(
            Opts::new("nano_build_info", "Build of this nano binary (always 1).")
                .const_label("version", env!("CARGO_PKG_VERSION")),
        )
        .expect("valid metric");
        build.set(1);
        registry
            .register(Box::new(build))
            .expect("metric registered once");
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process metrics registered once");
        Self {
            registry,
            requests,
            request_duration_ms,
            cpu_time_ms,
            context_resets,
            terminations,
            evictions,
            node_memory,
            queue_rejections,
            stuck_workers,
            console_dropped,
            fleet_connected,
            fleet_revision,
            fleet_activations,
            cache_hits,
            cache_misses,
            cache_stores,
            cache_evictions,
            cache_bytes,
            websockets_open,
            websocket_messages,
            websocket_closes,
        }
    }

    /// The Prometheus text exposition of every metric, plus the per-isolate series of `apps`
    /// (each app's hostname and its workers' stats).
    pub fn render<'a>(
        &self,
        apps: impl IntoIterator<Item = (&'a str, Vec<Arc<WorkerStats>>)>,
    ) -> String {
        let mut families = self.registry.gather();
        families.extend(IsolateCollector::collect(apps));
        // The text encoder refuses families without samples (a vec with no labels set yet).
        families.retain(|family| !family.get_metric().is_empty());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("the text format is utf-8")
    }
}

/// Per-isolate gauges, built from the workers' stats at scrape time.
struct IsolateCollector;

impl IsolateCollector {
    fn collect<'a>(
        apps: impl IntoIterator<Item = (&'a str, Vec<Arc<WorkerStats>>)>,
    ) -> Vec<MetricFamily> {
        let memory = GaugeVec::new(
            Opts::new(
                "nano_memory_bytes",
                "Heap used plus external memory of each live isolate.",
            ),
            &["hostname", "isolate"],
        )
        .expect("valid metric");
        let pressure = GaugeVec::new(
            Opts::new(
                "nano_memory_pressure_level",
                "Memory pressure of each live isolate: 0 normal, 1 warning, 2 critical, 3 emergency.",
            ),
            &["hostname", "isolate"],
        )
        .expect("valid metric");
        let footprint = GaugeVec::new(
            Opts::new(
                "nano_isolate_footprint_bytes",
                "What each live isolate costs the machine (physical heap, malloced and external \
                 memory, its snapshot, its thread): what node.memory_mb counts.",
            ),
            &["hostname", "isolate"],
        )
        .expect("valid metric");
        let active = GaugeVec::new(
            Opts::new("nano_active_isolates", "Live isolates per app."),
            &["hostname"],
        )
        .expect("valid metric");
        for (hostname, workers) in apps {
            let mut live = 0;
            for stats in workers {
                if !stats.is_live() {
                    continue;
                }
                live += 1;
                let id = stats.isolate_id();
                memory
                    .with_label_values(&[hostname, &id])
                    .set(stats.memory() as f64);
                pressure
                    .with_label_values(&[hostname, &id])
                    .set(f64::from(stats.pressure.load(Ordering::Relaxed)));
                footprint
                    .with_label_values(&[hostname, &id])
                    .set(stats.footprint.load(Ordering::Relaxed) as f64);
            }
            active.with_label_values(&[hostname]).set(f64::from(live));
        }
        [
            memory.collect(),
            pressure.collect(),
            footprint.collect(),
            active.collect(),
        ]
        .concat()
    }
}
