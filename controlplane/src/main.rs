//! `nano-controlplane`: flags, tracing, runtime, `run`, exit code (64 for bad flags, 1 otherwise).

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
struct Cli {
    /// Folder of the database (created if missing; one process at a time).
    #[arg(long, env = "NANO_DATA_DIR", default_value = "nano-data")]
    data_dir: PathBuf,
    /// gRPC address (Control for nanoctl, Fleet for data planes, grpc.health.v1).
    #[arg(long, env = "NANO_GRPC_LISTEN", default_value = "127.0.0.1:7070")]
    grpc_listen: String,
    /// HTTP address of /_admin/{health,metrics,isolates,nodes}.
    #[arg(long, env = "NANO_HTTP_LISTEN", default_value = "127.0.0.1:7071")]
    http_listen: String,
    /// Token nanoctl must present (Control service and /_admin from non-loopback clients).
    #[arg(long, env = "NANO_OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: String,
    /// Token data planes must present (Fleet service).
    #[arg(long, env = "NANO_NODE_TOKEN", hide_env_values = true)]
    node_token: String,
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
    for (name, token) in [
        ("--operator-token", &cli.operator_token),
        ("--node-token", &cli.node_token),
    ] {
        if token.len() < 8 {
            eprintln!("error: {name} must be at least 8 characters (it guards the fleet)");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    if cli.operator_token == cli.node_token {
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
    let options = nano_controlplane::Options {
        data_dir: cli.data_dir.clone(),
        operator_token: cli.operator_token.clone(),
        node_token: cli.node_token.clone(),
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
