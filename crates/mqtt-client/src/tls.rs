//! TLS for the client: which roots to trust, an optional client certificate, and the knobs that
//! relax verification, modelled on `mosquitto_pub`'s `--cafile`, `--capath`, `--cert`/`--key`,
//! `--insecure` and `--tls-alpn`.
//!
//! [`TlsOptions`] only records paths and choices; files are read when the connection is
//! configured (`client_config`), so a rotated certificate is picked up on the next
//! configuration. The handshake itself (`connect`) runs over any async byte stream.
//!
//! The ring crypto provider is used explicitly (the process-wide default provider is never
//! consulted or installed), with TLS 1.3 and TLS 1.2.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, InvalidDnsNameError, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How to secure a connection to the broker with TLS.
///
/// Built with [`TlsOptions::new`] and chained setters; nothing is read from disk until the
/// connection is configured, so building options never fails.
///
/// ```
/// use mqtt_client::TlsOptions;
///
/// let tls = TlsOptions::new()
///     .ca_file("/etc/mqtt/ca.pem")
///     .client_auth("/etc/mqtt/client.pem", "/etc/mqtt/client.key")
///     .alpn(["mqtt"]);
/// # let _ = tls;
/// ```
///
/// By default the server certificate must chain to a system root (loaded with
/// `rustls-native-certs`) and be valid for the host name connected to (or the
/// [`server_name`](Self::server_name) override). IP addresses work as names too; the
/// certificate then needs a matching IP subject alternative name.
#[derive(Clone, Default)]
pub struct TlsOptions {
    ca_file: Option<PathBuf>,
    ca_path: Option<PathBuf>,
    client_auth: Option<ClientAuth>,
    server_name: Option<String>,
    alpn: Vec<Vec<u8>>,
    skip_hostname: bool,
    skip_verification: bool,
}

/// Paths of the client certificate chain and its private key.
#[derive(Clone)]
struct ClientAuth {
    cert: PathBuf,
    key: PathBuf,
}

