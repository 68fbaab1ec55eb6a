//! `nano`: flags, config, tracing, runtime, `run`, exit code (64 for a bad config, 1 otherwise).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

/// The example config and app compiled into the binary: `nano` with no flags serves them.
const EMBEDDED_CONFIG: &str = include_str!("../../config/example.json");
const EMBEDDED_APP: &str = include_str!("../../config/examples/hello.js");

#[derive(Parser)]
#[command(
    name = "nano",
    version,
    about = "NANO data plane: serves JavaScript/WebAssembly apps in V8 isolates"
)]
struct Cli {
    /// Config file (JSON). Without it, the embedded example config is served.
    #[arg(long, short, global = true, env = "NANO_CONFIG")]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Where tenant traffic is served, HOST:PORT (port 0 picks a free one); overrides
    /// server.host and server.port.
    #[arg(long, global = true, env = "NANO_LISTEN")]
    listen: Option<String>,
    #[command(flatten)]
    fleet: FleetFlags,
    /// PEM file of CA certificates that apps' https `fetch()` trusts besides the public roots
    /// (private services, a corporate CA).
    #[arg(long, global = true, env = "NANO_FETCH_CA_CERT")]
    fetch_ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Fleet mode: these flags override the config's `control_plane` section.
#[derive(clap::Args)]
struct FleetFlags {
    /// Join a fleet: the control plane's gRPC address (http://host:7070 or https://...); with
    /// control-plane replicas, their addresses, comma-separated.
    #[arg(long, env = "NANO_CONTROL_PLANE")]
    control_plane: Option<String>,
    /// This node's id in the fleet (default: the machine's hostname).
    #[arg(long, env = "NANO_NODE_ID")]
    node_id: Option<String>,
    /// The fleet's node token (the control plane's --node-token).
    #[arg(long, env = "NANO_NODE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Where the last good fleet state and its slivers are kept across restarts.
    #[arg(long, env = "NANO_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// PEM certificate of a private CA that signed the control plane's certificate.
    #[arg(long)]
    ca_cert: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the config (the default).
    Serve,
    /// Validate the config and exit: 0 if valid, 64 with every problem listed otherwise.
    Check,
    /// Internal: evaluate one app and write its V8 snapshot (run by `nano serve` per app).
    #[command(hide = true)]
    PrepareApp {
        #[arg(long)]
        hostname: String,
        #[arg(long, required_unless_present = "sliver")]
        entrypoint: Option<PathBuf>,
        #[arg(long, conflicts_with = "entrypoint")]
        sliver: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = nano_config::defaults::startup_ms())]
        budget_ms: u32,
    },
    /// Config helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Build and inspect slivers (portable app artifacts).
    Sliver {
        #[command(subcommand)]
        command: SliverCommand,
    },
}

