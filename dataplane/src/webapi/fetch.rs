//! The network half of `fetch()`: one HTTP/1.1 exchange per subrequest (TLS with rustls, the
//! webpki roots and any `--fetch-ca-cert` CAs for https), redirects followed in Rust, the SSRF guard applied to every address
//! actually connected to (so DNS cannot swap in a private address after the check), and the
//! response body capped. Knows nothing about V8; `webapi` turns results into JS values.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// A subrequest as JS described it.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// `follow` (default), `manual` or `error`.
    pub redirect: String,
}

/// What came back.
#[derive(Debug)]
pub struct FetchResponse {
    pub status: u16,
    pub status_text: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub url: String,
    pub redirected: bool,
}

/// What an app's subrequests may do (`apps[].fetch`).
#[derive(Clone)]
pub struct Policy {
    pub allow_private_networks: bool,
    pub max_response_bytes: u64,
    /// The isolate's memory budget: response bodies count in it while they are read (they are
    /// outside V8 until handed to the JS), so a fan-out of subrequests cannot exceed memory_mb.
    pub budget: Option<std::sync::Arc<crate::limits::memory::Budget>>,
    /// Which addresses count as non-public: [`is_private`] (a test names its own, to have a
    /// "public" address on this machine).
    pub non_public: fn(IpAddr) -> bool,
}

const MAX_REDIRECTS: usize = 20;

/// Whether `ip` is somewhere a tenant must not reach by default: loopback, private, link-local,
/// shared (CGNAT), unspecified, multicast, broadcast, documentation or unique-local.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// CA certificates trusted besides the public roots (`nano --fetch-ca-cert`), parsed once.
static EXTRA_ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();

/// Makes https `fetch()` also trust the CA certificates of the PEM file at `path`. Called once,
/// before serving; answers how many certificates were added, or what is wrong with the file.
pub fn trust_extra_roots(path: &std::path::Path) -> Result<usize, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let problem = |what: String| {
        format!(
            "--fetch-ca-cert {}: {what}; give a PEM file of CA certificates",
            path.display()
        )
    };
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|err| problem(format!("cannot read it ({err})")))?
        .collect::<Result<_, _>>()
        .map_err(|err| problem(format!("not valid PEM ({err})")))?;
    if certificates.is_empty() {
        return Err(problem("it holds no CERTIFICATE block".into()));
    }
    let mut extra = rustls::RootCertStore::empty();
    for certificate in certificates {
        extra
            .add(certificate)
            .map_err(|err| problem(format!("a certificate cannot be a root ({err})")))?;
    }
    let count = extra.len();
    EXTRA_ROOTS
        .set(extra)
        .map_err(|_| problem("extra roots were already set".into()))?;
    Ok(count)
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            if let Some(extra) = EXTRA_ROOTS.get() {
                roots.roots.extend(extra.roots.iter().cloned());
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// Performs `request`, following redirects unless told otherwise.
pub async fn perform(mut request: FetchRequest, policy: &Policy) -> Result<FetchResponse, String> {
    let mut redirected = false;
    for _ in 0..=MAX_REDIRECTS {
        let response = exchange(&request, policy).await?;
        let location = response
            .headers
            .iter()
            .find(|(k, _)| k == "location")
            .map(|(_, v)| v.clone());
        let is_redirect = matches!(response.status, 301 | 302 | 303 | 307 | 308);
        match (is_redirect, location, request.redirect.as_str()) {
            (true, Some(_), "error") => {
                return Err(format!(
                    "fetch {}: redirected, and redirect is \"error\"",
                    request.url
                ));
            }
            (true, Some(location), "follow") => {
                let base = url::Url::parse(&request.url).map_err(|e| e.to_string())?;
                let next = base.join(&location).map_err(|e| {
                    format!(
                        "fetch {}: bad redirect location {location:?}: {e}",
                        request.url
                    )
                })?;
                if response.status == 303
                    || (matches!(response.status, 301 | 302) && request.method == "POST")
                {
                    request.method = "GET".into();
                    request.body = None;
                    request
                        .headers
                        .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
                }
                request.url = next.to_string();
                redirected = true;
            }
            _ => {
                return Ok(FetchResponse {
                    redirected,
                    ..response
                });
            }
        }
    }
    Err(format!(
        "fetch {}: more than {MAX_REDIRECTS} redirects",
        request.url
    ))
}

/// Resolves `url`'s host, keeps the addresses `policy` allows (the SSRF guard) and connects to
/// the first. Answers the connection, the host as written and the host without IPv6 brackets.
/// `what` starts each error message (`fetch`, `new WebSocket`).
pub(crate) async fn connect(
    url: &url::Url,
    tls: bool,
    policy: &Policy,
    what: &str,
) -> Result<(tokio::net::TcpStream, String, String), String> {
    let host = url
        .host_str()
        .ok_or_else(|| format!("{what} {url}: the URL has no host"))?
        .to_owned();
    let port = url
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });
    let bare_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare_host.as_str(), port))
        .await
        .map_err(|e| format!("{what} {url}: cannot resolve {host}: {e}"))?
        .collect();
    let allowed: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| policy.allow_private_networks || !(policy.non_public)(a.ip()))
        .collect();
    let Some(addr) = allowed.first().copied() else {
        let ip = addrs
            .first()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        return Err(format!(
            "{what} {url}: refused, {host} resolves to a non-public address ({ip}); subrequests \
             may only reach public addresses unless apps[].fetch.allow_private_networks is set"
        ));
    };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("{what} {url}: cannot connect to {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    Ok((tcp, host, bare_host))
}

