//! TLS for the tests: certificates made on the spot (none is committed), the server and
//! client configurations that use them, and their PEM files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A self-signed certificate (ECDSA P-256) and its key.
pub struct TestCert {
    /// The certificate, DER.
    pub der: CertificateDer<'static>,
    key: Vec<u8>,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The key, PEM (PKCS#8).
    pub key_pem: String,
}

impl TestCert {
    /// For `localhost` and `127.0.0.1`, valid now.
    pub fn localhost() -> TestCert {
        TestCert::for_names(&["localhost", "127.0.0.1"])
    }

    /// For `names`, valid now.
    pub fn for_names(names: &[&str]) -> TestCert {
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("certificate names");
        TestCert::made(params)
    }

    /// For `localhost`, but expired in 2001.
    pub fn expired() -> TestCert {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("certificate names");
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        TestCert::made(params)
    }

    fn made(params: rcgen::CertificateParams) -> TestCert {
        let key = rcgen::KeyPair::generate().expect("a key pair");
        let cert = params.self_signed(&key).expect("a certificate");
        TestCert {
            der: cert.der().clone(),
            key: key.serialize_der(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// The private key, DER.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()))
    }

    /// The certificate as the engine takes it.
    pub fn tether(&self) -> Arc<tether::TlsCertificate> {
        tether::TlsCertificate::from_der(vec![self.der.clone()], self.key()).expect("a valid key")
    }

    /// A rustls server configuration of rustls's defaults presenting it, with ALPN
    /// `http/1.1`.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![self.der.clone()], self.key())
            .expect("a valid key");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// Writes `cert.pem` and `key.pem` into `dir`.
    pub fn write_pem(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.cert_pem).expect("write cert.pem");
        std::fs::write(&key, &self.key_pem).expect("write key.pem");
        (cert, key)
    }
}

/// A client configuration trusting `cert` alone, offering ALPN `http/1.1`.
pub fn client_config(cert: &TestCert) -> Arc<rustls::ClientConfig> {
    client_config_alpn(cert, &[b"http/1.1"])
}

/// A client configuration trusting `cert` alone, offering `alpn`.
pub fn client_config_alpn(cert: &TestCert, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).expect("a valid certificate");
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A client configuration that accepts any certificate (still checking the handshake's
/// signatures), offering ALPN `http/1.1`: for a server whose certificate a test learns from
/// the connection itself, such as a self-signed one made at startup.
pub fn any_cert_client_config() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
