//! `nanoctl`: deploy apps to a NANO fleet and look after it. Talks to the control plane's
//! `nano.v1.Control` service. Every failure prints one line and exits non-zero.

mod output;
mod wait;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};
use nano_proto::v1::control_client::ControlClient;
use nano_proto::v1::{
    AppSpec, DeleteAppRequest, DeployRequest, DrainRequest, EvictRequest, FetchSettings,
    GetAppRequest, Limits, ListAppsRequest, ListIsolatesRequest, ListNodesRequest, RollbackRequest,
    TailRequest, WebSocketSettings,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

#[derive(Parser)]
#[command(
    name = "nanoctl",
    version,
    about = "Deploy apps to a NANO fleet and look after it"
)]
struct Cli {
    /// The control plane's gRPC address; with replicas, their addresses, comma-separated
    /// (a call goes to the first that answers; a replica that is down is skipped).
    #[arg(
        long,
        global = true,
        env = "NANO_SERVER",
        default_value = "http://127.0.0.1:7070"
    )]
    server: String,
    /// The operator token (the control plane's --operator-token).
    #[arg(long, global = true, env = "NANO_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM certificate of a private CA that signed the control plane's certificate.
    #[arg(long, global = true, env = "NANO_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Output format of listings.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Build the app's sliver (its entry module and every import), upload it, and wait until
    /// the fleet serves it.
    Deploy {
        /// The app's entry module (or a prebuilt .sliver file).
        entry: PathBuf,
        /// The hostname the app serves.
        #[arg(long)]
        hostname: String,
        /// The app's name, which owns the hostname (default: the entry module's folder name).
        #[arg(long)]
        name: Option<String>,
        /// Worker threads (one isolate each) per node.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        workers: Option<u32>,
        /// Memory per isolate, in MiB.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        memory_mb: Option<u32>,
        /// CPU time per request, in milliseconds.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        cpu_ms: Option<u32>,
        /// Wall-clock time per request, in seconds.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        timeout_secs: Option<u32>,
        /// Time the app's modules may take to evaluate at start-up, in milliseconds.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        startup_ms: Option<u32>,
        /// Requests each worker holds (running or waiting) before the app answers 503.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        queue_per_worker: Option<u32>,
        /// Seconds a worker may sit without requests before it drops its isolate and thread.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        idle_timeout_secs: Option<u32>,
        /// Let fetch() reach loopback, private and other non-public addresses.
        #[arg(long)]
        allow_private_networks: bool,
        /// Subrequests one request may make (redirects included).
        #[arg(long)]
        max_subrequests: Option<u32>,
        /// Largest subrequest response body, in bytes.
        #[arg(long)]
        max_response_bytes: Option<u64>,
        /// Largest WebSocket message a client may send, in bytes.
        #[arg(long)]
        ws_max_message_bytes: Option<u32>,
        /// WebSockets the app may hold open at once on each node.
        #[arg(long)]
        ws_max_sockets: Option<u32>,
        /// Seconds a WebSocket may go without a message either way before it is closed.
        #[arg(long)]
        ws_idle_timeout_secs: Option<u32>,
        /// Seconds a WebSocket may stay open at most.
        #[arg(long)]
        ws_max_session_secs: Option<u32>,
        /// A value given to the handler as env.KEY (repeatable).
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// `false` keeps globals across requests (Workers semantics).
        #[arg(long)]
        context_reset: Option<bool>,
        /// If a node cannot load the new version, leave it current instead of rolling back.
        #[arg(long)]
        no_rollback: bool,
        #[command(flatten)]
        wait: WaitFlags,
    },
    /// List the deployed apps.
    Apps,
    /// Show an app: its current version and the versions kept for rollback.
    Get { hostname: String },
    /// Remove an app from the fleet.
    Rm { hostname: String },
    /// Make an earlier version current again (default: the one before the current).
    Rollback {
        hostname: String,
        #[arg(long)]
        to: Option<u64>,
        #[command(flatten)]
        wait: WaitFlags,
    },
    /// List the data planes and what they serve.
    Nodes,
    /// List isolates across the fleet.
    Isolates { hostname: Option<String> },
    /// Replace an app's idle isolates with fresh ones on every node.
    Evict { hostname: String },
    /// Take a node out of its load balancer's rotation (its /_admin/ready answers 503).
    Drain { node_id: String },
    /// Put a drained node back into rotation.
    Undrain { node_id: String },
    /// Stream an app's requests from every node serving it, live (Ctrl-C ends it): each with
    /// its outcome, timings, console lines and exception.
    Tail {
        hostname: String,
        /// Only 5xx, 4xx, ok (below 400) or error (any outcome but ok).
        #[arg(long, value_parser = ["5xx", "4xx", "ok", "error"])]
        status: Option<String>,
        /// Only this method.
        #[arg(long)]
        method: Option<String>,
        /// Only paths that start with this.
        #[arg(long)]
        path_prefix: Option<String>,
        /// Only events with this text in the URL, a console line or the exception.
        #[arg(long)]
        search: Option<String>,
        /// The share of events to show, 0 to 1.
        #[arg(long)]
        sample: Option<f64>,
        /// Only this node's events.
        #[arg(long)]
        node: Option<String>,
        /// Show each request's headers (authorization and cookie values masked).
        #[arg(long)]
        headers: bool,
    },
}

