//! TLS for outbound `https` (scrape targets, and this module's HTTP clients): a rustls client
//! configuration (ring) from a `tls_config` — the CA bundle to trust (default the system's), a
//! client certificate for servers that ask for one, each from a file or inline PEM, the name to
//! verify, and `insecure_skip_verify`.
//!
//! The system's CAs are found as Go finds them (so as upstream does): the file named by
//! `SSL_CERT_FILE`, else the first bundle of [`SYSTEM_CA_FILES`] that exists. Where there is
//! none (a `FROM scratch` image), the Mozilla roots compiled into the binary are trusted. They
//! are read once, as Go reads them, and shared by every target.
//!
//! A certificate that is itself one of the `ca_file`'s is trusted as it is, as Go trusts it:
//! `openssl req -x509` makes a self-signed certificate marked as a CA, and operators give it as
//! its own target's `ca_file`. webpki refuses a CA as a server's certificate
//! ([`TrustedAsIs`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pyrite_core::config::{TlsConfig, TlsVersion};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};

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

/// rustls's versions from `min` to `max`: the client's and the server's.
pub fn protocol_versions(min: TlsVersion, max: TlsVersion) -> Vec<&'static rustls::SupportedProtocolVersion> {
    [(TlsVersion::Tls12, &rustls::version::TLS12), (TlsVersion::Tls13, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(v, _)| (min..=max).contains(v))
        .map(|(_, v)| v)
        .collect()
}

/// The client configuration for `tls`; the error names the file and the problem.
pub fn client_config(tls: &TlsConfig) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions =
        protocol_versions(tls.min_version.unwrap_or(TlsVersion::Tls12), tls.max_version.unwrap_or(TlsVersion::Tls13));
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let builder = match pem(&tls.ca, &tls.ca_file, "CA", crate::files::certificates_in)? {
        Some((cas, named)) => {
            let verifier =
                TrustedAsIs::new(cas, provider.clone()).map_err(|e| format!("unable to use {named}: {e}"))?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier))
        }
        None => builder.with_root_certificates(SYSTEM_ROOTS.clone()?),
    };
    let chain = pem(&tls.cert, &tls.cert_file, "client certificate", crate::files::certificates_in)?;
    let key = pem(&tls.key, &tls.key_file, "client key", crate::files::private_key_in)?;
    let mut config = match (chain, key) {
        (Some((chain, _)), Some((key, _))) => {
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("unusable client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    if tls.insecure_skip_verify {
        config.dangerous().set_certificate_verifier(Arc::new(NoVerification(provider)));
    }
    Ok(Arc::new(config))
}

/// PEM given inline or in a file, parsed by `parse`, with the words that name it in errors
/// (`the inline client key`, `client key file /etc/k.pem`); none if neither is given.
fn pem<T>(
    inline: &Option<String>,
    file: &Option<PathBuf>,
    what: &str,
    parse: fn(&[u8]) -> Result<T, String>,
) -> Result<Option<(T, String)>, String> {
    let (bytes, named) = match (inline, file) {
        (Some(pem), _) => (pem.as_bytes().to_vec(), format!("the inline {what}")),
        (None, Some(file)) => {
            let named = format!("{what} file {}", file.display());
            (crate::files::read_bytes(file).map_err(|e| format!("unable to load {named}: {e}"))?, named)
        }
        (None, None) => return Ok(None),
    };
    let parsed = parse(&bytes).map_err(|e| format!("unable to load {named}: {e}"))?;
    Ok(Some((parsed, named)))
}

/// The name the server's certificate must carry: `server_name`, or the host of the target's
/// address (`host`, `host:port`, `[v6]`, `[v6]:port`).
pub fn server_name(tls: &TlsConfig, address: &str) -> Result<ServerName<'static>, String> {
    let host = match &tls.server_name {
        Some(name) => name.as_str(),
        None => match address.strip_prefix('[') {
            Some(bracketed) => bracketed.split_once(']').map_or(bracketed, |(host, _)| host),
            None => address.split_once(':').map_or(address, |(host, _)| host),
        },
    };
    ServerName::try_from(host.to_string()).map_err(|e| format!("invalid server name {host:?}: {e}"))
}

