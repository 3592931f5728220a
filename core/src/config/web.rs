//! The web configuration file (`--web.config.file`) in exporter-toolkit's format: TLS for the
//! server (`tls_server_config`), response headers (`http_server_config`) and basic-auth users
//! (`basic_auth_users`, bcrypt hashes).
//!
//! This module only parses and validates the text, as upstream's `getConfig` and
//! `ConfigToTLSConfig` do before they touch a certificate: the daemon reads the file, loads the
//! PEM files it names, builds the rustls configuration and checks passwords
//! (`daemon/src/http/web_config.rs`). Errors carry the key path, as for `prometheus.yml`.
//! Where rustls cannot do what Go's TLS stack does (TLS 1.0/1.1, CBC and RSA key-exchange
//! suites), the key is refused with an error saying so instead of being ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{scalar, ConfigError};

/// A parsed, checked web configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct WebConfig {
    /// TLS, when any TLS key is set (upstream's `IsEnabled`).
    pub tls: Option<TlsServerConfig>,
    /// `http_server_config.http2`: accepted; Pyrite serves HTTP/1.1 only.
    pub http2: bool,
    /// `http_server_config.headers`, set on every response.
    pub headers: Vec<(String, String)>,
    /// User name -> bcrypt hash; empty: no authentication.
    pub basic_auth_users: BTreeMap<String, String>,
}

/// PEM text given inline or as a file (relative paths already joined to the config's directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    Inline(String),
    File(PathBuf),
}

/// `tls_server_config`.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsServerConfig {
    pub cert: Pem,
    pub key: Pem,
    /// CAs that sign client certificates.
    pub client_ca: Option<Pem>,
    pub client_auth: ClientAuth,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// TLS 1.2 suites in preference order; empty: the TLS library's defaults. As in Go, TLS 1.3
    /// suites are not configurable and always on.
    pub cipher_suites: Vec<CipherSuite>,
    /// The server's order of `cipher_suites` wins over the client's.
    pub prefer_server_cipher_suites: bool,
    /// Key-exchange groups in preference order; empty: the defaults.
    pub curve_preferences: Vec<Curve>,
}

/// `client_auth_type`: Go's `tls.ClientAuthType` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    /// Asks for a certificate, accepts none, does not verify one.
    RequestClientCert,
    /// Demands a certificate, does not verify it.
    RequireAnyClientCert,
    /// Verifies a certificate if one is sent.
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    fn parse(name: &str) -> Option<ClientAuth> {
        Some(match name {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            // "RequireClientCert" is upstream's older spelling, still accepted there.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            _ => return None,
        })
    }

    /// Whether certificates are checked against `client_ca`.
    pub fn verifies(self) -> bool {
        matches!(self, ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert)
    }

    /// Whether a client without a certificate is refused.
    pub fn mandatory(self) -> bool {
        matches!(self, ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert)
    }
}

/// The TLS versions rustls implements, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// Go's name of the version.
    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLS12",
            TlsVersion::Tls13 => "TLS13",
        }
    }

    /// Go's name of a version (`TLS12`); TLS10 and TLS11 are refused, as rustls has neither.
    pub(super) fn parse(name: &str) -> Result<TlsVersion, String> {
        match name {
            "TLS12" => Ok(TlsVersion::Tls12),
            "TLS13" => Ok(TlsVersion::Tls13),
            "TLS10" | "TLS11" => Err(format!(
                "{name} is not supported by Pyrite: its TLS library (rustls) implements TLS12 and TLS13 only"
            )),
            _ => Err(format!("unknown TLS version: {name}")),
        }
    }
}

/// The TLS 1.2 cipher suites of Go's `tls.CipherSuites()` that rustls implements, by Go's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherSuite {
    EcdheEcdsaAes128GcmSha256,
    EcdheEcdsaAes256GcmSha384,
    EcdheEcdsaChacha20Poly1305Sha256,
    EcdheRsaAes128GcmSha256,
    EcdheRsaAes256GcmSha384,
    EcdheRsaChacha20Poly1305Sha256,
}