impl TlsOptions {
    /// Options that trust the operating system's root certificates, send no client certificate
    /// and verify the server's certificate and name in full.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trust the CA certificates in this PEM file (one or more `CERTIFICATE` sections) instead
    /// of the system roots, like `mosquitto_pub --cafile`.
    ///
    /// May be combined with [`ca_path`](Self::ca_path); the roots are then the union of both.
    /// Any malformed section or certificate in the file is an error.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Trust the CA certificates in the PEM files of this directory instead of the system
    /// roots, like `mosquitto_pub --capath`.
    ///
    /// Unlike OpenSSL, file names need not be subject hashes: every regular file (or symbolic
    /// link to one) in the directory is read, and each file that is unreadable or is not
    /// well-formed PEM is skipped with a warning, as are certificates that cannot serve as
    /// trust anchors. It is an error if the directory holds no usable certificate at all.
    pub fn ca_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.ca_path = Some(dir.into());
        self
    }

    /// Authenticate to the server with a client certificate, like `mosquitto_pub --cert
    /// --key`.
    ///
    /// `cert` is a PEM file with the certificate chain, leaf first; `key` is a PEM file with an
    /// unencrypted private key in PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1
    /// (`EC PRIVATE KEY`) form. Only the key's path is kept here; its contents are read when
    /// the connection is configured.
    pub fn client_auth(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_auth = Some(ClientAuth {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// Verify the server certificate against this name (and send it as SNI, unless it is an IP
    /// address) instead of the host connected to.
    ///
    /// Useful when connecting to an address whose name is not in the certificate, e.g. a
    /// broker behind a port forward. An IP address in textual form is accepted.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Offer these application protocols with ALPN, most preferred first (e.g. `["mqtt"]`, as
    /// AWS IoT requires on port 443). Replaces any previously set list; empty means no ALPN.
    pub fn alpn<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<Vec<u8>>,
    {
        self.alpn = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// **Insecure:** accept a server certificate whose names do not match the server name,
    /// while still requiring that it chains to a trusted root and is otherwise valid. This is
    /// what `mosquitto_pub --insecure` does.
    ///
    /// Any holder of a certificate from a trusted CA (for any name) can then impersonate the
    /// server. Meant for tests and for brokers addressed by a name their certificate lacks;
    /// prefer [`server_name`](Self::server_name) where the right name is known.
    pub fn insecure_skip_hostname(mut self, skip: bool) -> Self {
        self.skip_hostname = skip;
        self
    }

    /// **Dangerous:** accept any server certificate at all: neither its chain, validity period,
    /// nor names are checked (the handshake signatures still are). The connection is encrypted
    /// but not authenticated, so anyone on the path can read and alter it.
    ///
    /// Only for tests and throw-away setups. Overrides
    /// [`insecure_skip_hostname`](Self::insecure_skip_hostname) and makes
    /// [`ca_file`](Self::ca_file)/[`ca_path`](Self::ca_path) irrelevant (they are not read).
    pub fn dangerous_skip_verification(mut self, skip: bool) -> Self {
        self.skip_verification = skip;
        self
    }

    /// The server name override set with [`server_name`](Self::server_name), if any.
    pub(crate) fn server_name_override(&self) -> Option<&str> {
        self.server_name.as_deref()
    }
}

impl fmt::Debug for TlsOptions {
    // Written by hand so that a future field holding secrets cannot leak through a derive.
    // Only paths are printed, never file contents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca_file", &self.ca_file)
            .field("ca_path", &self.ca_path)
            .field(
                "client_cert",
                &self.client_auth.as_ref().map(|auth| &auth.cert),
            )
            .field(
                "client_key",
                &self.client_auth.as_ref().map(|auth| &auth.key),
            )
            .field("server_name", &self.server_name)
            .field(
                "alpn",
                &self
                    .alpn
                    .iter()
                    .map(|p| String::from_utf8_lossy(p))
                    .collect::<Vec<_>>(),
            )
            .field("insecure_skip_hostname", &self.skip_hostname)
            .field("dangerous_skip_verification", &self.skip_verification)
            .finish()
    }
}

/// Why TLS could not be configured or established.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file (or a CA directory) could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },

    /// A file is not well-formed PEM (e.g. a section without its `END` line, or bad base64).
    #[error("malformed PEM in {}: {source}", path.display())]
    InvalidPem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: pem::Error,
    },

    /// A certificate file (or CA directory) holds no usable `CERTIFICATE` section.
    #[error("no certificate found in {}", path.display())]
    NoCertificate {
        /// The file or directory.
        path: PathBuf,
    },

    /// A key file holds no unencrypted PKCS#8, PKCS#1 or SEC1 private key.
    #[error(
        "no private key (PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`) found in {}",
        path.display()
    )]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },

    /// A CA certificate could not be parsed as a trust anchor.
    #[error("invalid CA certificate in {}: {source}", path.display())]
    InvalidCertificate {
        /// The file.
        path: PathBuf,
        /// Why rustls rejected it.
        #[source]
        source: rustls::Error,
    },

    /// The client certificate and key could not be used: the key is of an unsupported kind,
    /// malformed, or does not belong to the certificate.
    #[error(
        "unusable client certificate {} with key {}: {source}",
        cert.display(),
        key.display()
    )]
    InvalidClientIdentity {
        /// The certificate chain file.
        cert: PathBuf,
        /// The private key file.
        key: PathBuf,
        /// Why rustls rejected them.
        #[source]
        source: rustls::Error,
    },

    /// No CA file or directory was given and no usable root certificate was found in the
    /// system store. Install the system CA bundle or use [`TlsOptions::ca_file`].
    #[error("no usable root certificates found in the system certificate store")]
    NoSystemRoots,

    /// The host (or the server name override) is neither a valid DNS name nor an IP address.
    #[error("invalid TLS server name `{name}`")]
    InvalidServerName {
        /// The name as given.
        name: String,
        /// The parse error.
        #[source]
        source: InvalidDnsNameError,
    },

    /// The TLS handshake failed: the server's certificate was rejected, the server rejected
    /// ours, no common protocol version or cipher suite, or the connection broke.
    ///
    /// For TLS failures the I/O error wraps a [`rustls::Error`]; see
    /// [`TlsError::rustls_error`].
    #[error("TLS handshake failed: {source}")]
    Handshake {
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// rustls refused the configuration itself (not expected with the built-in provider).
    #[error("cannot configure TLS: {source}")]
    Config {
        /// Why.
        #[source]
        source: rustls::Error,
    },
}

