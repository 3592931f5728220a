//! TLS for `https` targets: a rustls client configuration (ring) from a scrape config's
//! `tls_config` — the CA bundle to trust (default the system's), a client certificate for
//! servers that ask for one, the name to verify, and `insecure_skip_verify`.

use std::sync::Arc;

use pyrite_core::config::TlsConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Debian's bundle of the system's trusted CAs.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The client configuration for `tls`; the error names the file and the problem.
pub fn client_config(tls: &TlsConfig) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut roots = RootCertStore::empty();
    let ca_file = tls.ca_file.clone().unwrap_or_else(|| SYSTEM_CAS.into());
    if tls.ca_file.is_some() || ca_file.exists() {
        let certs = CertificateDer::pem_file_iter(&ca_file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("unable to load CA file {}: {e}", ca_file.display()))?;
        let (_, rejected) = roots.add_parsable_certificates(certs);
        if tls.ca_file.is_some() && roots.is_empty() {
            return Err(format!(
                "unable to use CA file {}: no usable certificate ({rejected} rejected)",
                ca_file.display()
            ));
        }
    }
    let builder = builder.with_root_certificates(roots);
    let mut config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("unable to load client certificate {}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
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
