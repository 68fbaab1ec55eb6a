//! Waiting until the fleet serves a version: polls the nodes' reported status.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::bail;
use nano_proto::v1::ListNodesRequest;

use crate::{Client, explain};

pub struct Outcome {
    /// Nodes serving the version.
    pub served: Vec<String>,
    /// The first node that reported the version failed, and why.
    pub failed: Option<(String, String)>,
}

/// Connects to a control-plane replica again (the next that answers).
pub type Reconnect<'a> = dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Client>> + 'a>>
    + 'a;

/// Waits until every node connected when the wait began serves `version` of `host`, or one
/// reports that version failed. Fails when `timeout` passes. If the replica it asks goes away,
/// it goes on with another (`reconnect`), and `client` is then that one.
pub async fn until_served(
    client: &mut Client,
    reconnect: &Reconnect<'_>,
    host: &str,
    version: u64,
    timeout: Duration,
    progress: bool,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let mut targets: Option<Vec<String>> = None;
    loop {
        let nodes = match client.list_nodes(ListNodesRequest {}).await {
            Ok(answer) => answer.into_inner().nodes,
            Err(status) if crate::replica_gone(&status) && started.elapsed() < timeout => {
                *client = reconnect().await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(status) => return Err(explain(status)),
        };
        let targets = targets.get_or_insert_with(|| {
            nodes
                .iter()
                .filter(|n| n.connected)
                .map(|n| n.node_id.clone())
                .collect()
        });
        let mut states: BTreeMap<String, String> = BTreeMap::new();
        let mut served = Vec::new();
        for id in targets.iter() {
            let node = nodes.iter().find(|n| &n.node_id == id);
            let app = node.and_then(|n| n.apps.iter().find(|a| a.hostname == host));
            let state = match (node, app) {
                (Some(n), _) if !n.connected => "disconnected".to_owned(),
                (_, Some(a)) if a.version == version && a.state == "serving" => {
                    served.push(id.clone());
                    "serving".to_owned()
                }
                (_, Some(a)) if a.wanted_version == version && !a.error.is_empty() => {
                    if progress {
                        eprintln!();
                    }
                    return Ok(Outcome {
                        served,
                        failed: Some((id.clone(), a.error.clone())),
                    });
                }
                _ => "pending".to_owned(),
            };
            states.insert(id.clone(), state);
        }
        if progress {
            eprint!(
                "\rwaiting for the fleet: {}/{} node(s) serve version {version}",
                served.len(),
                targets.len()
            );
            let _ = std::io::stderr().flush();
        }
        // A node that went away is not waited for.
        let waiting: Vec<_> = states
            .iter()
            .filter(|(_, s)| s.as_str() == "pending")
            .collect();
        if waiting.is_empty() {
            if progress {
                eprintln!();
            }
            for (id, state) in &states {
                if state == "disconnected" {
                    eprintln!("warning: node {id} disconnected before taking version {version}");
                }
            }
            return Ok(Outcome {
                served,
                failed: None,
            });
        }
        if started.elapsed() >= timeout {
            if progress {
                eprintln!();
            }
            let names: Vec<_> = waiting.iter().map(|(id, _)| id.as_str()).collect();
            bail!(
                "after {} s, version {version} of {host} serves on {} of {} node(s); still \
                 pending on {} (see `nanoctl nodes`)",
                timeout.as_secs(),
                served.len(),
                states.len(),
                names.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