impl TlsError {
    /// The rustls error behind this one, if any; e.g. for a failed handshake
    /// `Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer))`.
    pub fn rustls_error(&self) -> Option<&rustls::Error> {
        match self {
            Self::InvalidCertificate { source, .. }
            | Self::InvalidClientIdentity { source, .. }
            | Self::Config { source } => Some(source),
            Self::Handshake { source } => source.get_ref()?.downcast_ref::<rustls::Error>(),
            _ => None,
        }
    }
}

/// Builds the rustls client configuration for `options`, reading the files they name.
pub(crate) fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|source| TlsError::Config { source })?;

    let builder = if options.skip_verification {
        tracing::warn!(
            "TLS server certificate verification is disabled: the connection is not authenticated"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification { algorithms }))
    } else {
        let roots = root_store(options)?;
        if options.skip_hostname {
            tracing::warn!("TLS server name verification is disabled");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipHostname {
                    roots: Arc::new(roots),
                    algorithms,
                }))
        } else {
            builder.with_root_certificates(roots)
        }
    };

    let mut config = match &options.client_auth {
        Some(auth) => {
            let chain = load_certs(&auth.cert)?;
            let key = load_key(&auth.key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|source| TlsError::InvalidClientIdentity {
                    cert: auth.cert.clone(),
                    key: auth.key.clone(),
                    source,
                })?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = options.alpn.clone();
    Ok(Arc::new(config))
}

/// Performs the TLS handshake over `stream`.
///
/// The server certificate is verified against `server_name_override` if given, else `host`;
/// either may be a DNS name or an IP address (IPv6 optionally in brackets).
pub(crate) async fn connect<S>(
    stream: S,
    host: &str,
    config: Arc<ClientConfig>,
    server_name_override: Option<&str>,
) -> Result<TlsStream<S>, TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = server_name(server_name_override.unwrap_or(host))?;
    TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|source| TlsError::Handshake { source })
}

/// Parses a DNS name or IP address, accepting `[v6]` as used in URLs.
fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = name
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(name);
    ServerName::try_from(bare.to_owned()).map_err(|source| TlsError::InvalidServerName {
        name: name.to_owned(),
        source,
    })
}

/// The trust anchors: the CA file and/or directory if given, else the system roots.
fn root_store(options: &TlsOptions) -> Result<RootCertStore, TlsError> {
    if options.ca_file.is_none() && options.ca_path.is_none() {
        return system_roots();
    }
    let mut roots = RootCertStore::empty();
    if let Some(path) = &options.ca_file {
        for cert in load_certs(path)? {
            roots
                .add(cert)
                .map_err(|source| TlsError::InvalidCertificate {
                    path: path.clone(),
                    source,
                })?;
        }
    }
    if let Some(dir) = &options.ca_path {
        add_ca_dir(&mut roots, dir)?;
    }
    tracing::debug!(roots = roots.len(), "loaded TLS trust anchors");
    Ok(roots)
}