#[derive(clap::Args)]
struct WaitFlags {
    /// Return once the control plane has stored the change.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for the fleet.
    #[arg(long, default_value_t = 60)]
    wait_timeout_secs: u64,
}

/// Adds the operator token to every call.
#[derive(Clone)]
pub struct Auth(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            req.metadata_mut().insert("authorization", token.clone());
        }
        Ok(req)
    }
}

pub type Client = ControlClient<InterceptedService<Channel, Auth>>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the OS can start a runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line.
fn one_line(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain().map(ToString::to_string) {
        // Transport errors repeat their source in their own message.
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text.replace('\n', " ")
}

/// The control plane replicas of `--server`, in order.
fn servers(cli: &Cli) -> Vec<String> {
    cli.server
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Connects to one replica.
async fn connect_to(cli: &Cli, server: &str) -> anyhow::Result<Client> {
    let unreachable = || {
        format!(
            "cannot reach the control plane at {server} (is it running? set --server or NANO_SERVER)"
        )
    };
    let mut endpoint = Endpoint::from_shared(server.to_owned())
        .map_err(|err| anyhow!("bad --server {server:?}: {err}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if server.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_webpki_roots();
        if let Some(path) = &cli.ca_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --ca-cert {}", path.display()))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    let channel = endpoint.connect().await.with_context(unreachable)?;
    let token = match &cli.token {
        Some(token) => Some(
            nano_proto::bearer(token)
                .parse()
                .map_err(|_| anyhow!("the token must be printable ASCII"))?,
        ),
        None => None,
    };
    Ok(ControlClient::with_interceptor(channel, Auth(token))
        .max_decoding_message_size(nano_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(nano_proto::MAX_MESSAGE_BYTES))
}

/// Whether a call failed because its replica is down or went away mid-call (then a call that
/// is safe to repeat goes to the next one).
pub fn replica_gone(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    )
}

/// Connects to the first replica that answers.
async fn connect(cli: &Cli) -> anyhow::Result<Client> {
    let mut last = None;
    for server in servers(cli) {
        match connect_to(cli, &server).await {
            Ok(client) => return Ok(client),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("--server is empty: give the control plane's address")))
}

/// A refusal from the control plane, in words a user can act on.
pub fn explain(status: tonic::Status) -> anyhow::Error {
    match status.code() {
        tonic::Code::Unauthenticated => anyhow!(
            "the control plane refused the request: {} (set --token or NANO_TOKEN to the \
             control plane's --operator-token)",
            status.message()
        ),
        // The control plane answered, but its store (etcd) did not: the message says what to do.
        tonic::Code::Unavailable if status.message().contains("etcd") => {
            anyhow!(
                "the control plane cannot make changes now: {}",
                status.message()
            )
        }
        tonic::Code::Unavailable => anyhow!(
            "the control plane is unavailable: {} (is it running? check --server or NANO_SERVER)",
            status.message()
        ),
        tonic::Code::AlreadyExists => anyhow!("hostname taken: {}", status.message()),
        tonic::Code::ResourceExhausted if status.message().contains("--etcd-sliver-budget-mb") => {
            anyhow!("{}", status.message())
        }
        tonic::Code::ResourceExhausted | tonic::Code::OutOfRange => anyhow!(
            "the control plane refused a message this large: {}",
            status.message()
        ),
        _ => anyhow!("{}", status.message()),
    }
}

/// The sliver to upload: built from an entry module, or read from a .sliver file.
fn sliver_for(entry: &Path) -> anyhow::Result<nano_sliver::Sliver> {
    if !entry.is_file() {
        bail!("{} does not exist or is not a file", entry.display());
    }
    if entry.extension().is_some_and(|e| e == "sliver") {
        return nano_sliver::Sliver::read(entry)
            .map_err(|err| anyhow!("{} is not a valid sliver: {err}", entry.display()));
    }
    nano_dataplane::slivers::pack(entry)
        .map_err(|err| anyhow!("cannot build the app from {}: {err}", entry.display()))
}

fn parse_env(pairs: &[String]) -> anyhow::Result<HashMap<String, String>> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .filter(|(key, _)| !key.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow!("--env {pair:?} is not KEY=VALUE"))
        })
        .collect()
}

/// Makes one `Control` call that may safely be repeated on the first replica that answers: a
/// replica that is down or goes away (`replica_gone`) is skipped. Gives the client that answered
/// and the answer; a refusal becomes its one-line explanation.
macro_rules! on_any {
    ($cli:expr, $method:ident($request:expr)) => {{
        let mut last = None;
        let mut answered = None;
        for server in servers($cli) {
            let mut client = match connect_to($cli, &server).await {
                Ok(client) => client,
                Err(err) => {
                    last = Some(err);
                    continue;
                }
            };
            match client.$method($request).await {
                Ok(response) => {
                    answered = Some((client, response.into_inner()));
                    break;
                }
                Err(status) if replica_gone(&status) => {
                    last = Some(explain(status));
                }
                Err(status) => return Err(explain(status)),
            }
        }
        match answered {
            Some(answered) => answered,
            None => {
                return Err(last.unwrap_or_else(|| {
                    anyhow!("--server is empty: give the control plane's address")
                }));
            }
        }
    }};
}

/// [`on_any!`], for the answer only.
macro_rules! call {
    ($cli:expr, $method:ident($request:expr)) => {
        on_any!($cli, $method($request)).1
    };
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let output = cli.output;
    let progress = std::io::stderr().is_terminal() && output == Output::Table;
    match &cli.command {
        Command::Deploy {
            entry,
            hostname,
            name,
            workers,
            memory_mb,
            cpu_ms,
            timeout_secs,
            startup_ms,
            queue_per_worker,
            idle_timeout_secs,
            allow_private_networks,
            max_subrequests,
            max_response_bytes,
            ws_max_message_bytes,
            ws_max_sockets,
            ws_idle_timeout_secs,
            ws_max_session_secs,
            env,
            context_reset,
            no_rollback,
            wait,
        } => {
            let env = parse_env(env)?;
            let sliver = sliver_for(entry)?;
            if progress {
                eprintln!(
                    "built sliver {} ({} bytes, {} parts)",
                    &sliver.id[..12],
                    sliver.bytes().len(),
                    sliver.manifest.parts.len()
                );
            }
            let spec = AppSpec {
                hostname: hostname.clone(),
                limits: Some(Limits {
                    workers: workers.unwrap_or(0),
                    memory_mb: memory_mb.unwrap_or(0),
                    timeout_secs: timeout_secs.unwrap_or(0),
                    cpu_ms: cpu_ms.unwrap_or(0),
                    startup_ms: startup_ms.unwrap_or(0),
                    queue_per_worker: queue_per_worker.unwrap_or(0),
                    idle_timeout_secs: idle_timeout_secs.unwrap_or(0),
                }),
                env,
                context_reset: *context_reset,
                name: name.clone().unwrap_or_default(),
                fetch: Some(FetchSettings {
                    allow_private_networks: allow_private_networks.then_some(true),
                    max_subrequests: *max_subrequests,
                    max_response_bytes: *max_response_bytes,
                }),
                websockets: Some(WebSocketSettings {
                    max_message_bytes: *ws_max_message_bytes,
                    max_sockets: *ws_max_sockets,
                    idle_timeout_secs: *ws_idle_timeout_secs,
                    max_session_secs: *ws_max_session_secs,
                }),
            };
            // One id for every attempt: a replica that committed the deploy before it failed
            // to answer makes the retry return that deploy instead of making another.
            let mut id = [0u8; 16];
            getrandom::fill(&mut id)
                .map_err(|err| anyhow!("no randomness for a deploy id: {err}"))?;
            let request = DeployRequest {
                spec: Some(spec),
                sliver: sliver.bytes().to_vec(),
                deploy_id: hex::encode(id),
            };
            let (mut client, deployed) = on_any!(&cli, deploy(request.clone()));
            let app = deployed.app.unwrap_or_default();
            let undo = (!no_rollback && deployed.previous_version != 0)
                .then_some(deployed.previous_version);
            let change = Change {
                what: "deployed",
                app,
                revision: deployed.revision,
                undo,
            };
            finish_change(&cli, &mut client, change, wait, output, progress).await
        }
        Command::Rollback { hostname, to, wait } => {
            let mut client = connect(&cli).await?;
            let rolled = client
                .rollback(RollbackRequest {
                    hostname: hostname.clone(),
                    to_version: to.unwrap_or(0),
                })
                .await
                .map_err(explain)?
                .into_inner();
            let change = Change {
                what: "rolled back",
                app: rolled.app.unwrap_or_default(),
                revision: rolled.revision,
                undo: None,
            };
            finish_change(&cli, &mut client, change, wait, output, progress).await
        }
        Command::Apps => {
            let apps = call!(&cli, list_apps(ListAppsRequest {})).apps;
            output::apps(&apps, output);
            Ok(())
        }
        Command::Get { hostname } => {
            let got = call!(
                &cli,
                get_app(GetAppRequest {
                    hostname: hostname.clone(),
                })
            );
            output::app_detail(&got, output);
            Ok(())
        }
        Command::Rm { hostname } => {
            // Sent once: repeated on another replica after the first removed it, it would
            // answer that no app serves the hostname.
            let removed = connect(&cli)
                .await?
                .delete_app(DeleteAppRequest {
                    hostname: hostname.clone(),
                })
                .await
                .map_err(explain)?
                .into_inner();
            match output {
                Output::Json => println!(
                    "{}",
                    serde_json::json!({ "hostname": hostname, "removed": true, "revision": removed.revision })
                ),
                Output::Table => println!("removed {hostname} (revision {})", removed.revision),
            }
            Ok(())
        }
        Command::Nodes => {
            let nodes = call!(&cli, list_nodes(ListNodesRequest {}));
            output::nodes(&nodes, output);
            Ok(())
        }
        Command::Isolates { hostname } => {
            let isolates = call!(
                &cli,
                list_isolates(ListIsolatesRequest {
                    hostname: hostname.clone().unwrap_or_default(),
                })
            )
            .isolates;
            output::isolates(&isolates, output);
            Ok(())
        }
        Command::Evict { hostname } => {
            let sent = call!(
                &cli,
                evict(EvictRequest {
                    hostname: hostname.clone(),
                })
            );
            match output {
                Output::Json => println!(
                    "{}",
                    serde_json::json!({ "hostname": hostname, "nodes": sent.node_ids })
                ),
                Output::Table => println!(
                    "asked {} node(s) to replace the isolates of {hostname}: {}",
                    sent.node_ids.len(),
                    sent.node_ids.join(", ")
                ),
            }
            Ok(())
        }
        Command::Tail {
            hostname,
            status,
            method,
            path_prefix,
            search,
            sample,
            node,
            headers,
        } => {
            let mut lines = call!(
                &cli,
                tail(TailRequest {
                    hostname: hostname.clone(),
                    status: status.clone().unwrap_or_default(),
                    method: method.clone().unwrap_or_default(),
                    path_prefix: path_prefix.clone().unwrap_or_default(),
                    search: search.clone().unwrap_or_default(),
                    sample: *sample,
                    node_id: node.clone().unwrap_or_default(),
                    headers: *headers,
                })
            );
            if progress {
                eprintln!("tailing {hostname} (Ctrl-C to stop)");
            }
            loop {
                let line = tokio::select! {
                    line = lines.message() => line.map_err(explain)?,
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                };
                let Some(line) = line else {
                    anyhow::bail!("the control plane ended the tail (is it shutting down?)");
                };
                output::tail_line(&line, output);
            }
        }
        Command::Drain { node_id } | Command::Undrain { node_id } => {
            let drain = matches!(cli.command, Command::Drain { .. });
            let answer = call!(
                &cli,
                drain(DrainRequest {
                    node_id: node_id.clone(),
                    drain,
                })
            );
            let what = if drain { "drained" } else { "undrained" };
            match output {
                Output::Json => println!(
                    "{}",
                    serde_json::json!({
                        "node_id": node_id, "drained": drain, "connected": answer.connected,
                    })
                ),
                Output::Table if answer.connected => println!("{what} {node_id}"),
                Output::Table => {
                    println!("{what} {node_id} (offline: it takes effect when it connects)")
                }
            }
            Ok(())
        }
    }
}

/// A stored change of an app's current version.
struct Change {
    what: &'static str,
    app: nano_proto::v1::App,
    revision: u64,
    /// The version to make current again if a node cannot load this one.
    undo: Option<u64>,
}

/// After a deploy or rollback: report it, and unless told not to, wait for the fleet. If a node
/// cannot load the new version, the previous one is made current again (`undo`).
async fn finish_change(
    cli: &Cli,
    client: &mut Client,
    change: Change,
    wait: &WaitFlags,
    output: Output,
    progress: bool,
) -> anyhow::Result<()> {
    let Change {
        what,
        app,
        revision,
        undo,
    } = change;
    let host = app
        .spec
        .as_ref()
        .map(|s| s.hostname.clone())
        .unwrap_or_default();
    if output == Output::Table {
        println!(
            "{what} {host} version {} (sliver {}, revision {revision})",
            app.version,
            &app.sliver_id[..app.sliver_id.len().min(12)]
        );
    }
    let outcome = if wait.no_wait {
        None
    } else {
        Some(
            wait::until_served(
                client,
                &|| Box::pin(connect(cli)),
                &host,
                app.version,
                Duration::from_secs(wait.wait_timeout_secs),
                progress,
            )
            .await
            .map_err(|err| {
                // The change is stored; only the wait failed (say, its replica went away).
                err.context(format!(
                    "{what} {host} version {} is stored (revision {revision}), but waiting for \
                     the fleet failed; `nanoctl nodes` shows where it serves",
                    app.version
                ))
            })?,
        )
    };
    if let Some((node, error)) = outcome.as_ref().and_then(|o| o.failed.clone()) {
        let version = app.version;
        match undo {
            Some(previous) => {
                client
                    .rollback(RollbackRequest {
                        hostname: host.clone(),
                        to_version: previous,
                    })
                    .await
                    .map_err(explain)?;
                bail!(
                    "version {version} of {host} failed on node {node}: {error}; rolled back to \
                     version {previous}, which keeps serving (fix the app and deploy again)"
                );
            }
            None => bail!(
                "version {version} of {host} failed on node {node}: {error} (a node keeps \
                 serving the version it had; fix the app and deploy again, or `nanoctl rollback \
                 {host}`)"
            ),
        }
    }
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "app": output::app_json(&app),
                "revision": revision,
                "nodes": outcome.as_ref().map(|o| &o.served),
            })
        ),
        Output::Table => {
            if let Some(outcome) = &outcome {
                if outcome.served.is_empty() {
                    println!("no node is connected; the version serves when nodes connect");
                } else {
                    println!(
                        "version {} serves on {}",
                        app.version,
                        outcome.served.join(", ")
                    );
                }
            }
        }
    }
    Ok(())
}
