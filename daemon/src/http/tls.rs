//! TLS for the HTTP server: the rustls server configuration built from the web configuration's
//! `tls_server_config` (certificate and key, client-certificate policy, versions, cipher
//! suites, curves), and the handshake over a shard's monoio connection.
//!
//! The handshake runs through `tokio_rustls::TlsAcceptor` over monoio's poll-mode stream (the
//! scrape client does the same with `TlsConnector`), so hyper then serves the decrypted stream
//! like a plain one. Its first five bytes are looked at first, so that plain HTTP sent to the
//! TLS port gets Go's explanatory 400 instead of a TLS alert. The mapping from Go's
//! `crypto/tls` names is in `core/src/config/web.rs`; what rustls cannot do is refused there,
//! at parse time.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use monoio::io::poll_io::{AsyncRead, AsyncWrite, ReadBuf};
use pyrite_core::config::{CipherSuite, ClientAuth, Curve, Pem, TlsServerConfig};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};
use thiserror::Error;
use tokio_rustls::server::TlsStream;

/// Why a TLS server configuration cannot be built: the key under `tls_server_config` it is
/// about, and the problem (naming the file).
#[derive(Debug, Error)]
#[error("{key}: {message}")]
pub struct TlsError {
    key: String,
    message: String,
}

impl TlsError {
    fn new(key: impl Into<String>, message: impl std::fmt::Display) -> TlsError {
        TlsError { key: key.into(), message: message.to_string() }
    }
}

/// The key `pem` was given under (`name` inline, `name_file` as a file), and where it came from.
fn key_and_origin(pem: &Pem, name: &str) -> (String, String) {
    match pem {
        Pem::File(path) => (format!("{name}_file"), path.display().to_string()),
        Pem::Inline(_) => (name.to_string(), "the inline value".into()),
    }
}

/// Every certificate in `pem`, given under `name`.
fn certificates(pem: &Pem, name: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let (key, origin) = key_and_origin(pem, name);
    let certs = match pem {
        Pem::File(path) => crate::files::read_certificates(path),
        Pem::Inline(text) => crate::files::certificates_in(text.as_bytes()),
    };
    let certs = certs.map_err(|e| TlsError::new(&key, format!("unable to load {origin}: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::new(key, format!("no certificate in {origin}")));
    }
    Ok(certs)
}

fn private_key(pem: &Pem) -> Result<PrivateKeyDer<'static>, TlsError> {
    let (key, origin) = key_and_origin(pem, "key");
    match pem {
        Pem::File(path) => crate::files::read_private_key(path),
        Pem::Inline(text) => PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|e| e.to_string()),
    }
    .map_err(|e| TlsError::new(key, format!("unable to load {origin}: {e}")))
}

/// The ring provider restricted to the configured suites and curves.
fn provider(tls: &TlsServerConfig) -> CryptoProvider {
    let mut provider = ring::default_provider();
    if !tls.cipher_suites.is_empty() {
        // As in Go, the list orders TLS 1.2 suites; TLS 1.3 suites stay on.
        let tls13 = provider.cipher_suites.iter().filter(|s| s.tls13().is_some()).copied();
        let tls12 = tls.cipher_suites.iter().map(|s| match s {
            CipherSuite::EcdheEcdsaAes128GcmSha256 => ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            CipherSuite::EcdheEcdsaAes256GcmSha384 => ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            CipherSuite::EcdheEcdsaChacha20Poly1305Sha256 => {
                ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            }
            CipherSuite::EcdheRsaAes128GcmSha256 => ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            CipherSuite::EcdheRsaAes256GcmSha384 => ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            CipherSuite::EcdheRsaChacha20Poly1305Sha256 => {
                ring::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
            }
        });
        provider.cipher_suites = tls12.chain(tls13).collect();
    }
    if !tls.curve_preferences.is_empty() {
        provider.kx_groups = tls
            .curve_preferences
            .iter()
            .filter_map(|c| match c {
                Curve::X25519 => Some(ring::kx_group::X25519),
                Curve::P256 => Some(ring::kx_group::SECP256R1),
                Curve::P384 => Some(ring::kx_group::SECP384R1),
                Curve::P521 => None,
            })
            .collect();
    }
    provider
}

