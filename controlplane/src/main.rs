//! `nano-controlplane`: flags, tracing, runtime, `run`, exit code (64 for bad flags, 1 otherwise);
//! `nano-controlplane migrate` copies a sled store into etcd.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "nano-controlplane",
    version,
    about = "NANO control plane: stores apps and slivers, feeds the data planes over gRPC"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    /// Folder of the sled database (created if missing; one process at a time). The default
    /// store: [default: nano-data]
    #[arg(long, env = "NANO_DATA_DIR", conflicts_with = "etcd_endpoints")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    etcd: EtcdFlags,
    /// gRPC address (Control for nanoctl, Fleet for data planes, grpc.health.v1).
    #[arg(long, env = "NANO_GRPC_LISTEN", default_value = "127.0.0.1:7070")]
    grpc_listen: String,
    /// HTTP address of /_admin/{health,metrics,isolates,nodes}.
    #[arg(long, env = "NANO_HTTP_LISTEN", default_value = "127.0.0.1:7071")]
    http_listen: String,
    /// Token nanoctl must present (Control service and /_admin from non-loopback clients).
    #[arg(long, env = "NANO_OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: Option<String>,
    /// Token data planes must present (Fleet service).
    #[arg(long, env = "NANO_NODE_TOKEN", hide_env_values = true)]
    node_token: Option<String>,
    /// PEM certificate chain: serve gRPC over TLS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// Where replicas keep their shared state.
#[derive(clap::Args)]
struct EtcdFlags {
    /// Keep the state in etcd instead of --data-dir, shared by every replica given the same
    /// endpoints and prefix (comma-separated client URLs).
    #[arg(long, env = "NANO_ETCD_ENDPOINTS", value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// Key prefix of this cluster in etcd.
    #[arg(long, env = "NANO_ETCD_PREFIX", default_value = "/nano")]
    etcd_prefix: String,
    /// PEM CA certificate that signed etcd's (for https:// endpoints).
    #[arg(long)]
    etcd_ca_cert: Option<PathBuf>,
    /// PEM client certificate, for etcd's --client-cert-auth (with --etcd-key).
    #[arg(long, requires = "etcd_key")]
    etcd_cert: Option<PathBuf>,
    /// PEM private key of --etcd-cert.
    #[arg(long, requires = "etcd_cert")]
    etcd_key: Option<PathBuf>,
    /// etcd user (etcd auth); its password comes from NANO_ETCD_PASSWORD only.
    #[arg(long, env = "NANO_ETCD_USER")]
    etcd_user: Option<String>,
    /// Most bytes stored slivers may take in etcd: keep it to a share of etcd's database quota
    /// (--quota-backend-bytes, 2 GiB by default), which also holds history and compaction
    /// slack. Deploys past it are refused.
    #[arg(long, env = "NANO_ETCD_SLIVER_BUDGET_MB", default_value_t = 1024)]
    etcd_sliver_budget_mb: u64,
    /// TTL of a replica's lease: a replica that dies shows its nodes as disconnected within it.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i64).range(2..=300))]
    etcd_lease_ttl_secs: i64,
}

impl EtcdFlags {
    fn options(&self) -> Result<nano_controlplane::store::etcd::EtcdOptions, String> {
        let read = |path: &PathBuf, flag: &str| {
            std::fs::read(path)
                .map_err(|err| format!("cannot read {flag} {}: {err}", path.display()))
        };
        let user = match (&self.etcd_user, std::env::var("NANO_ETCD_PASSWORD")) {
            (Some(user), Ok(password)) => Some((user.clone(), password)),
            (Some(_), Err(_)) => {
                return Err("--etcd-user needs its password in NANO_ETCD_PASSWORD".into());
            }
            (None, _) => None,
        };
        if !self.etcd_prefix.starts_with('/') {
            return Err(format!(
                "--etcd-prefix {:?} must start with '/' (e.g. /nano)",
                self.etcd_prefix
            ));
        }
        Ok(nano_controlplane::store::etcd::EtcdOptions {
            endpoints: self.etcd_endpoints.clone(),
            prefix: self.etcd_prefix.clone(),
            ca_cert_pem: self
                .etcd_ca_cert
                .as_ref()
                .map(|p| read(p, "--etcd-ca-cert"))
                .transpose()?,
            identity_pem: match (&self.etcd_cert, &self.etcd_key) {
                (Some(cert), Some(key)) => {
                    Some((read(cert, "--etcd-cert")?, read(key, "--etcd-key")?))
                }
                _ => None,
            },
            user,
            sliver_budget_bytes: self.etcd_sliver_budget_mb.saturating_mul(1024 * 1024),
            lease_ttl_secs: self.etcd_lease_ttl_secs,
        })
    }
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Copy a sled store (apps, history, slivers, drains, nodes, revision, store id) into an
    /// empty etcd prefix. Stop the control plane on the data dir first.
    Migrate {
        /// The sled data dir to copy from.
        #[arg(long)]
        from_data_dir: PathBuf,
        /// etcd client URLs to copy to (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        to_etcd_endpoints: Vec<String>,
        #[command(flatten)]
        etcd: EtcdFlags,
    },
}