#[derive(Subcommand)]
enum SliverCommand {
    /// Pack an app (its entry module and every module it imports) into one sliver file.
    Build {
        /// The app's entry module.
        entry: PathBuf,
        /// Where to write the sliver.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Verify a sliver and print its id and manifest.
    Inspect { sliver: PathBuf },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the JSON Schema of the config file.
    Schema,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

const EXIT_CONFIG: u8 = 64;

// The system allocator (glibc): with workers starting and ending, mimalloc's per-thread pages
// cost about 1 MB more per running worker and kept ~90 MB of 100 ended workers' memory, for no
// throughput difference that wrk could see (bench/RESULTS.md, "Density").

fn main() -> ExitCode {
    // Apps see UTC, as on Workers, whatever the machine's zone (V8 reads TZ through ICU).
    // SAFETY: no other thread exists yet, so nothing reads the environment concurrently.
    unsafe { std::env::set_var("TZ", "UTC") };
    // Before any other thread starts: V8's memory protection keys then reach every thread.
    nano_dataplane::isolate::init_v8();
    // Bad flags exit {EXIT_CONFIG} like a bad config (clap's own code is 2); help and version 0.
    let cli = Cli::try_parse().unwrap_or_else(|err| {
        let _ = err.print();
        std::process::exit(if err.use_stderr() {
            i32::from(EXIT_CONFIG)
        } else {
            0
        });
    });
    init_tracing(cli.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Config {
            command: ConfigCommand::Schema,
        } => {
            let schema = serde_json::to_string_pretty(&nano_config::json_schema())
                .expect("the schema serialises");
            println!("{schema}");
            ExitCode::SUCCESS
        }
        Command::Check => match load(cli.config.as_deref()) {
            Ok((config, _)) => {
                // Every app is opened and compiled as serving would (slivers verified).
                let problems: Vec<String> = config
                    .apps
                    .iter()
                    .filter_map(|app| {
                        nano_dataplane::isolate::check_app(app)
                            .err()
                            .map(|err| format!("  - {}: {err}", app.hostname))
                    })
                    .collect();
                if !problems.is_empty() {
                    eprintln!(
                        "config has {} app(s) that cannot be served:\n{}",
                        problems.len(),
                        problems.join("\n")
                    );
                    return ExitCode::from(EXIT_CONFIG);
                }
                println!(
                    "config is valid: {} app(s), each opened and compiled",
                    config.apps.len()
                );
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("{err}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Serve => {
            if let Some(path) = &cli.fetch_ca_cert {
                match nano_dataplane::trust_fetch_roots(path) {
                    Ok(count) => {
                        tracing::info!(file = %path.display(), certificates = count, "fetch() trusts extra CA certificates")
                    }
                    Err(err) => {
                        eprintln!("{err}");
                        return ExitCode::from(EXIT_CONFIG);
                    }
                }
            }
            serve(cli.config.as_deref(), cli.listen.as_deref(), cli.fleet)
        }
        Command::PrepareApp {
            hostname,
            entrypoint,
            sliver,
            out,
            budget_ms,
        } => prepare_app(&hostname, entrypoint, sliver, &out, budget_ms),
        Command::Sliver {
            command: SliverCommand::Build { entry, out },
        } => match nano_dataplane::slivers::build(&entry, &out) {
            Ok(sliver) => {
                println!("{} {}", sliver.id, out.display());
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("nano sliver build: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Sliver {
            command: SliverCommand::Inspect { sliver },
        } => match nano_dataplane::slivers::inspect(&sliver) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("nano sliver inspect: {}: {err}", sliver.display());
                ExitCode::FAILURE
            }
        },
    }
}

fn prepare_app(
    hostname: &str,
    entrypoint: Option<PathBuf>,
    sliver: Option<PathBuf>,
    out: &Path,
    budget_ms: u32,
) -> ExitCode {
    use nano_dataplane::isolate::{self, AppSource};
    let budget = std::time::Duration::from_millis(budget_ms.into());
    let source = match (sliver, entrypoint) {
        (Some(path), _) => match nano_sliver::Sliver::read(&path) {
            Ok(sliver) => AppSource::Sliver(std::sync::Arc::new(sliver)),
            Err(err) => {
                println!("sliver {}: {err}", path.display());
                return ExitCode::from(isolate::PREPARE_APP_ERROR as u8);
            }
        },
        (None, Some(entry)) => AppSource::Dir(entry),
        (None, None) => unreachable!("clap requires one of --entrypoint and --sliver"),
    };
    match isolate::snapshot_app(hostname, &source, budget) {
        Ok(isolate::AppSnapshot {
            handler,
            blob,
            files,
        }) => match std::fs::write(out, blob) {
            Ok(()) => {
                let files = files
                    .into_iter()
                    .map(|(name, bytes)| (name, nano_sliver::sha256_hex(&bytes)))
                    .collect();
                let report = isolate::prepare::ChildReport::new(handler, files);
                println!(
                    "{}",
                    serde_json::to_string(&report).expect("a report serialises")
                );
                ExitCode::SUCCESS
            }
            Err(err) => {
                println!("cannot write the snapshot to {}: {err}", out.display());
                ExitCode::FAILURE
            }
        },
        Err(err) => {
            println!("{err}");
            let code = match err {
                isolate::AppLoadError::StartupBudget { .. } => isolate::PREPARE_APP_BUDGET,
                _ => isolate::PREPARE_APP_ERROR,
            };
            ExitCode::from(code as u8)
        }
    }
}

/// The fleet membership asked for by flags or config, if any.
fn fleet_options(
    config: &nano_config::Config,
    flags: FleetFlags,
) -> Result<Option<nano_dataplane::sync::FleetOptions>, String> {
    let section = config.control_plane.clone();
    let Some(urls) = flags
        .control_plane
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .or_else(|| section.as_ref().map(|s| s.url.list()))
    else {
        return Ok(None);
    };
    if urls.is_empty() {
        return Err("--control-plane is empty: give the control plane's address".into());
    }
    let token = flags
        .token
        .or_else(|| section.as_ref().and_then(|s| s.token.clone()))
        .ok_or("fleet mode needs the node token: pass --token, set NANO_NODE_TOKEN or control_plane.token")?;
    let node_id = flags
        .node_id
        .or_else(|| section.as_ref().and_then(|s| s.node_id.clone()))
        .unwrap_or_else(machine_hostname);
    let cache_dir = flags
        .cache_dir
        .or_else(|| section.as_ref().and_then(|s| s.cache_dir.clone()))
        .unwrap_or_else(|| std::env::temp_dir().join(format!("nano-fleet-{node_id}")));
    let ca_cert = flags
        .ca_cert
        .or_else(|| section.as_ref().and_then(|s| s.ca_cert.clone()));
    Ok(Some(nano_dataplane::sync::FleetOptions {
        urls,
        token,
        node_id,
        cache_dir,
        ca_cert,
    }))
}

fn machine_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer we own.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let name = if ok {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    if name.is_empty() { "node".into() } else { name }
}

fn serve(path: Option<&Path>, listen: Option<&str>, flags: FleetFlags) -> ExitCode {
    // Only a config the operator gave is watched for changes (not the embedded example).
    let config_path = path.map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_owned()));
    // A fleet member without a config file serves only the fleet's apps.
    let loaded = if path.is_none() && flags.control_plane.is_some() {
        nano_config::parse("{}", Path::new("."))
            .map(|config| (config, None))
            .map_err(|_| anyhow::anyhow!("the built-in empty config is valid"))
    } else {
        // The same absolute path as reloads, so the first reload compares like with like.
        load(config_path.as_deref())
    };
    let (mut config, _embedded_dir) = match loaded {
        Ok(loaded) => loaded,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("{err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(listen) = listen {
        match listen
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
        {
            Some((host, port)) if !host.is_empty() => {
                config.server.host = host.trim_start_matches('[').trim_end_matches(']').into();
                config.server.port = port;
            }
            _ => {
                eprintln!(
                    "--listen / NANO_LISTEN must be HOST:PORT (e.g. 0.0.0.0:8080 or [::]:8080), not {listen:?}"
                );
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    }
    let fleet = match fleet_options(&config, flags) {
        Ok(None) => None,
        Ok(Some(options)) => {
            tracing::info!(urls = %options.urls.join(","), node_id = %options.node_id, cache_dir = %options.cache_dir.display(), "fleet mode");
            match nano_dataplane::sync::Member::open(options) {
                Ok(member) => Some(member),
                Err(err) => {
                    eprintln!("{err}");
                    return ExitCode::FAILURE;
                }
            }
        }
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    raise_open_files_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_name("nano-http")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let addr = format!("{}:{}", config.server.host, config.server.port);
        // (host, port), so an IPv6 host like "::" needs no brackets.
        let bound = tokio::net::TcpListener::bind((config.server.host.as_str(), config.server.port));
        let listener = match bound.await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::error!(%addr, error = %err, "cannot bind the listener");
                eprintln!("cannot listen on {addr}: {err} (change server.host/server.port or --listen)");
                return ExitCode::FAILURE;
            }
        };
        let admin_listener = match &config.admin.listen {
            Some(admin) if config.admin.enabled => match tokio::net::TcpListener::bind(admin).await {
                Ok(listener) => Some(listener),
                Err(err) => {
                    eprintln!("cannot listen on {admin} for the admin surface: {err} (change admin.listen)");
                    return ExitCode::FAILURE;
                }
            },
            _ => None,
        };
        let shutdown = CancellationToken::new();
        tokio::spawn(shutdown_on_signal(shutdown.clone()));
        let cache_dir = config.slivers.enabled.then(|| {
            config.slivers.cache_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("nano-cache"))
        });
        let preparer = match running_exe() {
            Ok(exe) => nano_dataplane::isolate::Preparer::new(
                exe,
                cache_dir,
                config.slivers.cache_size as usize,
            ),
            Err(err) => {
                eprintln!("cannot find the nano executable to prepare apps: {err}");
                return ExitCode::FAILURE;
            }
        };
        nano_dataplane::run(config, config_path, fleet, preparer, listener, admin_listener, shutdown).await;
        ExitCode::SUCCESS
    });
    // A worker stuck in code V8 cannot interrupt must not hold the exit (dropping a runtime
    // waits for its blocking tasks).
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}

/// The binary this process runs, to start as `nano prepare-app`. On Linux it is held open and
/// started as `/proc/self/fd/N`, which stays this build when the file at the node's path is
/// replaced (an upgrade in place), where the path would start the new build, whose snapshots do
/// not work in this one. (Not `/proc/self/exe`: under valgrind that is valgrind's own.)
fn running_exe() -> std::io::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    if cfg!(target_os = "linux") {
        use std::os::fd::IntoRawFd;
        // Kept open for the life of the process. exec resolves the path before it closes the
        // descriptor (opened close-on-exec), so a child sees neither the file nor the fd.
        let fd = std::fs::File::open(&exe)?.into_raw_fd();
        return Ok(std::path::PathBuf::from(format!("/proc/self/fd/{fd}")));
    }
    Ok(exe)
}

