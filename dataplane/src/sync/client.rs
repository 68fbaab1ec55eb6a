//! The gRPC side of the fleet client: how a node joins (options, token, TLS), connecting, and
//! downloading a sliver in chunks; the errors of all of it.

use std::path::PathBuf;
use std::time::Duration;

use nano_proto::v1::DownloadSliverRequest;
use nano_proto::v1::fleet_client::FleetClient;
use nano_sliver::Sliver;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::state;

/// How a node joins a fleet.
#[derive(Clone, Debug)]
pub struct FleetOptions {
    /// The control plane's address, or its replicas' (tried in turn).
    pub urls: Vec<String>,
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
pub(super) struct Auth(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

pub(super) type Client = FleetClient<InterceptedService<Channel, Auth>>;

/// Downloads a sliver and checks it is the one asked for.
pub(super) async fn download(client: &mut Client, id: &str) -> Result<Sliver, SyncError> {
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

pub(super) async fn connect(options: &FleetOptions, url: &str) -> Result<Client, SyncError> {
    let bad_url = |why: String| SyncError::Url {
        url: url.to_owned(),
        why,
    };
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|err| bad_url(err.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10));
    if url.starts_with("https://") {
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