/// Loads the operating system's root certificates.
fn system_roots() -> Result<RootCertStore, TlsError> {
    let loaded = rustls_native_certs::load_native_certs();
    for error in &loaded.errors {
        tracing::warn!(%error, "problem loading system root certificates");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    tracing::debug!(added, ignored, "loaded system root certificates");
    if roots.is_empty() {
        return Err(TlsError::NoSystemRoots);
    }
    Ok(roots)
}

/// Adds every certificate found in the files of `dir`; see [`TlsOptions::ca_path`].
fn add_ca_dir(roots: &mut RootCertStore, dir: &Path) -> Result<(), TlsError> {
    let read_error = |source| TlsError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_error)? {
        files.push(entry.map_err(read_error)?.path());
    }
    // Sorted so that logs and behaviour do not depend on directory order.
    files.sort();

    let mut total = 0;
    for file in files {
        // `fs::metadata` follows symbolic links, as in an OpenSSL hashed directory.
        if !fs::metadata(&file).is_ok_and(|meta| meta.is_file()) {
            continue;
        }
        let bytes = match fs::read(&file) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(file = %file.display(), %error, "skipping unreadable file in CA directory");
                continue;
            }
        };
        let certs = match CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>() {
            Ok(certs) => certs,
            Err(error) => {
                tracing::warn!(file = %file.display(), %error, "skipping malformed PEM file in CA directory");
                continue;
            }
        };
        let (added, ignored) = roots.add_parsable_certificates(certs);
        if ignored > 0 {
            tracing::warn!(file = %file.display(), ignored, "skipping invalid certificates in CA directory");
        }
        total += added;
    }
    if total == 0 {
        return Err(TlsError::NoCertificate {
            path: dir.to_owned(),
        });
    }
    Ok(())
}

