//! TLS for outbound `https` (scrape targets, and this module's HTTP clients): a rustls client
//! configuration (ring) from a `tls_config` — the CA bundle to trust (default the system's), a
//! client certificate for servers that ask for one, the name to verify, and
//! `insecure_skip_verify`.
//!
//! The system's CAs are found as Go finds them (so as upstream does): the file named by
//! `SSL_CERT_FILE`, else the first bundle of [`SYSTEM_CA_FILES`] that exists. Where there is
//! none (a `FROM scratch` image), the Mozilla roots compiled into the binary are trusted. They
//! are read once, as Go reads them, and shared by every target.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pyrite_core::config::TlsConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Where Linux distributions keep the bundle of trusted CAs, in the order Go looks.
const SYSTEM_CA_FILES: [&str; 6] = [
    "/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu
    "/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL 6
    "/etc/ssl/ca-bundle.pem",                            // openSUSE
    "/etc/pki/tls/cacert.pem",                           // OpenELEC
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
    "/etc/ssl/cert.pem",                                 // Alpine
];

/// The system's bundle of trusted CAs: `SSL_CERT_FILE`, else the first that exists of
/// [`SYSTEM_CA_FILES`]; `None` where there is none.
fn system_ca_file() -> Option<PathBuf> {
    match std::env::var_os("SSL_CERT_FILE") {
        Some(file) if !file.is_empty() => Some(file.into()),
        _ => SYSTEM_CA_FILES.iter().map(PathBuf::from).find(|f| f.exists()),
    }
}

/// The system's CAs, read once as Go reads them once: every `https` target without a
/// `ca_file` shares them, where each once parsed the bundle into a store of its own.
static SYSTEM_ROOTS: std::sync::LazyLock<Result<Arc<RootCertStore>, String>> = std::sync::LazyLock::new(|| {
    let mut roots = RootCertStore::empty();
    match system_ca_file() {
        Some(system) => drop(roots.add_parsable_certificates(load_cas(&system)?)),
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(Arc::new(roots))
});

/// The CAs in the PEM file `file`.
fn load_cas(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    crate::files::read_certificates(file).map_err(|e| format!("unable to load CA file {}: {e}", file.display()))
}

/// The client configuration for `tls`; the error names the file and the problem.
pub fn client_config(tls: &TlsConfig) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let roots = match &tls.ca_file {
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            let (_, rejected) = roots.add_parsable_certificates(load_cas(ca_file)?);
            if roots.is_empty() {
                return Err(format!(
                    "unable to use CA file {}: no usable certificate ({rejected} rejected)",
                    ca_file.display()
                ));
            }
            Arc::new(roots)
        }
        None => SYSTEM_ROOTS.clone()?,
    };
    let builder = builder.with_root_certificates(roots);
    let mut config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = crate::files::read_certificates(cert)
                .map_err(|e| format!("unable to load client certificate {}: {e}", cert.display()))?;
            let key = crate::files::read_private_key(key)
                .map_err(|e| format!("unable to load client key {}: {e}", key.display()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("unusable client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    if tls.insecure_skip_verify {
        config.dangerous().set_certificate_verifier(Arc::new(NoVerification(provider)));
    }
    Ok(Arc::new(config))
}

/// The name the server's certificate must carry: `server_name`, or the target's host.
pub fn server_name(tls: &TlsConfig, address: &str) -> Result<ServerName<'static>, String> {
    let host = match &tls.server_name {
        Some(name) => name.as_str(),
        None => address.rsplit_once(':').map_or(address, |(h, _)| h).trim_start_matches('[').trim_end_matches(']'),
    };
    ServerName::try_from(host.to_string()).map_err(|e| format!("invalid server name {host:?}: {e}"))
}

/// `insecure_skip_verify`: any certificate is accepted (signatures still checked for form).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