/// Go's names of the suites above.
const CIPHER_SUITES: [(&str, CipherSuite); 6] = [
    ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", CipherSuite::EcdheEcdsaAes128GcmSha256),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", CipherSuite::EcdheEcdsaAes256GcmSha384),
    ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", CipherSuite::EcdheEcdsaChacha20Poly1305Sha256),
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", CipherSuite::EcdheRsaAes128GcmSha256),
    ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", CipherSuite::EcdheRsaAes256GcmSha384),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", CipherSuite::EcdheRsaChacha20Poly1305Sha256),
];

/// Go's TLS 1.3 suites: accepted and, as in Go, without effect (TLS 1.3 suites are always on).
const TLS13_SUITES: [&str; 3] = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"];

/// Suites Go accepts that rustls does not implement (CBC, and RSA key exchange without forward
/// secrecy): refused with a reason rather than called unknown.
const GO_ONLY_SUITES: [&str; 8] = [
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
];

/// `curve_preferences`: Go's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    /// Accepted; rustls (ring) has no P-521, so it is never offered.
    P521,
    X25519,
}

impl Curve {
    fn parse(name: &str) -> Option<Curve> {
        Some(match name {
            "CurveP256" => Curve::P256,
            "CurveP384" => Curve::P384,
            "CurveP521" => Curve::P521,
            "X25519" => Curve::X25519,
            _ => return None,
        })
    }
}

/// Response headers upstream lets the file set, with the only values allowed (None: any).
const HEADERS: [(&str, Option<&[&str]>); 5] = [
    ("Strict-Transport-Security", None),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-XSS-Protection", None),
    ("Content-Security-Policy", None),
];

/// Keys upstream knows that Pyrite does not implement: refused by name before deserialization.
const UNSUPPORTED: [(&str, &str); 2] = [("", "rate_limit"), ("tls_server_config", "client_allowed_sans")];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    #[serde(default, deserialize_with = "scalar::optional_map")]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_ca_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    prefer_server_cipher_suites: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    #[serde(default, deserialize_with = "scalar::optional_map")]
    headers: Option<BTreeMap<String, String>>,
}

impl WebConfig {
    /// Parses and checks a web configuration; `file` names it in errors, and relative paths in
    /// it are taken relative to its directory.
    pub fn parse(text: &str, file: &str) -> Result<WebConfig, ConfigError> {
        let invalid =
            |path: &str, message: String| ConfigError::Invalid { file: file.into(), path: path.into(), message };
        let value = super::yaml(text, file)?;
        for (section, key) in UNSUPPORTED {
            let parent = if section.is_empty() { Some(&value) } else { value.get(section) };
            if parent.and_then(|p| p.get(key)).is_some() {
                let path = if section.is_empty() { key.to_string() } else { format!("{section}.{key}") };
                return Err(ConfigError::Unsupported { file: file.into(), path });
            }
        }
        // A file of only comments is YAML null: the defaults.
        let raw: RawWebConfig = if value.is_null() { RawWebConfig::default() } else { super::typed(value, file)? };
        let dir = Path::new(file).parent().unwrap_or(Path::new(""));
        let tls = match raw.tls_server_config {
            Some(t) => t.build(dir).map_err(|(key, message)| invalid(&format!("tls_server_config.{key}"), message))?,
            None => None,
        };
        let http = raw.http_server_config.unwrap_or_default();
        let mut headers = Vec::new();
        for (name, value) in http.headers.unwrap_or_default() {
            let at = format!("http_server_config.headers.{name}");
            let Some((_, allowed)) = HEADERS.iter().find(|(n, _)| *n == name) else {
                return Err(invalid(&at, format!("HTTP header {name:?} can not be configured")));
            };
            if let Some(allowed) = allowed.filter(|a| !a.contains(&value.as_str())) {
                return Err(invalid(
                    &at,
                    format!("invalid value for {name}. Expected one of: {allowed:?}, but got: {value:?}"),
                ));
            }
            if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err(invalid(&at, "control characters are not allowed in a header value".into()));
            }
            headers.push((name, value));
        }
        let users = raw.basic_auth_users.unwrap_or_default();
        for (user, hash) in &users {
            check_bcrypt(hash).map_err(|m| invalid(&format!("basic_auth_users.{user}"), m))?;
        }
        Ok(WebConfig { tls, http2: http.http2.unwrap_or(true), headers, basic_auth_users: users })
    }
}