/// `migrate`: refuses a non-empty prefix; the copy keeps the store id and the revision, so
/// nodes moved to the new control plane resume where they were.
fn migrate(from: &std::path::Path, mut etcd: EtcdFlags, to: Vec<String>) -> ExitCode {
    use nano_controlplane::store::Store;
    etcd.etcd_endpoints = to;
    let options = match etcd.options() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let prefix = options.prefix.clone();
    let result = (|| {
        let source = nano_controlplane::store::sled::SledStore::open(from)?;
        let dump = source.dump()?;
        let target = nano_controlplane::store::etcd::EtcdStore::connect(options)?;
        if target.revision()? != 0 || target.apps()?.len() + target.nodes()?.len() > 0 {
            return Ok(Err(format!(
                "the etcd prefix {prefix} already holds a cluster (revision {}); migrate only \
                 into an empty prefix: pick another --etcd-prefix, or delete this one \
                 (etcdctl del --prefix {prefix}/) if it is truly unused",
                target.revision()?
            )));
        }
        let summary = format!(
            "copied {} apps, {} kept versions, {} slivers, {} nodes, {} drains at revision {} \
             (store id {}) into {}",
            dump.apps.len(),
            dump.history.len(),
            dump.slivers.len(),
            dump.nodes.len(),
            dump.drains.len(),
            dump.revision,
            dump.store_id,
            target.describe()
        );
        target.import(dump)?;
        Ok::<_, nano_controlplane::store::StoreError>(Ok(summary))
    })();
    match result {
        Ok(Ok(summary)) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Ok(Err(refusal)) => {
            eprintln!("error: {refusal}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    // Bad flags exit {EXIT_USAGE} like a bad config (clap's own code is 2); help and version 0.
    let cli = Cli::try_parse().unwrap_or_else(|err| {
        let _ = err.print();
        std::process::exit(if err.use_stderr() {
            i32::from(EXIT_USAGE)
        } else {
            0
        });
    });
    let filter = tracing_subscriber::EnvFilter::try_from_env("NANO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    if let Some(Sub::Migrate {
        from_data_dir,
        to_etcd_endpoints,
        etcd,
    }) = cli.command
    {
        return migrate(&from_data_dir, etcd, to_etcd_endpoints);
    }
    let (Some(operator_token), Some(node_token)) =
        (cli.operator_token.clone(), cli.node_token.clone())
    else {
        eprintln!(
            "error: --operator-token and --node-token (or NANO_OPERATOR_TOKEN and \
             NANO_NODE_TOKEN) are required"
        );
        return ExitCode::from(EXIT_USAGE);
    };
    for (name, token) in [
        ("--operator-token", &operator_token),
        ("--node-token", &node_token),
    ] {
        if token.len() < 8 {
            eprintln!("error: {name} must be at least 8 characters (it guards the fleet)");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    if operator_token == node_token {
        eprintln!(
            "error: --operator-token and --node-token must differ (a node must not be able to deploy)"
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => match (std::fs::read(cert), std::fs::read(key)) {
            (Ok(cert_pem), Ok(key_pem)) => Some(nano_controlplane::Tls { cert_pem, key_pem }),
            (Err(err), _) => {
                eprintln!("error: cannot read --tls-cert {}: {err}", cert.display());
                return ExitCode::from(EXIT_USAGE);
            }
            (_, Err(err)) => {
                eprintln!("error: cannot read --tls-key {}: {err}", key.display());
                return ExitCode::from(EXIT_USAGE);
            }
        },
        _ => None,
    };
    let backend = if cli.etcd.etcd_endpoints.is_empty() {
        nano_controlplane::Backend::Sled(cli.data_dir.clone().unwrap_or_else(|| "nano-data".into()))
    } else {
        match cli.etcd.options() {
            Ok(options) => nano_controlplane::Backend::Etcd(options),
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    };
    let options = nano_controlplane::Options {
        backend,
        operator_token,
        node_token,
    };
    let plane = match nano_controlplane::open(&options) {
        Ok(plane) => plane,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("nano-cp")
        .build()
        .expect("the OS can start the runtime");
    runtime.block_on(async move {
        let bind = |addr: &str, what: &str| {
            let addr = addr.to_owned();
            let what = what.to_owned();
            async move {
                tokio::net::TcpListener::bind(&addr)
                    .await
                    .map_err(|err| format!("cannot listen on {addr} ({what}): {err}"))
            }
        };
        let listeners = match (
            bind(&cli.grpc_listen, "--grpc-listen").await,
            bind(&cli.http_listen, "--http-listen").await,
        ) {
            (Ok(grpc), Ok(http)) => (grpc, http),
            (Err(err), _) | (_, Err(err)) => {
                eprintln!("error: {err}");
                return ExitCode::FAILURE;
            }
        };
        let shutdown = CancellationToken::new();
        {
            // Installed before the listeners are announced: a signal from then on is a graceful
            // shutdown, never the default kill.
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
            let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                tracing::info!("shutting down");
                shutdown.cancel();
            });
        }
        match nano_controlplane::run(plane, tls, listeners.0, listeners.1, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        }
    })
}