/// Raises the soft limit of open files to the hard limit: the node holds a socket per client
/// connection (bounded by `server.max_connections`), and the inherited soft limit is often 1024.
fn raise_open_files_limit() {
    // SAFETY: getrlimit/setrlimit with a valid, initialised struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let wanted = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                tracing::warn!(soft = limit.rlim_cur, "cannot raise the open files limit");
            }
        }
    }
}

/// Loads the given config, or the embedded example (written to a private temporary folder so its
/// module can be read like any other app; the folder lives as long as the returned guard).
fn load(path: Option<&Path>) -> anyhow::Result<(nano_config::Config, Option<tempfile_guard::Dir>)> {
    match path {
        Some(path) => Ok((nano_config::load(path)?, None)),
        None => {
            let dir = tempfile_guard::Dir::new()?;
            std::fs::create_dir_all(dir.path().join("examples"))?;
            std::fs::write(dir.path().join("example.json"), EMBEDDED_CONFIG)?;
            std::fs::write(dir.path().join("examples/hello.js"), EMBEDDED_APP)?;
            tracing::info!("no --config given: serving the embedded example config");
            Ok((
                nano_config::load(&dir.path().join("example.json"))?,
                Some(dir),
            ))
        }
    }
}

mod tempfile_guard {
    //! A folder removed on drop.
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> std::io::Result<Self> {
            let path = std::env::temp_dir().join(format!("nano-embedded-{}", std::process::id()));
            std::fs::create_dir_all(&path)?;
            Ok(Self(path))
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Installs the SIGTERM and SIGINT handlers now, before the node says it listens (a signal from
/// then on is a graceful shutdown, never the default kill), and returns what waits for one.
fn shutdown_on_signal(shutdown: CancellationToken) -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = %name, "shutting down");
        shutdown.cancel();
    }
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("NANO_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