/// Upstream's check of a stored hash (`bcrypt.Cost`): `$2a$`, `$2b$` or `$2y$`, a cost of 4 to
/// 31, then 22 characters of salt and 31 of hash.
fn check_bcrypt(hash: &str) -> Result<(), String> {
    let mut parts = hash.split('$');
    let (Some(""), Some(version), Some(cost), Some(rest), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a bcrypt hash ($2y$<cost>$<salt and hash>)".into());
    };
    if !matches!(version, "2a" | "2b" | "2y") {
        return Err(format!("unsupported bcrypt version {version:?}"));
    }
    match cost.parse::<u32>() {
        Ok(4..=31) if cost.len() == 2 => {}
        _ => return Err(format!("invalid bcrypt cost {cost:?} (04 to 31)")),
    }
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'/';
    if rest.len() != 53 || !rest.bytes().all(alphabet) {
        return Err("invalid bcrypt salt and hash (53 characters expected)".into());
    }
    Ok(())
}

impl RawTls {
    /// The TLS settings, or None when no TLS key is set; errors name the key under
    /// `tls_server_config`.
    fn build(self, dir: &Path) -> Result<Option<TlsServerConfig>, (String, String)> {
        let enabled = self.cert.is_some()
            || self.cert_file.is_some()
            || self.key.is_some()
            || self.key_file.is_some()
            || self.client_ca.is_some()
            || self.client_ca_file.is_some()
            || self.client_auth_type.is_some();
        if !enabled {
            return Ok(None);
        }
        let err = |key: &str, message: String| (key.to_string(), message);
        let pem = |inline: Option<String>, file: Option<PathBuf>, name: &str| match (inline, file) {
            (Some(_), Some(_)) => Err(err(name, format!("at most one of {name} & {name}_file must be configured"))),
            (Some(text), None) => Ok(Some(Pem::Inline(text))),
            (None, Some(path)) => Ok(Some(Pem::File(dir.join(path)))),
            (None, None) => Ok(None),
        };
        let cert = pem(self.cert, self.cert_file, "cert")?
            .ok_or_else(|| err("cert_file", "missing one of cert or cert_file".into()))?;
        let key = pem(self.key, self.key_file, "key")?
            .ok_or_else(|| err("key_file", "missing one of key or key_file".into()))?;
        let client_ca = pem(self.client_ca, self.client_ca_file, "client_ca")?;
        let auth_name = self.client_auth_type.unwrap_or_default();
        let client_auth = ClientAuth::parse(&auth_name)
            .ok_or_else(|| err("client_auth_type", format!("invalid ClientAuth: {auth_name}")))?;
        if client_ca.is_some() && client_auth == ClientAuth::NoClientCert {
            return Err(err("client_ca_file", "client CA's have been configured without a Client Auth Policy".into()));
        }
        if client_auth.verifies() && client_ca.is_none() {
            return Err(err(
                "client_ca_file",
                format!("client_auth_type {auth_name} needs client_ca_file or client_ca"),
            ));
        }
        let version = |key: &str, v: Option<String>, default| {
            v.map_or(Ok(default), |v| TlsVersion::parse(&v).map_err(|m| err(key, m)))
        };
        let min_version = version("min_version", self.min_version, TlsVersion::Tls12)?;
        let max_version = version("max_version", self.max_version, TlsVersion::Tls13)?;
        if min_version > max_version {
            return Err(err("min_version", "min_version is above max_version".into()));
        }
        let (suite_names, curve_names) =
            (self.cipher_suites.unwrap_or_default(), self.curve_preferences.unwrap_or_default());
        let mut cipher_suites = Vec::new();
        for (i, name) in suite_names.iter().enumerate() {
            if let Some((_, suite)) = CIPHER_SUITES.iter().find(|(n, _)| n == name) {
                cipher_suites.push(*suite);
            } else if GO_ONLY_SUITES.contains(&name.as_str()) {
                let why = "rustls implements only AEAD suites with forward secrecy";
                return Err(err(
                    &format!("cipher_suites[{i}]"),
                    format!("cipher {name} is not supported by Pyrite: {why}"),
                ));
            } else if !TLS13_SUITES.contains(&name.as_str()) {
                return Err(err(&format!("cipher_suites[{i}]"), format!("unknown cipher: {name}")));
            }
        }
        if !suite_names.is_empty() && cipher_suites.is_empty() && max_version == TlsVersion::Tls12 {
            return Err(err("cipher_suites", "no TLS12 cipher suite is listed, and max_version is TLS12".into()));
        }
        let mut curve_preferences = Vec::new();
        for (i, name) in curve_names.iter().enumerate() {
            curve_preferences.push(
                Curve::parse(name)
                    .ok_or_else(|| err(&format!("curve_preferences[{i}]"), format!("unknown curve: {name}")))?,
            );
        }
        if !curve_preferences.is_empty() && curve_preferences.iter().all(|c| *c == Curve::P521) {
            return Err(err(
                "curve_preferences",
                "CurveP521 is not supported by Pyrite's TLS library: list another curve too".into(),
            ));
        }
        Ok(Some(TlsServerConfig {
            cert,
            key,
            client_ca,
            client_auth,
            min_version,
            max_version,
            cipher_suites,
            prefer_server_cipher_suites: self.prefer_server_cipher_suites.unwrap_or(true),
            curve_preferences,
        }))
    }
}

