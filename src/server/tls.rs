//! TLS for the listeners (rustls on the ring provider): certificates from PEM files, TLS 1.2 and
//! 1.3 only, ALPN `http/1.1`, and a certificate that can be swapped while connections stay open
//! (SIGHUP). Also the upstream client's trust: the platform's roots plus an optional private CA.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::ClientConfig;
use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

/// Largest certificate chain or key file read, in bytes.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Where a listener's certificate chain and private key live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key: PathBuf,
}

/// Why TLS could not be set up; one sentence naming the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    let fail = |e: String| TlsError(format!("cannot read the {what} {}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if meta.len() > MAX_PEM_BYTES {
        return Err(fail(format!("larger than {MAX_PEM_BYTES} bytes")));
    }
    std::fs::read(path).map_err(|e| fail(e.to_string()))
}

/// Loads and checks a certificate chain and its private key: at least one certificate, a key of
/// a kind ring can sign with (RSA, ECDSA P-256/P-384, Ed25519), and a key that matches the leaf
/// certificate. Errors name the file and never quote its contents.
pub fn load_certified_key(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read_pem(&files.cert, "certificate file")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            TlsError(format!(
                "the certificate file {} is not PEM: {e}",
                files.cert.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "the certificate file {} holds no CERTIFICATE block",
            files.cert.display()
        )));
    }
    let key_pem = read_pem(&files.key, "key file")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        TlsError(format!(
            "the key file {} holds no PKCS#8, PKCS#1 or SEC1 private key in PEM",
            files.key.display()
        ))
    })?;
    let signing_key = provider::sign::any_supported_type(&key).map_err(|e| {
        TlsError(format!(
            "the key file {} holds a key rustls cannot use: {e}",
            files.key.display()
        ))
    })?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|_| {
        TlsError(format!(
            "the key in {} does not belong to the first certificate in {}",
            files.key.display(),
            files.cert.display()
        ))
    })?;
    Ok(certified)
}

/// A listener's certificate, swappable while the listener runs: a new handshake uses the
/// certificate current at that moment; established connections are untouched.
#[derive(Debug)]
pub struct ReloadableCert {
    files: TlsFiles,
    current: ArcSwap<CertifiedKey>,
}

impl ReloadableCert {
    /// Loads `files` once (see [`load_certified_key`]).
    pub fn load(files: TlsFiles) -> Result<ReloadableCert, TlsError> {
        let key = load_certified_key(&files)?;
        Ok(ReloadableCert {
            files,
            current: ArcSwap::from_pointee(key),
        })
    }

    /// Reads the files again and, if they are good, serves them from the next handshake on; if
    /// not, keeps the current certificate and returns why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_certified_key(&self.files)?;
        self.current.store(Arc::new(key));
        Ok(())
    }

    /// The files this certificate comes from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// A server configuration over `cert`: ring provider, TLS 1.3 and 1.2 only, ALPN `http/1.1`,
/// no client certificates.
pub fn server_config(cert: Arc<ReloadableCert>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError(format!("TLS setup failed: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The platform's trusted roots, read with rustls-native-certs from the system store (for
/// example Debian's ca-certificates), and how many of them rustls accepted.
pub fn platform_roots() -> (RootCertStore, usize) {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    (roots, added)
}

/// A client configuration that trusts `roots`: ring provider, TLS 1.3 and 1.2, server
/// certificates always verified. No ALPN list: hyper-rustls refuses a preset one, and for an
/// HTTP/1-only client it sends none (the upstream then speaks HTTP/1.1, as without TLS).
pub fn client_config(roots: RootCertStore) -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(Arc::new(provider::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider offers TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The upstream client's TLS configuration: the [`platform_roots`] plus every certificate in
/// `extra_ca` (`--upstream-ca-file`). Verification cannot be turned off. Returns the config and
/// how many roots it trusts; with none, every HTTPS upstream fails (502) and the caller should
/// say so. Errors: an unreadable CA file, or one without a usable certificate.
pub fn upstream_client_config(
    extra_ca: Option<&Path>,
) -> Result<(Arc<ClientConfig>, usize), TlsError> {
    let (mut roots, mut count) = platform_roots();
    if let Some(path) = extra_ca {
        let pem = read_pem(path, "CA file")?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError(format!("the CA file {} is not PEM: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(TlsError(format!(
                "the CA file {} holds no CERTIFICATE block",
                path.display()
            )));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                TlsError(format!(
                    "the CA file {} holds a certificate rustls cannot use as a root: {e}",
                    path.display()
                ))
            })?;
            count += 1;
        }
    }
    Ok((client_config(roots), count))
}

/// Whether a hyper client error came from the upstream's certificate failing verification
/// (unknown issuer, wrong name, expired), as opposed to the network. Walks the source chain,
/// looking inside `io::Error`s too (hyper-rustls wraps tokio-rustls' `io::Error`, which wraps
/// the `rustls::Error`, in another `io::Error`; `io::Error::source` skips the wrapped error).
pub fn is_certificate_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    let mut steps = 0;
    while let Some(e) = next {
        steps += 1;
        if steps > 32 {
            return false;
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}
