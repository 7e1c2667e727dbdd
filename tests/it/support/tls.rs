//! TLS test kit: a private CA made with rcgen, leaf certificates for any names, a rustls client
//! that trusts chosen CAs, and HTTP/1.1 over it; an HTTPS echo upstream.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{client::TlsStream, TlsAcceptor, TlsConnector};

/// A private certificate authority.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM.
#[derive(Clone)]
pub struct Leaf {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its PKCS#8 private key (PEM).
    pub key_pem: String,
    /// The certificate (DER), to recognize it in a handshake.
    pub der: Vec<u8>,
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    /// The CA certificate (PEM).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `names` (DNS names or IP addresses), with `common_name`.
    pub fn leaf(&self, names: &[&str], common_name: &str) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

impl Leaf {
    /// Writes `<name>.crt` and `<name>.key` into `dir` (each through a rename, the way an
    /// operator replaces live files); returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        write_atomically(&cert, self.cert_pem.as_bytes());
        write_atomically(&key, self.key_pem.as_bytes());
        (cert, key)
    }
}

/// Replaces `path` with `bytes` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A rustls client that trusts only `ca_pems`, offering ALPN `http/1.1`, without session
/// resumption.
pub fn client_config(ca_pems: &[&str]) -> Arc<rustls::ClientConfig> {
    client_config_for(ca_pems, rustls::DEFAULT_VERSIONS)
}

/// [`client_config`] offering only the TLS `versions` given.
pub fn client_config_for(
    ca_pems: &[&str],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for pem in ca_pems {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Every handshake full: a resumed session reports the certificate of the session it resumes.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// A TLS connection to `addr`, verifying the server as `name`.
pub async fn connect(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).unwrap();
    TlsConnector::from(config.clone()).connect(name, tcp).await
}

/// The DER of the certificate the server presented on `stream`.
pub fn peer_certificate(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// An HTTP/1.1 connection over `stream`, ready for requests (keep-alive).
pub async fn http1(
    stream: TlsStream<TcpStream>,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, hyper::Error> {
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// `GET path` with `headers` on `sender`; the status and body text.
pub async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(StatusCode, String), hyper::Error> {
    sender.ready().await?;
    let mut request = Request::get(path).header("host", "localhost");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::new())).unwrap())
        .await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// An HTTPS upstream presenting `leaf`; it answers every request with JSON: `uri`, the
/// `x-forwarded-proto` it got, and the SNI name the client sent.
pub struct HttpsUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// TLS connections accepted (handshakes completed).
    pub handshakes: Arc<AtomicUsize>,
    /// The SNI names seen.
    pub sni: Arc<Mutex<Vec<String>>>,
}

impl HttpsUpstream {
    /// Starts it on a free loopback port.
    pub async fn start(leaf: &Leaf) -> HttpsUpstream {
        let chain = vec![CertificateDer::from(leaf.der.clone())];
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let sni = Arc::new(Mutex::new(Vec::new()));
        let (count, names) = (handshakes.clone(), sni.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let (count, names) = (count.clone(), names.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    let name = stream.get_ref().1.server_name().unwrap_or("").to_owned();
                    names.lock().unwrap().push(name.clone());
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let proto = request
                            .headers()
                            .get("x-forwarded-proto")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let body = json!({"uri": request.uri().to_string(), "x_forwarded_proto": proto, "sni": name});
                        async move {
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                                body.to_string(),
                            ))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HttpsUpstream {
            addr,
            handshakes,
            sni,
        }
    }
}