/// The rustls server configuration for `tls`, with certificate, key and client CAs read now.
pub fn server_config(tls: &TlsServerConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(provider(tls));
    let versions = crate::http_client::tls::protocol_versions(tls.min_version, tls.max_version);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::new("min_version", e))?;
    let builder = match tls.client_auth {
        ClientAuth::NoClientCert => builder.with_no_client_auth(),
        auth => {
            let verifier: Arc<dyn ClientCertVerifier> = if auth.verifies() {
                let mut roots = RootCertStore::empty();
                let ca = tls.client_ca.as_ref().ok_or_else(|| TlsError::new("client_ca_file", "missing"))?;
                roots.add_parsable_certificates(certificates(ca, "client_ca")?);
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                let verifier = if auth.mandatory() { verifier } else { verifier.allow_unauthenticated() };
                verifier.build().map_err(|e| TlsError::new(key_and_origin(ca, "client_ca").0, e))?
            } else {
                Arc::new(AnyClientCert { provider: provider.clone(), mandatory: auth.mandatory() })
            };
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certificates(&tls.cert, "cert")?, private_key(&tls.key)?)
        .map_err(|e| TlsError::new(key_and_origin(&tls.key, "key").0, format!("unusable certificate and key: {e}")))?;
    config.ignore_client_order = tls.prefer_server_cipher_suites;
    // Only HTTP/1.1 is served: a client offering h2 settles on it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What Go's server answers to plain HTTP on a TLS port.
const PLAINTEXT_ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// The TLS handshake on an accepted connection, bounded by `timeout`. As Go's server does, a
/// client that starts with a plain HTTP request instead of a TLS record is answered with a 400
/// that says so, and the connection ends.
pub async fn accept<S>(config: Arc<ServerConfig>, mut stream: S, timeout: Duration) -> io::Result<TlsStream<Replay<S>>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = async {
        let head = read_head(&mut stream).await?;
        if matches!(&head[..], b"GET /" | b"HEAD " | b"POST " | b"PUT /" | b"OPTIO") {
            write_all(&mut stream, PLAINTEXT_ANSWER).await?;
            return Err(io::Error::new(io::ErrorKind::InvalidData, "client sent an HTTP request to the TLS port"));
        }
        tokio_rustls::TlsAcceptor::from(config).accept(Replay { head, sent: 0, inner: stream }).await
    };
    monoio::time::timeout(timeout, handshake)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")))
}

/// The first five bytes of `stream` (a TLS record header), fewer if it ends sooner.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Vec<u8>> {
    let mut head = [0u8; 5];
    let mut filled = 0;
    while filled < head.len() {
        let mut buf = ReadBuf::new(&mut head[filled..]);
        poll_fn(|cx| Pin::new(&mut *stream).poll_read(cx, &mut buf)).await?;
        match buf.filled().len() {
            0 => break,
            n => filled += n,
        }
    }
    Ok(head[..filled].to_vec())
}

async fn write_all<S: AsyncWrite + Unpin>(stream: &mut S, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match poll_fn(|cx| Pin::new(&mut *stream).poll_write(cx, bytes)).await? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => bytes = &bytes[n..],
        }
    }
    poll_fn(|cx| Pin::new(&mut *stream).poll_shutdown(cx)).await
}

/// A stream whose first bytes, already read to look at them, are read again.
pub struct Replay<S> {
    head: Vec<u8>,
    sent: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.sent < this.head.len() {
            let n = buf.remaining().min(this.head.len() - this.sent);
            buf.put_slice(&this.head[this.sent..this.sent + n]);
            this.sent += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// `RequestClientCert` and `RequireAnyClientCert`: a certificate is asked for (and demanded if
/// `mandatory`) but not checked against any CA, as Go does; the client still proves that it
/// holds the certificate's key.
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<CryptoProvider>,
    mandatory: bool,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
