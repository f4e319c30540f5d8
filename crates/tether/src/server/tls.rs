//! The server's TLS configuration: the certificate it presents, replaceable while it runs,
//! and the rustls `ServerConfig` made from it and the settings (ALPN `http/1.1`, TLS 1.2
//! and 1.3, session resumption).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::config::Config;

/// The certificate chain and private key a TLS server presents, replaceable while it runs:
/// a replacement serves the handshakes that start after it, and connections already
/// established keep the session they have.
///
/// Keys may be RSA, ECDSA (P-256, P-384) or Ed25519, in PKCS#8, PKCS#1 or SEC1 PEM.
///
/// ```no_run
/// let cert = tether::TlsCertificate::from_pem_files("cert.pem", "key.pem")?;
/// let server = tether::Server::builder().tls_certificate(cert.clone()).bind("0.0.0.0:443")?;
/// // Later, after the files were renewed:
/// cert.reload()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TlsCertificate {
    current: RwLock<Arc<CertifiedKey>>,
    /// The files it was read from, read again by [`TlsCertificate::reload`].
    files: Option<(PathBuf, PathBuf)>,
}

impl std::fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCertificate")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Reads a PEM chain and key: the chain's first certificate is the server's own.
fn read_pem(cert: &Path, key: &Path) -> io::Result<CertifiedKey> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))
    };
    let chain = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("{}: {e}", cert.display())))?;
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|e| invalid(format!("{}: {e}", key.display())))?;
    certified(chain, key_der)
        .map_err(|e| invalid(format!("{} with {}: {e}", cert.display(), key.display())))
}

/// The chain with its signing key, refused when empty or when the key is not the
/// certificate's.
fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> io::Result<CertifiedKey> {
    if chain.is_empty() {
        return Err(invalid("no certificate"));
    }
    CertifiedKey::from_der(chain, key, &provider()).map_err(invalid)
}

impl TlsCertificate {
    /// Reads a certificate chain (PEM, the server's own certificate first) and its private
    /// key (PEM) from files, which [`TlsCertificate::reload`] reads again.
    ///
    /// # Errors
    /// A file that cannot be read, holds no certificate or no key, a key of an unsupported
    /// kind, or a key that does not match the certificate; the message names the file.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> io::Result<Arc<TlsCertificate>> {
        let (cert, key) = (cert.as_ref().to_owned(), key.as_ref().to_owned());
        let current = read_pem(&cert, &key)?;
        Ok(Arc::new(TlsCertificate {
            current: RwLock::new(Arc::new(current)),
            files: Some((cert, key)),
        }))
    }

    /// A certificate chain (DER, the server's own first) and its private key.
    ///
    /// # Errors
    /// An empty chain, a key of an unsupported kind, or a key that does not match.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> io::Result<Arc<TlsCertificate>> {
        Ok(Arc::new(TlsCertificate {
            current: RwLock::new(Arc::new(certified(chain, key)?)),
            files: None,
        }))
    }

    /// Reads the files given to [`TlsCertificate::from_pem_files`] again and, if they
    /// hold a valid chain and key, presents them from the next handshake on.
    ///
    /// # Errors
    /// As [`TlsCertificate::from_pem_files`]; the certificate in use stays. A certificate
    /// made from DER has no files: `Unsupported`.
    pub fn reload(&self) -> io::Result<()> {
        let Some((cert, key)) = &self.files else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this certificate was not read from files",
            ));
        };
        self.set(read_pem(cert, key)?);
        Ok(())
    }

    /// Presents `chain` and `key` from the next handshake on.
    ///
    /// # Errors
    /// As [`TlsCertificate::from_der`]; the certificate in use stays.
    pub fn replace(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> io::Result<()> {
        self.set(certified(chain, key)?);
        Ok(())
    }

    /// The server's own certificate (DER) presented now.
    pub fn end_entity(&self) -> CertificateDer<'static> {
        self.now().cert[0].clone()
    }

    fn set(&self, key: CertifiedKey) {
        // A poisoned lock only means a reader panicked; the value is whole either way.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
    }

    fn now(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for TlsCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.now())
    }
}

/// The rustls configuration of a server presenting `cert`: TLS 1.2 and 1.3, ALPN
/// `http/1.1`, and the resumption the settings ask for (`tls_tickets`: TLS 1.3 tickets
/// whose keys rotate every 6 hours, each valid for 12; `tls_session_cache`: sessions kept
/// by the server, for TLS 1.2 clients and for TLS 1.3 when tickets are off).
pub(crate) fn server_config(
    cert: Arc<TlsCertificate>,
    config: &Config,
) -> io::Result<ServerConfig> {
    let mut tls = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(invalid)?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    tls.session_storage = match config.tls_session_cache {
        0 => Arc::new(NoServerSessionStorage {}),
        n => rustls::server::ServerSessionMemoryCache::new(n),
    };
    if config.tls_tickets {
        tls.ticketer = rustls::crypto::ring::Ticketer::new().map_err(invalid)?;
    }
    Ok(tls)
}
