//! TLS for listeners (rustls, with the ring provider; TLS 1.2 and 1.3): the server's
//! configuration read from a listener's PEM files, reloadable (SIGHUP) without dropping the
//! connections it already accepted, and the Common Name of a client's certificate for
//! `use_identity_as_username`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::ListenerConfig;

/// Why a listener's TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid PEM, or holds nothing of what was expected.
    #[error("{}: {what}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// rustls refused the certificates or the key (a key that does not match the
    /// certificate, an unsupported algorithm).
    #[error("{}: {source}", path.display())]
    Rustls {
        /// The certificate file.
        path: PathBuf,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn pem_error(path: &Path, e: &pem::Error) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        what: match e {
            pem::Error::NoItemsFound => "no PEM item of the expected kind".to_owned(),
            other => format!("invalid PEM: {other:?}"),
        },
    }
}

/// The certificates of a PEM file (at least one).
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, &e))?;
    if certs.is_empty() {
        return Err(pem_error(path, &pem::Error::NoItemsFound));
    }
    Ok(certs)
}

/// The server configuration of a TLS listener, from its files.
///
/// # Errors
/// A file that cannot be read or parsed, or certificates and key that do not go together.
pub fn server_config(l: &ListenerConfig) -> Result<ServerConfig, TlsError> {
    let certfile = Path::new(&l.certfile);
    let keyfile = Path::new(&l.keyfile);
    let chain = certificates(certfile)?;
    let key = PrivateKeyDer::from_pem_slice(&read(keyfile)?).map_err(|e| pem_error(keyfile, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|source| TlsError::Rustls {
            path: certfile.to_owned(),
            source,
        })?;
    let builder = if l.cafile.is_empty() {
        builder.with_no_client_auth()
    } else {
        let cafile = Path::new(&l.cafile);
        let mut roots = RootCertStore::empty();
        for cert in certificates(cafile)? {
            roots.add(cert).map_err(|source| TlsError::Rustls {
                path: cafile.to_owned(),
                source,
            })?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if l.require_certificate {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        let verifier = verifier.build().map_err(|e| TlsError::Pem {
            path: cafile.to_owned(),
            what: format!("no usable CA certificate: {e}"),
        })?;
        builder.with_client_cert_verifier(verifier)
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::Rustls {
            path: certfile.to_owned(),
            source,
        })
}

/// A listener's TLS configuration, replaceable while connections use the old one.
#[derive(Debug)]
pub struct ServerTls {
    listener: ListenerConfig,
    config: RwLock<Arc<ServerConfig>>,
}

impl ServerTls {
    /// Reads the listener's files.
    ///
    /// # Errors
    /// As [`server_config`].
    pub fn load(listener: &ListenerConfig) -> Result<Self, TlsError> {
        Ok(Self {
            config: RwLock::new(Arc::new(server_config(listener)?)),
            listener: listener.clone(),
        })
    }

    /// Reads the files again; on failure the configuration in use stays.
    ///
    /// # Errors
    /// As [`server_config`].
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(server_config(&self.listener)?);
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = Arc::clone(&self.config.read().unwrap_or_else(PoisonError::into_inner));
        tokio_rustls::TlsAcceptor::from(config)
    }
}

/// One DER element: its tag, its contents and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

/// The Common Name of a certificate's subject (the last one, if it has several), as text.
pub fn common_name(cert: &[u8]) -> Option<String> {
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    let (SEQUENCE, certificate, _) = element(cert)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(certificate)? else {
        return None;
    };
    let mut rest = tbs;
    // version [0] (optional), serial, signature algorithm, issuer, validity, subject.
    let (tag, _, after) = element(rest)?;
    if tag == 0xA0 {
        rest = after;
    }
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (SEQUENCE, mut name, _) = element(rest)? else {
        return None;
    };
    let mut found = None;
    while !name.is_empty() {
        let (tag, rdn, after) = element(name)?;
        name = after;
        if tag != SET {
            return None;
        }
        let mut attributes = rdn;
        while !attributes.is_empty() {
            let (_, attribute, after) = element(attributes)?;
            attributes = after;
            let (0x06, oid, value) = element(attribute)? else {
                continue;
            };
            if oid != CN {
                continue;
            }
            let (kind, text, _) = element(value)?;
            found = match kind {
                // UTF8String, PrintableString, IA5String, TeletexString (taken as Latin-1 would
                // be wrong in general; accepted when it is UTF-8).
                0x0C | 0x13 | 0x16 | 0x14 => std::str::from_utf8(text).ok().map(str::to_owned),
                // BMPString: UTF-16 big endian.
                0x1E => {
                    let units: Vec<u16> = text
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                    String::from_utf16(&units).ok()
                }
                _ => None,
            };
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(names: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in names {
            params.distinguished_name.push(kind.clone(), *value);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_common_name_is_read_from_the_subject() {
        let cert = cert_with(&[
            (rcgen::DnType::OrganizationName, "Acme"),
            (rcgen::DnType::CommonName, "sensor-7"),
        ]);
        assert_eq!(common_name(&cert).as_deref(), Some("sensor-7"));
        let unicode = cert_with(&[(rcgen::DnType::CommonName, "capteur-été")]);
        assert_eq!(common_name(&unicode).as_deref(), Some("capteur-été"));
        assert_eq!(
            common_name(&cert_with(&[(rcgen::DnType::OrganizationName, "x")])),
            None
        );
    }

    #[test]
    fn garbage_is_no_common_name() {
        assert_eq!(common_name(&[]), None);
        assert_eq!(common_name(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]), None);
        let cert = cert_with(&[(rcgen::DnType::CommonName, "a")]);
        for cut in 0..cert.len() {
            let _ = common_name(&cert[..cut]);
        }
    }
}