impl TlsServerConfig {
    /// The files this configuration reads (certificate, key, client CAs), to notice changes.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()].into_iter().flatten().filter_map(|p| match p {
            Pem::File(path) => Some(path.as_path()),
            Pem::Inline(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

    fn error(text: &str) -> String {
        WebConfig::parse(text, "/etc/web.yml").unwrap_err().to_string()
    }

    #[test]
    fn empty_file_means_no_tls_and_no_auth() {
        let empty_sections = "tls_server_config:\nhttp_server_config:\n  headers:\nbasic_auth_users:\n";
        for text in ["", "\n", "# nothing\n", "{}", empty_sections] {
            let c = WebConfig::parse(text, "web.yml").unwrap();
            assert_eq!((c.tls, c.http2, c.headers.len(), c.basic_auth_users.len()), (None, true, 0, 0), "{text:?}");
        }
    }

    #[test]
    fn a_full_file_parses_with_paths_relative_to_it() {
        let text = format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: /abs/server.key\n  client_ca_file: ca.crt\n  \
             client_auth_type: RequireAndVerifyClientCert\n  min_version: TLS13\n  \
             cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]\n  \
             curve_preferences: [X25519, CurveP521]\n  prefer_server_cipher_suites: false\n\
             http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n\
             basic_auth_users:\n  alice: {HASH}\n"
        );
        let c = WebConfig::parse(&text, "/etc/pyrite/web.yml").unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert, Pem::File("/etc/pyrite/server.crt".into()));
        assert_eq!(tls.key, Pem::File("/abs/server.key".into()));
        assert_eq!(tls.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert_eq!((tls.min_version, tls.max_version), (TlsVersion::Tls13, TlsVersion::Tls13));
        assert_eq!(tls.cipher_suites, [CipherSuite::EcdheRsaAes128GcmSha256]);
        assert_eq!(tls.curve_preferences, [Curve::X25519, Curve::P521]);
        assert!(!tls.prefer_server_cipher_suites);
        assert_eq!(tls.files().count(), 3);
        assert!(!c.http2);
        assert_eq!(c.headers, [("X-Frame-Options".to_string(), "deny".to_string())]);
        assert_eq!(c.basic_auth_users["alice"], HASH);
    }

    /// A user name Go's YAML reads as a number is a name, as upstream takes it.
    #[test]
    fn numeric_user_names_are_names() {
        let c = WebConfig::parse(&format!("basic_auth_users:\n  123: {HASH}\n  true: {HASH}\n"), "web.yml").unwrap();
        assert_eq!(c.basic_auth_users.keys().collect::<Vec<_>>(), ["123", "true"]);
    }

    #[test]
    fn unknown_and_unsupported_keys_are_named() {
        assert!(error("tls_server_config:\n  cert_fil: x\n")
            .contains("/etc/web.yml: tls_server_config.cert_fil: unknown field `cert_fil`"));
        assert!(error("basic_auth_user: {}\n").contains("unknown field `basic_auth_user`"));
        assert!(error("rate_limit:\n  burst: 1\n")
            .contains("/etc/web.yml: rate_limit: key is valid in Prometheus but not supported by Pyrite yet"));
        let sans = "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_allowed_sans: [x]\n";
        assert!(error(sans).contains("tls_server_config.client_allowed_sans: key is valid"));
    }

    #[test]
    fn tls_settings_are_checked_as_upstream_checks_them() {
        let base = "tls_server_config:\n  cert_file: a\n  key_file: b\n";
        assert!(error("tls_server_config:\n  cert_file: a\n")
            .contains("tls_server_config.key_file: missing one of key or key_file"));
        assert!(error(&format!("{base}  client_auth_type: Sometimes\n")).contains("invalid ClientAuth: Sometimes"));
        assert!(error(&format!("{base}  client_ca_file: c\n")).contains("without a Client Auth Policy"));
        assert!(
            error(&format!("{base}  client_auth_type: RequireAndVerifyClientCert\n")).contains("needs client_ca_file")
        );
        assert!(
            error(&format!("{base}  min_version: TLS11\n")).contains("min_version: TLS11 is not supported by Pyrite")
        );
        assert!(error(&format!("{base}  max_version: SSL3\n")).contains("unknown TLS version: SSL3"));
        assert!(error(&format!("{base}  min_version: TLS13\n  max_version: TLS12\n")).contains("above max_version"));
        let cbc = error(&format!("{base}  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n"));
        assert!(cbc.contains("cipher_suites[0]: cipher TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA is not supported"), "{cbc}");
        assert!(error(&format!("{base}  cipher_suites: [NOPE]\n")).contains("cipher_suites[0]: unknown cipher: NOPE"));
        assert!(error(&format!("{base}  curve_preferences: [CurveP999]\n")).contains("unknown curve: CurveP999"));
        assert!(error(&format!("{base}  curve_preferences: [CurveP521]\n")).contains("CurveP521 is not supported"));
        let c = WebConfig::parse(&format!("{base}  client_auth_type: RequireClientCert\n"), "w.yml").unwrap();
        assert_eq!(c.tls.unwrap().client_auth, ClientAuth::RequireAnyClientCert);
    }

    #[test]
    fn headers_and_users_are_checked_as_upstream_checks_them() {
        assert!(error("http_server_config:\n  headers:\n    Server: x\n")
            .contains("HTTP header \"Server\" can not be configured"));
        assert!(
            error("http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n").contains("Expected one of")
        );
        let bad = error("basic_auth_users:\n  bob: secret\n");
        assert!(bad.contains("/etc/web.yml: basic_auth_users.bob: not a bcrypt hash"), "{bad}");
        assert!(error("basic_auth_users:\n  bob: $2y$03$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n")
            .contains("cost"));
        assert!(check_bcrypt(HASH).is_ok());
    }
}
