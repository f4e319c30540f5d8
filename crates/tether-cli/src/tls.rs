//! `tether serve` over TLS: the certificate from `--tls-cert` and `--tls-key`, or one made
//! for localhost with `--tls-self-signed`, and its reload on SIGHUP.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use tether::TlsCertificate;
use tracing::{info, warn};

/// TLS on the listening address (HTTPS); plain HTTP without these.
#[derive(Args, Debug, Default)]
pub struct TlsArgs {
    /// Serve HTTPS with this certificate chain (PEM, the server's own certificate first); SIGHUP reads it again [default: plain HTTP]
    #[arg(
        long,
        value_name = "PEM",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<PathBuf>,

    /// Private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1; RSA, ECDSA or Ed25519)
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTPS with a certificate for localhost made at startup, its SHA-256 fingerprint logged (for trying tether out)
    #[arg(long)]
    pub tls_self_signed: bool,
}

impl TlsArgs {
    /// The certificate to present, or none for plain HTTP.
    ///
    /// # Errors
    /// A file that cannot be read or does not hold a matching chain and key, named.
    pub fn certificate(&self) -> Result<Option<Arc<TlsCertificate>>, String> {
        if self.tls_self_signed {
            return self_signed().map(Some);
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => TlsCertificate::from_pem_files(cert, key)
                .map(Some)
                .map_err(|e| format!("cannot use the TLS certificate: {e}")),
            _ => Ok(None),
        }
    }
}

/// A certificate for `localhost`, `127.0.0.1` and `::1` made now (ECDSA P-256), its
/// fingerprint logged so that a client can pin it.
fn self_signed() -> Result<Arc<TlsCertificate>, String> {
    let names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("cannot make a certificate: {e}"))?;
    let der = made.cert.der().clone();
    let key = tether::rustls::pki_types::PrivateKeyDer::Pkcs8(made.key_pair.serialize_der().into());
    info!(
        sha256 = %fingerprint(&der),
        "self-signed certificate for localhost made; clients must trust it (curl -k, or pin the fingerprint)"
    );
    TlsCertificate::from_der(vec![der], key).map_err(|e| e.to_string())
}

/// The SHA-256 fingerprint of a certificate as browsers and `openssl x509 -fingerprint`
/// show it: uppercase hex pairs joined by colons.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Reads the certificate's files again on every SIGHUP, on a thread of its own: new
/// handshakes present the new one; a bad file is refused with a log line and the
/// certificate in use stays.
pub fn reload_on_sighup(cert: Arc<TlsCertificate>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Installed before the server is announced, so that no early SIGHUP kills the process.
    let mut hup = rt.block_on(async { signal(SignalKind::hangup()) })?;
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            rt.block_on(async move {
                while hup.recv().await.is_some() {
                    match cert.reload() {
                        Ok(()) => info!(
                            sha256 = %fingerprint(&cert.end_entity()),
                            "SIGHUP: TLS certificate reloaded; new handshakes present it"
                        ),
                        Err(e) => warn!(
                            error = %e,
                            "SIGHUP: TLS certificate not reloaded; the one in use stays"
                        ),
                    }
                }
            })
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_is_sha256_in_colon_separated_hex() {
        // SHA-256 of the empty input.
        assert_eq!(
            fingerprint(b""),
            "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
        );
    }

    #[test]
    fn a_self_signed_certificate_is_made_for_localhost() {
        let cert = self_signed().unwrap();
        assert!(!cert.end_entity().is_empty());
        // It has no files to read again.
        assert_eq!(
            cert.reload().unwrap_err().kind(),
            std::io::ErrorKind::Unsupported
        );
    }
}
