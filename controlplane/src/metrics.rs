//! Every metric of the control plane, declared once. Fleet gauges are read from the registry
//! at scrape time, so a node's series reflect what it last reported.

use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::Plane;

pub struct Metrics {
    registry: Registry,
    pub deploys: IntCounterVec,
    pub rollbacks: IntCounterVec,
    pub sliver_downloads: IntCounterVec,
    pub tail_events: IntCounter,
    apps: IntGauge,
    revision: IntGauge,
    nodes_connected: IntGauge,
    nodes_known: IntGauge,
    node_revision: IntGaugeVec,
    sliver_bytes: IntGauge,
    slivers: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("a valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let metrics = Self {
            deploys: counter(
                "nano_controlplane_deploys_total",
                "Deploys by result (ok, refused, failed)",
                &["result"],
            ),
            rollbacks: counter(
                "nano_controlplane_rollbacks_total",
                "Rollbacks by result (ok, refused, failed)",
                &["result"],
            ),
            sliver_downloads: counter(
                "nano_controlplane_sliver_downloads_total",
                "Sliver downloads by nodes, by result (ok, missing)",
                &["result"],
            ),
            tail_events: {
                let c = IntCounter::new(
                    "nano_controlplane_tail_events_total",
                    "Tail events received from the nodes connected here, before any tail's filters",
                )
                .expect("a valid metric");
                registry
                    .register(Box::new(c.clone()))
                    .expect("registered once");
                c
            },
            apps: gauge("nano_controlplane_apps", "Apps deployed"),
            revision: gauge(
                "nano_controlplane_config_revision",
                "The control plane's config revision",
            ),
            nodes_connected: gauge(
                "nano_controlplane_nodes_connected",
                "Data planes with an open config stream",
            ),
            nodes_known: gauge(
                "nano_controlplane_nodes_known",
                "Data planes that have ever connected",
            ),
            node_revision: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "nano_controlplane_node_config_revision",
                        "The config revision each connected node has activated",
                    ),
                    &["node"],
                )
                .expect("a valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("registered once");
                g
            },
            sliver_bytes: gauge("nano_controlplane_sliver_bytes", "Bytes of slivers stored"),
            slivers: gauge("nano_controlplane_slivers", "Slivers stored"),
            registry,
        };
        let build = IntGaugeVec::new(
            Opts::new(
                "nano_controlplane_build_info",
                "Build of this control plane",
            ),
            &["version"],
        )
        .expect("a valid metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        metrics
            .registry
            .register(Box::new(build))
            .expect("registered once");
        metrics
    }

    /// The Prometheus text exposition, with the fleet gauges refreshed. Blocks (reads the store).
    pub fn render(&self, plane: &Plane) -> String {
        if let Ok((revision, apps)) = plane.store.state() {
            self.revision.set(revision as i64);
            self.apps.set(apps.len() as i64);
        }
        if let Ok((bytes, count)) = plane.store.sliver_usage() {
            self.sliver_bytes.set(bytes as i64);
            self.slivers.set(count as i64);
        }
        let nodes = plane.nodes().unwrap_or_else(|_| plane.fleet.nodes());
        self.nodes_known.set(nodes.len() as i64);
        self.nodes_connected
            .set(nodes.iter().filter(|n| n.connected).count() as i64);
        self.node_revision.reset();
        for node in nodes.iter().filter(|n| n.connected) {
            self.node_revision
                .with_label_values(&[node.node_id.as_str()])
                .set(node.revision as i64);
        }
        let mut families = self.registry.gather();
        families.extend(prometheus::gather());
        // The text encoder refuses families without samples (a vec with no labels set yet).
        families.retain(|family| !family.get_metric().is_empty());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("gathered families encode");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