/// Reads all certificates from a PEM file; at least one is required.
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::InvalidPem {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Reads the first private key from a PEM file.
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|source| match source {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_owned(),
        },
        source => TlsError::InvalidPem {
            path: path.to_owned(),
            source,
        },
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Verifies the chain to a trusted root, validity and key usage, but not the server name
/// ([`TlsOptions::insecure_skip_hostname`]).
#[derive(Debug)]
struct SkipHostname {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for SkipHostname {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Accepts any server certificate; still checks the handshake signatures
/// ([`TlsOptions::dangerous_skip_verification`]).
#[derive(Debug)]
struct NoVerification {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    use rustls::pki_types::PrivatePkcs8KeyDer;
    use rustls::server::WebPkiClientVerifier;
    use rustls::{CertificateError, ServerConfig, SupportedProtocolVersion};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A private directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "mqtt-client-tls-unit-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
            let path = self.0.join(name);
            fs::write(&path, contents).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A test CA whose certificate is written to `<dir>/<name>.pem`.
    struct Ca {
        cert: rcgen::Certificate,
        issuer: Issuer<'static, KeyPair>,
        path: PathBuf,
    }

    /// A certificate and key issued by a [`Ca`], written as `<name>.pem` and `<name>.key`.
    struct Leaf {
        cert: rcgen::Certificate,
        key: KeyPair,
        cert_path: PathBuf,
        key_path: PathBuf,
    }

    impl Ca {
        fn new(dir: &TempDir, name: &str) -> Self {
            let mut params = CertificateParams::new(Vec::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            let path = dir.write(&format!("{name}.pem"), cert.pem());
            Self {
                cert,
                issuer: Issuer::new(params, key),
                path,
            }
        }

        fn issue(
            &self,
            dir: &TempDir,
            name: &str,
            sans: &[&str],
            usage: ExtendedKeyUsagePurpose,
        ) -> Leaf {
            let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![usage];
            params.use_authority_key_identifier_extension = true;
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            let cert_path = dir.write(&format!("{name}.pem"), cert.pem());
            let key_path = dir.write(&format!("{name}.key"), key.serialize_pem());
            Leaf {
                cert,
                key,
                cert_path,
                key_path,
            }
        }
    }

    impl Leaf {
        fn key_der(&self) -> PrivateKeyDer<'static> {
            PrivatePkcs8KeyDer::from(self.key.serialize_der()).into()
        }
    }

    fn server(dir: &TempDir, ca: &Ca) -> Leaf {
        ca.issue(
            dir,
            "server",
            &["localhost", "127.0.0.1", "::1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    fn server_config(
        leaf: &Leaf,
        client_ca: Option<&Ca>,
        versions: &[&'static SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(ca.cert.der().clone()).unwrap();
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(vec![leaf.cert.der().clone()], leaf.key_der())
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

    /// Connects with `options` to an in-memory server; the server sends `ok` once its side of
    /// the handshake succeeded, which the client reads (so a rejected client certificate is
    /// noticed under TLS 1.3 too). Returns the negotiated ALPN protocol.
    async fn exchange(
        server: Arc<ServerConfig>,
        options: &TlsOptions,
        host: &str,
    ) -> Result<Option<Vec<u8>>, String> {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let server_task = tokio::spawn(async move {
            let mut tls = acceptor.accept(server_io).await?;
            tls.write_all(b"ok").await?;
            tls.flush().await?;
            // Keep the connection open until the client is done with it.
            let mut rest = Vec::new();
            let _ = tls.read_to_end(&mut rest).await;
            Ok::<_, io::Error>(())
        });
        let client = async {
            let config = client_config(options).map_err(|e| e.to_string())?;
            let mut tls = connect(client_io, host, config, options.server_name_override())
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = [0; 2];
            tls.read_exact(&mut buf)
                .await
                .map_err(|e| format!("read after handshake: {e}"))?;
            assert_eq!(&buf, b"ok");
            let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            tls.shutdown().await.map_err(|e| e.to_string())?;
            Ok(alpn)
        };
        let result = tokio::time::timeout(Duration::from_secs(10), client)
            .await
            .expect("TLS exchange timed out");
        let _ = tokio::time::timeout(Duration::from_secs(10), server_task).await;
        result
    }

    /// Like [`exchange`] but returns the client-side handshake error.
    async fn handshake_error(
        server: Arc<ServerConfig>,
        options: &TlsOptions,
        host: &str,
    ) -> TlsError {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let server_task = tokio::spawn(async move { acceptor.accept(server_io).await.map(drop) });
        let config = client_config(options).unwrap();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            connect(client_io, host, config, options.server_name_override()),
        )
        .await
        .expect("TLS handshake timed out");
        let _ = tokio::time::timeout(Duration::from_secs(10), server_task).await;
        match result {
            Ok(_) => panic!("handshake with {host} unexpectedly succeeded"),
            Err(error) => error,
        }
    }

    #[test]
    fn debug_prints_paths_but_no_file_contents() {
        let dir = TempDir::new();
        let key = dir.write("client.key", "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n");
        let options = TlsOptions::new()
            .ca_file("/ca.pem")
            .client_auth("/client.pem", &key)
            .alpn(["mqtt"]);
        let debug = format!("{options:?}");
        assert!(debug.contains("/ca.pem"), "{debug}");
        assert!(debug.contains("client.key"), "{debug}");
        assert!(debug.contains("\"mqtt\""), "{debug}");
        assert!(!debug.contains("c2VjcmV0"), "{debug}");
        assert!(!debug.contains("BEGIN"), "{debug}");
    }

    #[test]
    fn ca_file_with_several_certificates_trusts_them_all() {
        let dir = TempDir::new();
        let a = Ca::new(&dir, "a");
        let b = Ca::new(&dir, "b");
        let bundle = dir.write("bundle.pem", format!("{}\n{}", a.cert.pem(), b.cert.pem()));
        let roots = root_store(&TlsOptions::new().ca_file(&bundle)).unwrap();
        assert_eq!(roots.len(), 2);
        client_config(&TlsOptions::new().ca_file(&bundle)).unwrap();
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = TempDir::new();
        let ca = Ca::new(&dir, "ca");
        let leaf = server(&dir, &ca);

        let missing = dir.0.join("missing.pem");
        match root_store(&TlsOptions::new().ca_file(&missing)) {
            Err(TlsError::Read { path, source }) => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }

        // A key is not a certificate.
        match root_store(&TlsOptions::new().ca_file(&leaf.key_path)) {
            Err(TlsError::NoCertificate { path }) => assert_eq!(path, leaf.key_path),
            other => panic!("{other:?}"),
        }
        let empty = dir.write("empty.pem", "");
        assert!(matches!(
            root_store(&TlsOptions::new().ca_file(&empty)),
            Err(TlsError::NoCertificate { .. })
        ));

        let pem = ca.cert.pem();
        let truncated = dir.write("truncated.pem", &pem[..pem.len() / 2]);
        match root_store(&TlsOptions::new().ca_file(&truncated)) {
            Err(error @ TlsError::InvalidPem { .. }) => {
                assert!(error.to_string().contains("truncated.pem"), "{error}");
            }
            other => panic!("{other:?}"),
        }

        let garbage = dir.write(
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        match root_store(&TlsOptions::new().ca_file(&garbage)) {
            Err(error @ TlsError::InvalidCertificate { .. }) => {
                assert!(error.rustls_error().is_some());
            }
            other => panic!("{other:?}"),
        }
        // Reported by client_config as well.
        assert!(matches!(
            client_config(&TlsOptions::new().ca_file(&garbage)),
            Err(TlsError::InvalidCertificate { .. })
        ));
    }

    #[test]
    fn ca_path_loads_every_pem_file_and_skips_junk() {
        let dir = TempDir::new();
        let cas = TempDir::new();
        let a = Ca::new(&dir, "a");
        let b = Ca::new(&dir, "b");
        cas.write("a.pem", a.cert.pem());
        cas.write("b.crt", b.cert.pem());
        cas.write("README", "not a certificate\n");
        cas.write("broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n");
        fs::create_dir(cas.0.join("subdir")).unwrap();
        let roots = root_store(&TlsOptions::new().ca_path(&cas.0)).unwrap();
        assert_eq!(roots.len(), 2);

        // Combined with a CA file: the union.
        let c = Ca::new(&dir, "c");
        let roots = root_store(&TlsOptions::new().ca_path(&cas.0).ca_file(&c.path)).unwrap();
        assert_eq!(roots.len(), 3);
    }

    #[test]
    fn ca_path_without_certificates_is_an_error() {
        let dir = TempDir::new();
        dir.write("README", "nothing here\n");
        match root_store(&TlsOptions::new().ca_path(&dir.0)) {
            Err(TlsError::NoCertificate { path }) => assert_eq!(path, dir.0),
            other => panic!("{other:?}"),
        }
        let missing = dir.0.join("missing");
        match root_store(&TlsOptions::new().ca_path(&missing)) {
            Err(TlsError::Read { path, .. }) => assert_eq!(path, missing),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn system_roots_are_the_default() {
        // The system store may be empty in minimal containers; that is the only acceptable
        // failure.
        match client_config(&TlsOptions::new()) {
            Ok(_) | Err(TlsError::NoSystemRoots) => {}
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn client_auth_loads_certificate_and_key() {
        let dir = TempDir::new();
        let ca = Ca::new(&dir, "ca");
        let client = ca.issue(&dir, "client", &[], ExtendedKeyUsagePurpose::ClientAuth);
        let config = client_config(
            &TlsOptions::new()
                .ca_file(&ca.path)
                .client_auth(&client.cert_path, &client.key_path)
                .alpn(["mqtt", "x-other"]),
        )
        .unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
        assert_eq!(
            config.alpn_protocols,
            [b"mqtt".to_vec(), b"x-other".to_vec()]
        );

        let anonymous = client_config(&TlsOptions::new().ca_file(&ca.path)).unwrap();
        assert!(!anonymous.client_auth_cert_resolver.has_certs());
        assert!(anonymous.alpn_protocols.is_empty());
    }

    #[test]
    fn client_auth_errors() {
        let dir = TempDir::new();
        let ca = Ca::new(&dir, "ca");
        let client = ca.issue(&dir, "client", &[], ExtendedKeyUsagePurpose::ClientAuth);
        let other = ca.issue(&dir, "other", &[], ExtendedKeyUsagePurpose::ClientAuth);
        let with = |cert: &Path, key: &Path| {
            client_config(&TlsOptions::new().ca_file(&ca.path).client_auth(cert, key))
        };

        match with(&client.cert_path, &client.cert_path) {
            Err(TlsError::NoPrivateKey { path }) => assert_eq!(path, client.cert_path),
            other => panic!("{other:?}"),
        }
        match with(&client.key_path, &client.key_path) {
            Err(TlsError::NoCertificate { path }) => assert_eq!(path, client.key_path),
            other => panic!("{other:?}"),
        }
        let missing = dir.0.join("missing.key");
        assert!(matches!(
            with(&client.cert_path, &missing),
            Err(TlsError::Read { path, .. }) if path == missing
        ));
        // A key that does not belong to the certificate.
        match with(&client.cert_path, &other.key_path) {
            Err(error @ TlsError::InvalidClientIdentity { .. }) => {
                let message = error.to_string();
                assert!(message.contains("client.pem"), "{message}");
                assert!(message.contains("other.key"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn key_formats_are_recognised_by_label() {
        let dir = TempDir::new();
        let ca = Ca::new(&dir, "ca");
        let client = ca.issue(&dir, "client", &[], ExtendedKeyUsagePurpose::ClientAuth);
        let pkcs8 = fs::read_to_string(&client.key_path).unwrap();
        assert!(matches!(
            load_key(&client.key_path),
            Ok(PrivateKeyDer::Pkcs8(_))
        ));

        // The body is not re-encoded, so only the dispatch on the label is checked here.
        let sec1 = dir.write("sec1.key", pkcs8.replace("PRIVATE KEY", "EC PRIVATE KEY"));
        assert!(matches!(load_key(&sec1), Ok(PrivateKeyDer::Sec1(_))));
        let pkcs1 = dir.write("pkcs1.key", pkcs8.replace("PRIVATE KEY", "RSA PRIVATE KEY"));
        assert!(matches!(load_key(&pkcs1), Ok(PrivateKeyDer::Pkcs1(_))));
        // A SEC1 label on a PKCS#8 body is rejected when the key is loaded.
        assert!(matches!(
            client_config(
                &TlsOptions::new()
                    .ca_file(&ca.path)
                    .client_auth(&client.cert_path, &sec1)
            ),
            Err(TlsError::InvalidClientIdentity { .. })
        ));

        let encrypted = dir.write(
            "encrypted.key",
            pkcs8.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"),
        );
        assert!(matches!(
            load_key(&encrypted),
            Err(TlsError::NoPrivateKey { .. })
        ));
    }

    #[test]
    fn server_names() {
        assert!(matches!(
            server_name("localhost"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(matches!(
            server_name("broker.example.com"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("::1"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(server_name("[::1]"), Ok(ServerName::IpAddress(_))));
        for bad in ["", "not a name", "[localhost", "bad_name!"] {
            match server_name(bad) {
                Err(TlsError::InvalidServerName { name, .. }) => assert_eq!(name, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn handshake_verifies_dns_and_ip_names() {
        let dir = TempDir::new();
        let ca = Ca::new(&dir, "ca");
        let config = server_config(&server(&dir, &ca), None, BOTH, &[]);
        let options = TlsOptions::new().ca_file(&ca.path);
        for host in ["localhost", "127.0.0.1", "::1", "[::1]"] {
            exchange(config.clone(), &options, host).await.unwrap();
        }
        // The override takes precedence over the host.
        let renamed = options.clone().server_name("localhost");
        exchange(config.clone(), &renamed, "10.1.2.3")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn handshake_works_with_tls12_and_tls13_servers() {
        let dir = TempDir::new();
        let ca = Ca::new(&dir, "ca");
        let leaf = server(&dir, &ca);
        let options = TlsOptions::new().ca_file(&ca.path);
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let config = server_config(&leaf, None, &[version], &[]);
            exchange(config, &options, "localhost").await.unwrap();
        }
    }

    #[tokio::test]
    async fn wrong_name_is_rejected_unless_hostname_check_is_skipped() {
        let dir = TempDir::new();
        let ca = Ca::new(&dir, "ca");
        let config = server_config(&server(&dir, &ca), None, BOTH, &[]);
        let options = TlsOptions::new().ca_file(&ca.path);

        let error = handshake_error(config.clone(), &options, "other.example").await;
        assert!(matches!(error, TlsError::Handshake { .. }), "{error:?}");
        assert!(
            matches!(
                error.rustls_error(),
                Some(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. }
                ))
            ),
            "{error:?}"
        );
        let error = handshake_error(config.clone(), &options, "10.1.2.3").await;
        assert!(error.rustls_error().is_some(), "{error:?}");

        let insecure = options.insecure_skip_hostname(true);
        exchange(config.clone(), &insecure, "other.example")
            .await
            .unwrap();
        exchange(config, &insecure, "10.1.2.3").await.unwrap();
    }

    #[tokio::test]
    async fn unknown_ca_is_rejected_unless_verification_is_skipped() {
        let dir = TempDir::new();
        let ca = Ca::new(&dir, "ca");
        let stranger = Ca::new(&dir, "stranger");
        let config = server_config(&server(&dir, &ca), None, BOTH, &[]);

        let options = TlsOptions::new().ca_file(&stranger.path);
        let error = handshake_error(config.clone(), &options, "localhost").await;
        assert!(
            matches!(
                error.rustls_error(),
                Some(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer
                ))
            ),
            "{error:?}"
        );
        assert!(
            error.to_string().starts_with("TLS handshake failed: "),
            "{error}"
        );

        // Skipping only the hostname check still requires a trusted chain.
        let insecure = options.clone().insecure_skip_hostname(true);
        let error = handshake_error(config.clone(), &insecure, "localhost").await;
        assert!(
            matches!(
                error.rustls_error(),
                Some(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer
                ))
            ),
            "{error:?}"
        );

        let dangerous = options.dangerous_skip_verification(true);
        exchange(config.clone(), &dangerous, "other.example")
            .await
            .unwrap();
        // The CA file is not even read.
        let unread = TlsOptions::new()
            .ca_file(dir.0.join("missing.pem"))
            .dangerous_skip_verification(true);
        exchange(config, &unread, "localhost").await.unwrap();
    }

    #[tokio::test]
    async fn client_certificate_is_presented_when_required() {
        let dir = TempDir::new();
        let ca = Ca::new(&dir, "ca");
        let client = ca.issue(&dir, "client", &[], ExtendedKeyUsagePurpose::ClientAuth);
        let config = server_config(&server(&dir, &ca), Some(&ca), BOTH, &[]);

        let anonymous = TlsOptions::new().ca_file(&ca.path);
        assert!(
            exchange(config.clone(), &anonymous, "localhost")
                .await
                .is_err()
        );

        let authenticated = anonymous.client_auth(&client.cert_path, &client.key_path);
        exchange(config, &authenticated, "localhost").await.unwrap();
    }

    #[tokio::test]
    async fn alpn_is_negotiated() {
        let dir = TempDir::new();
        let ca = Ca::new(&dir, "ca");
        let leaf = server(&dir, &ca);
        let options = TlsOptions::new().ca_file(&ca.path).alpn(["mqtt"]);

        let config = server_config(&leaf, None, BOTH, &[b"mqtt"]);
        let alpn = exchange(config, &options, "localhost").await.unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"mqtt"[..]));

        let config = server_config(&leaf, None, BOTH, &[]);
        let alpn = exchange(config, &options, "localhost").await.unwrap();
        assert_eq!(alpn, None);
    }
}