/// The `ca_file`'s CAs as webpki checks them, and the certificate that is itself one of them
/// trusted as it is, as Go's `x509.Verify` trusts it (a chain of the root alone).
///
/// webpki checks a certificate's validity dates before it looks at its basic constraints: a
/// refusal for a CA used as a server's certificate means the dates were good. What is left to
/// check is the name, and the extended key usages, which Go checks too ([`allows_server_auth`]).
#[derive(Debug)]
struct TrustedAsIs {
    webpki: Arc<WebPkiServerVerifier>,
    cas: Vec<CertificateDer<'static>>,
}

impl TrustedAsIs {
    /// The verifier trusting `cas`; an error when none of them can be used.
    fn new(cas: Vec<CertificateDer<'static>>, provider: Arc<CryptoProvider>) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        let (_, rejected) = roots.add_parsable_certificates(cas.iter().cloned());
        if roots.is_empty() {
            return Err(format!("no usable certificate ({rejected} rejected)"));
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(TrustedAsIs { webpki, cas })
    }
}

impl ServerCertVerifier for TrustedAsIs {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(refusal))))
                if matches!(refusal.downcast_ref(), Some(webpki::Error::CaUsedAsEndEntity))
                    && self.cas.iter().any(|ca| ca.as_ref() == end_entity.as_ref()) =>
            {
                rustls::client::verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
                if !allows_server_auth(end_entity.as_ref()) {
                    return Err(rustls::Error::InvalidCertificate(CertificateError::InvalidPurpose));
                }
                Ok(ServerCertVerified::assertion())
            }
            verdict => verdict,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Whether the certificate `der` may serve TLS by its extended key usages, as Go's
/// `x509.Verify` judges a chain of one trusted root: any purpose when it lists none, else only
/// if it lists server authentication or any purpose. A certificate that cannot be read is not
/// (webpki read it already, so that does not happen).
fn allows_server_auth(der: &[u8]) -> bool {
    /// 2.5.29.37, and the purposes 1.3.6.1.5.5.7.3.1 (server authentication) and 2.5.29.37.0.
    const EXTENDED_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
    const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
    const ANY_PURPOSE: &[u8] = &[0x55, 0x1d, 0x25, 0x00];
    let usages = || -> Option<Option<Vec<&[u8]>>> {
        let (_, certificate, _) = der_element(der)?;
        let (_, mut tbs, _) = der_element(certificate)?;
        // The extensions are the TBS certificate's field tagged [3].
        let extensions = loop {
            let (tag, content, rest) = der_element(tbs)?;
            if tag == 0xa3 {
                break der_element(content)?.1;
            }
            if rest.is_empty() {
                return Some(None);
            }
            tbs = rest;
        };
        let mut rest = extensions;
        while !rest.is_empty() {
            let (_, extension, after) = der_element(rest)?;
            rest = after;
            let (_, id, mut fields) = der_element(extension)?;
            if id != EXTENDED_KEY_USAGE {
                continue;
            }
            // An optional BOOLEAN (critical), then the value: an OCTET STRING holding a
            // SEQUENCE of purposes.
            let value = loop {
                let (tag, content, after) = der_element(fields)?;
                if tag == 0x04 {
                    break content;
                }
                fields = after;
            };
            let (_, mut purposes, _) = der_element(value)?;
            let mut listed = Vec::new();
            while !purposes.is_empty() {
                let (_, purpose, after) = der_element(purposes)?;
                listed.push(purpose);
                purposes = after;
            }
            return Some(Some(listed));
        }
        Some(None)
    };
    match usages() {
        Some(None) => true,
        Some(Some(listed)) => listed.iter().any(|&p| p == SERVER_AUTH || p == ANY_PURPOSE),
        None => false,
    }
}