/// The TLS connector subrequests use (web PKI roots plus the operator's extra roots) and the
/// server name to check, for `bare_host`.
pub(crate) fn tls_for(
    bare_host: &str,
) -> Result<
    (
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    ),
    String,
> {
    let name = rustls::pki_types::ServerName::try_from(bare_host.to_owned())
        .map_err(|e| format!("bad server name: {e}"))?;
    Ok((tokio_rustls::TlsConnector::from(tls_config()), name))
}

async fn exchange(request: &FetchRequest, policy: &Policy) -> Result<FetchResponse, String> {
    let url = url::Url::parse(&request.url)
        .map_err(|e| format!("fetch: invalid URL {:?}: {e}", request.url))?;
    let https = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            return Err(format!(
                "fetch {}: the {other}: scheme is not supported (http and https are)",
                url
            ));
        }
    };
    let (tcp, host, bare_host) = connect(&url, https, policy, "fetch").await?;

    let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let mut builder = hyper::Request::builder()
        .method(request.method.as_str())
        .uri(if path.is_empty() { "/" } else { path });
    let mut has_host = false;
    for (name, value) in &request.headers {
        if name.eq_ignore_ascii_case("host") {
            has_host = true;
        }
        if matches!(
            name.to_ascii_lowercase().as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            continue;
        }
        builder = builder.header(name.as_str(), value.as_str());
    }
    if !has_host {
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        builder = builder.header("host", authority);
    }
    let body = Full::new(Bytes::from(request.body.clone().unwrap_or_default()));
    let outgoing = builder
        .body(body)
        .map_err(|e| format!("fetch {url}: {e}"))?;

    let response = if https {
        let (connector, server_name) =
            tls_for(&bare_host).map_err(|e| format!("fetch {url}: {e}"))?;
        let tls = connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("fetch {url}: TLS handshake failed: {e}"))?;
        send(TokioIo::new(tls), outgoing, &url).await?
    } else {
        send(TokioIo::new(tcp), outgoing, &url).await?
    };

    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let limit = usize::try_from(policy.max_response_bytes).unwrap_or(usize::MAX);
    let mut held = policy.budget.as_ref().and_then(|budget| budget.hold(0));
    let mut body = Vec::new();
    let mut incoming = response.into_body();
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|e| format!("fetch {url}: reading the response failed: {e}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if body.len() + data.len() > limit {
            return Err(format!(
                "fetch {url}: the response body is larger than {} bytes (apps[].fetch.max_response_bytes)",
                policy.max_response_bytes
            ));
        }
        if let Some(held) = &mut held
            && !held.grow(data.len())
        {
            return Err(format!(
                "fetch {url}: the response body would take the isolate past its memory limit \
                 (limits.memory_mb), with what the app already holds; read less at once"
            ));
        }
        body.extend_from_slice(&data);
    }
    // Released as the bytes are handed to the JS, where they are charged again.
    drop(held);
    Ok(FetchResponse {
        status: status.as_u16(),
        status_text: status.canonical_reason().unwrap_or("").to_owned(),
        headers,
        body,
        url: url.to_string(),
        redirected: false,
    })
}

async fn send<T>(
    io: TokioIo<T>,
    request: hyper::Request<Full<Bytes>>,
    url: &url::Url,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("fetch {url}: {e}"))?;
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| format!("fetch {url}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers every request on `ip` with `response`; counts the requests it saw.
    async fn server(
        ip: &str,
        response: impl Fn(SocketAddr) -> String + Send + 'static,
    ) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut head = Vec::new();
                let mut buf = [0; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(response(addr).as_bytes()).await;
            }
        });
        (addr, seen)
    }

    fn get(url: String) -> FetchRequest {
        FetchRequest {
            method: "GET".into(),
            url,
            headers: Vec::new(),
            body: None,
            redirect: "follow".into(),
        }
    }

    /// Every hop of a redirect chain is checked: a "public" server (127.0.0.2 here) that
    /// redirects to a private one (127.0.0.1) gets the subrequest refused before it connects.
    #[test]
    fn redirects_to_private_addresses_are_refused() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Subrequests run their connections on the worker's LocalSet.
        tokio::task::LocalSet::new().block_on(&runtime, async {
            let (private, private_seen) = server("127.0.0.1", |_| {
                "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecret".into()
            })
            .await;
            let (public, _) = server("127.0.0.2", move |_| {
                format!(
                    "HTTP/1.1 302 Found\r\nlocation: http://{private}/\r\ncontent-length: 0\r\n\r\n"
                )
            })
            .await;
            let (public_ok, _) = server("127.0.0.2", |_| {
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".into()
            })
            .await;
            let policy = Policy {
                allow_private_networks: false,
                max_response_bytes: 1024,
                budget: None,
                non_public: |ip| ip == IpAddr::from([127, 0, 0, 1]),
            };
            // The "public" server itself is reachable.
            let ok = perform(get(format!("http://{public_ok}/")), &policy)
                .await
                .unwrap();
            assert_eq!((ok.status, ok.body.as_slice()), (200, &b"ok"[..]));
            // Its redirect to the private one is not followed.
            let err = perform(get(format!("http://{public}/")), &policy)
                .await
                .unwrap_err();
            assert!(err.contains("non-public address (127.0.0.1)"), "{err}");
            assert_eq!(
                private_seen.load(std::sync::atomic::Ordering::SeqCst),
                0,
                "the private server was reached"
            );
            // With private networks allowed the same chain ends at the private server.
            let open = Policy {
                allow_private_networks: true,
                ..policy
            };
            let followed = perform(get(format!("http://{public}/")), &open)
                .await
                .unwrap();
            assert_eq!(followed.body, b"secret");
            assert!(followed.redirected);
        });
    }

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