/// The first DER element of `input`: its tag, its content and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = match first {
        short @ 0..=0x7f => (usize::from(short), rest),
        long => {
            let bytes = usize::from(long & 0x7f);
            if bytes == 0 || bytes > 4 || rest.len() < bytes {
                return None;
            }
            let length = rest[..bytes].iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
            (length, &rest[bytes..])
        }
    };
    (length <= rest.len()).then(|| (tag, &rest[..length], &rest[length..]))
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    /// Self-signed, marked as a CA (as `openssl req -x509` makes them), for `localhost` and
    /// 127.0.0.1, valid from 2026-12-07 09:52:57 to 2126-11-13 09:52:57 UTC.
    const SELF_SIGNED: &str = "\
-----BEGIN CERTIFICATE-----
MIIBpDCCAUmgAwIBAgIUWSkR8GFES/hCM5FC7ELUiavsHUowCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNc2VsZi1zaWduZWQtYTAgFw0yNjEyMDcwOTUyNTdaGA8yMTI2
MTExMzA5NTI1N1owGDEWMBQGA1UEAwwNc2VsZi1zaWduZWQtYTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABIzV95d85GeNPI1iHxz2HZX9woK2XdceCa6+AHhreqHh
7nl51whQs4O8MragMsAXeYH0qMRdy/sIdQHpTQB2yBSjbzBtMB0GA1UdDgQWBBRU
kknjVjS5ybkKfV6bKnKsO1HKTjAfBgNVHSMEGDAWgBRUkknjVjS5ybkKfV6bKnKs
O1HKTjAPBgNVHRMBAf8EBTADAQH/MBoGA1UdEQQTMBGCCWxvY2FsaG9zdIcEfwAA
ATAKBggqhkjOPQQDAgNJADBGAiEA7u4dBFUbQz3E3KtfwQ/lPg3NiVTIZAHo3m6a
wya1wYUCIQDzV4wUBSoSj5xmb3OG/CXUrw1dupbe4pP5vB2EuZrRWA==
-----END CERTIFICATE-----
";

    /// Another like it (`self-signed-b`), not trusted below.
    const OTHER_SELF_SIGNED: &str = "\
-----BEGIN CERTIFICATE-----
MIIBozCCAUmgAwIBAgIUS1u2IW0nj1HpOW3dcTQoTKcmCykwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNc2VsZi1zaWduZWQtYjAgFw0yNjEyMDcwOTUyNTdaGA8yMTI2
MTExMzA5NTI1N1owGDEWMBQGA1UEAwwNc2VsZi1zaWduZWQtYjBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABFHrd9fj84EPA7ShhazoMwyaK0qlmnIPnOyHJagn5z/P
QjY0g5j3AZKgB1UmVh7TxLaBO2Z73BlnSB4j3mFoai+jbzBtMB0GA1UdDgQWBBQl
+efzpHT768fl6Cas+ojTIoRmLzAfBgNVHSMEGDAWgBQl+efzpHT768fl6Cas+ojT
IoRmLzAPBgNVHRMBAf8EBTADAQH/MBoGA1UdEQQTMBGCCWxvY2FsaG9zdIcEfwAA
ATAKBggqhkjOPQQDAgNIADBFAiAEHORFjLgovRDqXgCJ5NtqcTmXRvIPB0wOCWz1
o3A9/gIhAJ0J+bErc34VFpX+i9dY15MVyubA6QTZF4NGYpfPUHwq
-----END CERTIFICATE-----
";

    /// Self-signed CAs for `localhost` from 2026-12-07 11:35:46 UTC for a hundred years, whose
    /// extended key usages are client authentication only, and server authentication.
    const CLIENT_AUTH_ONLY: &str = "\
-----BEGIN CERTIFICATE-----
MIIBtDCCAVqgAwIBAgIUJr7830zKrYS2Ut3spZ2753aZSe4wCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOZWt1LWNsaWVudEF1dGgwIBcNMjYxMjA3MTEzNTQ2WhgPMjEy
NjExMTMxMTM1NDZaMBkxFzAVBgNVBAMMDmVrdS1jbGllbnRBdXRoMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEwUuZ5WIV6EPGhvibwUBeUSycxY/pPdDQ58T42qeV
O4wA4Gh+Vb6SDTRF0ZV9nUIjlesrIW91cF9ZtiMZkmSU5KN+MHwwHQYDVR0OBBYE
FAVVkGhonN8/J8KGGKLT1vkcSLn0MB8GA1UdIwQYMBaAFAVVkGhonN8/J8KGGKLT
1vkcSLn0MA8GA1UdEwEB/wQFMAMBAf8wFAYDVR0RBA0wC4IJbG9jYWxob3N0MBMG
A1UdJQQMMAoGCCsGAQUFBwMCMAoGCCqGSM49BAMCA0gAMEUCIQCvdW/F2gn2TbPr
ScjCtczWU13zUejpzJ7OavD3J1Jx/wIgdKaM0GUaggQDTGxrAVTKfcx1PeZHCEok
QNdlg4TkZLM=
-----END CERTIFICATE-----
";
    const SERVER_AUTH: &str = "\
-----BEGIN CERTIFICATE-----
MIIBszCCAVqgAwIBAgIUWSB7lxVOhtHHAghR8id0+sckGyMwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOZWt1LXNlcnZlckF1dGgwIBcNMjYxMjA3MTEzNTQ2WhgPMjEy
NjExMTMxMTM1NDZaMBkxFzAVBgNVBAMMDmVrdS1zZXJ2ZXJBdXRoMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAETYX97JstaUjEFLl9ByBDeb+1JWVRQY9N2yKlQ0HM
1NYQ20hBhIQpLfnW8sDzqsfD493kJWEBv6SajrCFFPBQfKN+MHwwHQYDVR0OBBYE
FJhW4NrqlZXqSr5YXvCt4+bbj8CBMB8GA1UdIwQYMBaAFJhW4NrqlZXqSr5YXvCt
4+bbj8CBMA8GA1UdEwEB/wQFMAMBAf8wFAYDVR0RBA0wC4IJbG9jYWxob3N0MBMG
A1UdJQQMMAoGCCsGAQUFBwMBMAoGCCqGSM49BAMCA0cAMEQCIC9T8tjXiqhn0SK/
00Ub2MvTKU813YuGlgb8wOlztyurAiBviDsDc3l0oP2HhNaQcCDuCZdG7lT7foCo
2xM84PYGjA==
-----END CERTIFICATE-----
";

    fn certificate(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    /// Verifies `pem` for `name` at `unix_seconds`, trusting [`SELF_SIGNED`] only.
    fn verify(pem: &str, name: &str, unix_seconds: u64) -> Result<ServerCertVerified, rustls::Error> {
        verify_trusting(SELF_SIGNED, pem, name, unix_seconds)
    }

    /// Verifies `pem` for `name` at `unix_seconds`, trusting `ca` only.
    fn verify_trusting(
        ca: &str,
        pem: &str,
        name: &str,
        unix_seconds: u64,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = TrustedAsIs::new(vec![certificate(ca)], provider).unwrap();
        let name = ServerName::try_from(name.to_string()).unwrap();
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(unix_seconds));
        verifier.verify_server_cert(&certificate(pem), &[], &name, &[], now)
    }

    #[test]
    fn the_name_to_verify_is_the_addresss_host() {
        let name = |address| server_name(&TlsConfig::default(), address).unwrap().to_str().into_owned();
        for (address, host) in
            [("h:1", "h"), ("h", "h"), ("[::1]:9", "::1"), ("[::1]", "::1"), ("10.0.0.1", "10.0.0.1")]
        {
            assert_eq!(name(address), host, "{address}");
        }
    }

    #[test]
    fn a_trusted_ca_is_taken_as_its_own_servers_certificate_while_valid_for_the_name() {
        let (issued, not_after) = (1_796_637_177, 4_950_237_177);
        for name in ["localhost", "127.0.0.1"] {
            assert!(verify(SELF_SIGNED, name, issued + 60).is_ok(), "{name}");
        }
        let refusal = |pem, name, at| verify(pem, name, at).unwrap_err().to_string();
        assert!(refusal(SELF_SIGNED, "example.com", issued + 60).contains("not valid for name"));
        assert!(refusal(SELF_SIGNED, "localhost", not_after + 60).contains("expired"));
        assert!(refusal(SELF_SIGNED, "localhost", issued - 60).contains("not valid yet"));
        assert!(refusal(OTHER_SELF_SIGNED, "localhost", issued + 60).contains("CaUsedAsEndEntity"));
        // Its extended key usages must allow a server, as Go checks them.
        let at = 1_796_650_000;
        assert!(verify_trusting(SERVER_AUTH, SERVER_AUTH, "localhost", at).is_ok());
        let refused = verify_trusting(CLIENT_AUTH_ONLY, CLIENT_AUTH_ONLY, "localhost", at).unwrap_err();
        assert_eq!(refused, rustls::Error::InvalidCertificate(CertificateError::InvalidPurpose));
    }
}
