//! A scrape config's HTTP client settings: `basic_auth`, `authorization`, `oauth2`,
//! `follow_redirects` and `enable_http2`, checked as upstream checks them. Secrets read from
//! files are read at each request, so a rotated credential applies without a reload.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::headers::HttpHeader;
use super::proxy::{EnvironmentProxies, NoProxy};
use super::TlsVersion;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default, deserialize_with = "super::scalar::optional")]
    pub username: Option<String>,
    pub username_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "super::scalar::optional")]
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "super::scalar::optional")]
    pub credentials: Option<String>,
    pub credentials_file: Option<PathBuf>,
}

/// `tls_config`: how the server is verified and how the client proves itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The CA bundle that signs the server's certificate; default the system's.
    #[serde(default, deserialize_with = "non_empty")]
    pub ca_file: Option<PathBuf>,
    /// A client certificate and key, for servers that want one.
    #[serde(default, deserialize_with = "non_empty")]
    pub cert_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "non_empty")]
    pub key_file: Option<PathBuf>,
    /// The same as PEM text in the file itself (upstream's `ca`, `cert`, `key`; the key is a
    /// secret). Empty, these and the paths are unset, as upstream reads them.
    #[serde(default, deserialize_with = "non_empty")]
    pub ca: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub cert: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub key: Option<String>,
    /// The name to verify the server's certificate for; default the target's host.
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// The versions offered: at least TLS 1.2 (upstream's default minimum), at most `max_version`.
    #[serde(default, deserialize_with = "tls_version")]
    pub min_version: Option<TlsVersion>,
    #[serde(default, deserialize_with = "tls_version")]
    pub max_version: Option<TlsVersion>,
}

/// A string or path, none when empty.
fn non_empty<'de, D: serde::Deserializer<'de>, T: From<String>>(d: D) -> Result<Option<T>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()).map(T::from))
}

/// A TLS version by Go's name (`TLS12`, `TLS13`).
fn tls_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<TlsVersion>, D::Error> {
    let name = Option::<String>::deserialize(d)?;
    name.map(|n| TlsVersion::parse(&n).map_err(serde::de::Error::custom)).transpose()
}

/// `oauth2`: the OAuth 2.0 client-credentials grant (upstream's `config.OAuth2`, Go's
/// `clientcredentials`): a token is asked of `token_url` and sent as the `Authorization`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    #[serde(default, deserialize_with = "super::scalar::string")]
    pub client_id: String,
    #[serde(default, deserialize_with = "super::scalar::optional")]
    pub client_secret: Option<String>,
    /// Read at each request; a changed secret asks for a new token, as upstream.
    pub client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub token_url: String,
    /// Extra form parameters of the token request.
    #[serde(default, deserialize_with = "super::scalar::map")]
    pub endpoint_params: BTreeMap<String, String>,
    /// How the token endpoint is reached (not the target's settings).
    #[serde(default, rename = "tls_config")]
    pub tls: TlsConfig,
    pub proxy_url: Option<String>,
}

impl OAuth2 {
    /// The client secret, its file read now by `read`.
    pub fn client_secret(&self, read: ReadSecret) -> Result<String, SecretError> {
        secret(&self.client_secret, &self.client_secret_file, read)
    }

    /// The settings of the client that asks `token_url` for tokens.
    pub fn token_client(&self) -> HttpClientConfig {
        HttpClientConfig { tls: self.tls.clone(), proxy_url: self.proxy_url.clone(), ..HttpClientConfig::default() }
    }
}

/// How a target is reached over HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpClientConfig {
    pub tls: TlsConfig,
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    /// An `oauth2` client's token is the `Authorization`; the caller fetches it
    /// ([`HttpClientConfig::authorization_header`] does not).
    pub oauth2: Option<OAuth2>,
    /// An HTTP proxy (`http://[user:password@]host:port`): plain requests go to it in absolute
    /// form, TLS ones through a `CONNECT` tunnel.
    pub proxy_url: Option<String>,
    /// The hosts requests reach without `proxy_url`, parsed once.
    pub no_proxy: Option<NoProxy>,
    /// The proxy is the environment's ([`EnvironmentProxies`]).
    pub proxy_from_environment: bool,
    /// Follow 3xx answers (up to 10), as upstream's default.
    pub follow_redirects: bool,
    /// Accepted for compatibility; scrapes speak HTTP/1.1.
    pub enable_http2: bool,
    /// `http_headers`: more headers, by name ([`HttpClientConfig::extra_headers`]).
    pub http_headers: BTreeMap<String, HttpHeader>,
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        HttpClientConfig {
            tls: TlsConfig::default(),
            basic_auth: None,
            authorization: None,
            oauth2: None,
            proxy_url: None,
            no_proxy: None,
            proxy_from_environment: false,
            follow_redirects: true,
            enable_http2: true,
            http_headers: BTreeMap::new(),
        }
    }
}

/// Reads a secret file for [`HttpClientConfig::authorization_header`] and
/// [`OAuth2::client_secret`]: the caller's I/O.
pub type ReadSecret<'a> = &'a dyn Fn(&Path) -> std::io::Result<String>;

/// A secret file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("unable to read {}: {error}", path.display())]
pub struct SecretError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

/// A secret given inline or in a file (read now with `read`, trailing newline removed).
fn secret(inline: &Option<String>, file: &Option<PathBuf>, read: ReadSecret) -> Result<String, SecretError> {
    match (inline, file) {
        (Some(value), _) => Ok(value.clone()),
        (None, Some(path)) => read(path)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|error| SecretError { path: path.clone(), error }),
        (None, None) => Ok(String::new()),
    }
}

/// The `Basic` credentials header value for `user` and `password`.
pub fn basic_credentials(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// An HTTP proxy URL as Pyrite can use it, or why not.
fn check_proxy(proxy: &Option<String>) -> Result<(), String> {
    let Some(proxy) = proxy else { return Ok(()) };
    let url = url::Url::parse(proxy).map_err(|e| format!("{proxy:?}: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!("{proxy:?}: only http:// proxies are supported"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{proxy:?}: expected http://[user:password@]host:port"));
    }
    Ok(())
}

/// Upstream's checks of a `tls_config`, with its messages.
fn check_tls(tls: &TlsConfig) -> Result<(), String> {
    if tls.ca.is_some() && tls.ca_file.is_some() {
        return Err("at most one of ca, ca_file & ca_ref must be configured".into());
    }
    if tls.cert.is_some() && tls.cert_file.is_some() {
        return Err("at most one of cert, cert_file & cert_ref must be configured".into());
    }
    if tls.key.is_some() && tls.key_file.is_some() {
        return Err("at most one of key and key_file must be configured".into());
    }
    let (cert, key) = (tls.cert.is_some() || tls.cert_file.is_some(), tls.key.is_some() || tls.key_file.is_some());
    if cert && !key {
        return Err("exactly one of key or key_file must be configured when a client certificate is configured".into());
    }
    if key && !cert {
        return Err("exactly one of cert or cert_file must be configured when a client key is configured".into());
    }
    if let (Some(min), Some(max)) = (tls.min_version, tls.max_version) {
        if min > max {
            return Err(
                "tls_config.max_version must be greater than or equal to tls_config.min_version if both are specified"
                    .into(),
            );
        }
    }
    Ok(())
}

impl HttpClientConfig {
    /// The URL of the proxy a request to `host` and `port` goes through, over TLS or not:
    /// `proxy_url` unless `no_proxy` names the host, or the environment's.
    pub fn proxy_url_for<'a>(
        &'a self,
        https: bool,
        host: &str,
        port: u16,
        environment: &'a EnvironmentProxies,
    ) -> Option<&'a str> {
        if self.proxy_from_environment {
            return environment.for_request(https, host, port);
        }
        let bypassed = self.no_proxy.as_ref().is_some_and(|list| list.bypasses(host, port));
        self.proxy_url.as_deref().filter(|_| !bypassed)
    }

    /// The `host:port` of the proxy at `proxy_url` (an `http://` URL), and its
    /// `Proxy-Authorization` value if it has credentials.
    pub fn proxy_address(proxy_url: &str) -> Option<(String, Option<String>)> {
        let url = url::Url::parse(proxy_url).ok().filter(|u| u.scheme() == "http")?;
        let host = format!("{}:{}", url.host_str()?, url.port_or_known_default()?);
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let (user, password) = (decode(url.username()), decode(url.password().unwrap_or("")));
        let credentials = (!user.is_empty() || url.password().is_some()).then(|| basic_credentials(&user, &password));
        Some((host, credentials))
    }

    /// Upstream's checks: the key path under the scrape config, and the problem.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(b) = &self.basic_auth {
            if b.username.is_some() && b.username_file.is_some() {
                return Err((
                    "basic_auth",
                    "at most one of basic_auth username & username_file must be configured".into(),
                ));
            }
            if b.password.is_some() && b.password_file.is_some() {
                return Err((
                    "basic_auth",
                    "at most one of basic_auth password & password_file must be configured".into(),
                ));
            }
        }
        check_proxy(&self.proxy_url).map_err(|m| ("proxy_url", m))?;
        if self.no_proxy.is_some() && self.proxy_url.is_none() {
            return Err(("no_proxy", "if no_proxy is configured, proxy_url must also be configured".into()));
        }
        if self.proxy_from_environment && self.proxy_url.is_some() {
            return Err((
                "proxy_from_environment",
                "if proxy_from_environment is configured, proxy_url must not be configured".into(),
            ));
        }
        if self.proxy_from_environment && self.no_proxy.is_some() {
            return Err((
                "proxy_from_environment",
                "if proxy_from_environment is configured, no_proxy must not be configured".into(),
            ));
        }
        check_tls(&self.tls).map_err(|m| ("tls_config", m))?;
        super::headers::check_http_headers(&self.http_headers).map_err(|m| ("http_headers", m))?;
        if let Some(a) = &self.authorization {
            if self.basic_auth.is_some() || self.oauth2.is_some() {
                return Err((
                    "authorization",
                    "at most one of basic_auth, oauth2 & authorization must be configured".into(),
                ));
            }
            if a.credentials.is_some() && a.credentials_file.is_some() {
                return Err((
                    "authorization",
                    "at most one of authorization credentials & credentials_file must be configured".into(),
                ));
            }
            if a.kind.as_deref().is_some_and(|k| k.eq_ignore_ascii_case("basic")) {
                return Err((
                    "authorization.type",
                    r#"authorization type cannot be set to "basic", use "basic_auth" instead"#.into(),
                ));
            }
        }
        if let Some(o) = &self.oauth2 {
            if self.basic_auth.is_some() {
                return Err(("oauth2", "at most one of basic_auth, oauth2 & authorization must be configured".into()));
            }
            if o.client_id.is_empty() {
                return Err(("oauth2.client_id", "oauth2 client_id must be configured".into()));
            }
            if o.token_url.is_empty() {
                return Err(("oauth2.token_url", "oauth2 token_url must be configured".into()));
            }
            if o.client_secret.as_deref().is_some_and(|s| !s.is_empty()) && o.client_secret_file.is_some() {
                return Err((
                    "oauth2",
                    "at most one of oauth2 client_secret, client_secret_file & client_secret_ref must be configured using grant-type=client_credentials".into(),
                ));
            }
            check_proxy(&o.proxy_url).map_err(|m| ("oauth2.proxy_url", m))?;
            check_tls(&o.tls).map_err(|m| ("oauth2.tls_config", m))?;
        }
        Ok(())
    }

    /// Resolves secret file paths relative to the configuration file's directory.
    pub fn resolve_paths(&mut self, dir: &std::path::Path) {
        let resolve = |p: &mut Option<PathBuf>| {
            if let Some(path) = p.as_mut().filter(|p| p.is_relative()) {
                *path = dir.join(&*path);
            }
        };
        if let Some(b) = &mut self.basic_auth {
            resolve(&mut b.username_file);
            resolve(&mut b.password_file);
        }
        if let Some(a) = &mut self.authorization {
            resolve(&mut a.credentials_file);
        }
        let resolve_tls = |tls: &mut TlsConfig| {
            resolve(&mut tls.ca_file);
            resolve(&mut tls.cert_file);
            resolve(&mut tls.key_file);
        };
        if let Some(o) = &mut self.oauth2 {
            resolve(&mut o.client_secret_file);
            resolve_tls(&mut o.tls);
        }
        resolve_tls(&mut self.tls);
        for file in self.http_headers.values_mut().flat_map(|h| h.files.iter_mut()) {
            if file.is_relative() {
                *file = dir.join(&*file);
            }
        }
    }

    /// The `http_headers` a request carries, by name: values, secrets and the trimmed content
    /// of files read now by `read` (as upstream reads them at every request), joined with
    /// `, ` as the values of one header field. A file that cannot be read fails the request,
    /// as upstream.
    pub fn extra_headers(&self, read: ReadSecret) -> Result<Vec<(String, String)>, SecretError> {
        let mut out = Vec::with_capacity(self.http_headers.len());
        for (name, h) in &self.http_headers {
            let mut values: Vec<String> = h.values.iter().chain(&h.secrets).cloned().collect();
            for path in &h.files {
                let text = read(path).map_err(|error| SecretError { path: path.clone(), error })?;
                values.push(text.trim().to_string());
            }
            if !values.is_empty() {
                out.push((name.clone(), values.join(", ")));
            }
        }
        Ok(out)
    }

    /// The `Authorization` header a request carries, if any, with secret files read now by
    /// `read` (so that a rotated secret is picked up, as upstream).
    pub fn authorization_header(&self, read: ReadSecret) -> Result<Option<String>, SecretError> {
        if let Some(b) = &self.basic_auth {
            let user = secret(&b.username, &b.username_file, read)?;
            let password = secret(&b.password, &b.password_file, read)?;
            return Ok(Some(basic_credentials(&user, &password)));
        }
        if let Some(a) = &self.authorization {
            let kind = a.kind.clone().unwrap_or_else(|| "Bearer".to_string());
            return Ok(Some(format!("{kind} {}", secret(&a.credentials, &a.credentials_file, read)?)));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_as_upstream_sends_them() {
        assert_eq!(basic_credentials("Aladdin", "open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(basic_credentials("a", ""), "Basic YTo=");
        let c = HttpClientConfig {
            basic_auth: Some(BasicAuth {
                username: Some("u".into()),
                username_file: None,
                password: Some("p".into()),
                password_file: None,
            }),
            ..HttpClientConfig::default()
        };
        assert_eq!(c.authorization_header(&|_| unreachable!("no secret file")).unwrap().as_deref(), Some("Basic dTpw"));
        let c = HttpClientConfig {
            authorization: Some(Authorization { kind: None, credentials: Some("t0k".into()), credentials_file: None }),
            ..HttpClientConfig::default()
        };
        assert_eq!(c.authorization_header(&|_| unreachable!("no secret file")).unwrap().as_deref(), Some("Bearer t0k"));
        let bad = Authorization { kind: Some("Basic".into()), credentials: None, credentials_file: None };
        let c = HttpClientConfig { authorization: Some(bad), ..HttpClientConfig::default() };
        assert!(c.validate().unwrap_err().1.contains("use \"basic_auth\""));
    }

    #[test]
    fn a_standalone_client_file_parses_like_a_scrape_configs_client() {
        let text =
            "basic_auth:\n  username: u\n  password_file: pw\ntls_config:\n  ca_file: ca.crt\n  server_name: x\n";
        let c = HttpClientConfig::parse(text, "/etc/pyrite/http.yml").unwrap();
        assert_eq!(c.tls.ca_file, Some("/etc/pyrite/ca.crt".into()));
        assert_eq!(c.basic_auth.unwrap().password_file, Some("/etc/pyrite/pw".into()));
        let e = |text: &str| HttpClientConfig::parse(text, "h.yml").unwrap_err().to_string();
        assert_eq!(
            e("proxy_connect_header: {}\n"),
            "h.yml: proxy_connect_header: key is valid in Prometheus but not supported by Pyrite yet"
        );
        assert_eq!(
            e("http_headers: {user-agent: {values: [x]}}\n"),
            "h.yml: http_headers: setting header \"User-Agent\" is not allowed"
        );
        assert!(e("http_headers: {X-A: {value: [x]}}\n")
            .starts_with("h.yml: http_headers.X-A.value: unknown field `value`"));
        // Inline TLS material, checked as upstream checks it.
        let c = HttpClientConfig::parse("tls_config: {ca: x, cert: y, key: z, ca_file: ''}\n", "h.yml").unwrap();
        assert_eq!((c.tls.ca.as_deref(), c.tls.ca_file), (Some("x"), None));
        for (text, message) in [
            ("{ca: x, ca_file: f}", "at most one of ca, ca_file & ca_ref must be configured"),
            ("{cert: x, cert_file: f, key: k}", "at most one of cert, cert_file & cert_ref must be configured"),
            ("{cert: x, key: k, key_file: f}", "at most one of key and key_file must be configured"),
            (
                "{cert_file: f}",
                "exactly one of key or key_file must be configured when a client certificate is configured",
            ),
            ("{key: k}", "exactly one of cert or cert_file must be configured when a client key is configured"),
        ] {
            assert_eq!(e(&format!("tls_config: {text}\n")), format!("h.yml: tls_config: {message}"));
        }
        let c = HttpClientConfig::parse("http_headers: {X-A: {files: [a], secrets: [s]}}\n", "/etc/h.yml").unwrap();
        assert_eq!(c.http_headers["X-A"].files, [PathBuf::from("/etc/a")]);
        // The keys `authorization` replaced, as upstream 3.x still reads them.
        let bearer = |text| HttpClientConfig::parse(text, "/etc/h.yml").unwrap().authorization.unwrap();
        let token = bearer("bearer_token: t0k\n");
        assert_eq!((token.kind, token.credentials.as_deref(), token.credentials_file), (None, Some("t0k"), None));
        assert_eq!(bearer("bearer_token_file: token\n").credentials_file, Some("/etc/token".into()));
        assert_eq!(
            HttpClientConfig::parse("bearer_token: ''\n", "h.yml").unwrap().authorization,
            None,
            "empty is none"
        );
        for (text, message) in [
            (
                "bearer_token: a\nbearer_token_file: b\n",
                "bearer_token: at most one of bearer_token & bearer_token_file",
            ),
            (
                "bearer_token: a\nbasic_auth: {username: u}\n",
                "bearer_token: at most one of basic_auth, oauth2, bearer_token",
            ),
            (
                "bearer_token_file: a\nauthorization: {credentials: c}\n",
                "authorization: authorization is not compatible",
            ),
        ] {
            assert!(e(text).starts_with(&format!("h.yml: {message}")), "{text}: {}", e(text));
        }
        assert_eq!(e("tls_config:\n  ca_fil: x\n"), "h.yml: tls_config.ca_fil: unknown key");
        let text = "oauth2:\n  client_id: c\n  client_secret_file: secret\n  token_url: https://idp/token\n  tls_config: {ca_file: idp.crt}\n";
        let o = HttpClientConfig::parse(text, "/etc/pyrite/http.yml").unwrap().oauth2.unwrap();
        assert_eq!(o.client_secret_file, Some("/etc/pyrite/secret".into()));
        assert_eq!(o.token_client().tls.ca_file, Some("/etc/pyrite/idp.crt".into()));
        assert_eq!(o.client_secret(&|p| Ok(format!("{}\n", p.display()))).unwrap(), "/etc/pyrite/secret");
        assert_eq!(
            e("oauth2: {client_id: c, token_url: 'http://t/'}\nbasic_auth: {username: u}\n"),
            "h.yml: oauth2: at most one of basic_auth, oauth2 & authorization must be configured"
        );
        let tls = HttpClientConfig::parse("tls_config: {min_version: TLS13}\n", "h.yml").unwrap().tls;
        assert_eq!((tls.min_version, tls.max_version), (Some(TlsVersion::Tls13), None));
        assert!(e("tls_config: {min_version: TLS11}\n").contains("TLS11 is not supported by Pyrite"));
        assert!(e("tls_config: {min_version: TLS13, max_version: TLS12}\n").contains("max_version must be greater"));
        // The proxy keys, refused together as upstream refuses them.
        for (text, message) in [
            ("no_proxy: a\n", "no_proxy: if no_proxy is configured, proxy_url must also be configured"),
            (
                "proxy_from_environment: true\nproxy_url: http://p:1\n",
                "proxy_from_environment: if proxy_from_environment is configured, proxy_url must not be configured",
            ),
        ] {
            assert_eq!(e(text), format!("h.yml: {message}"));
        }
        let c = HttpClientConfig::parse("proxy_url: http://p:3128\nno_proxy: skip.me\n", "h.yml").unwrap();
        let none = EnvironmentProxies::default();
        assert_eq!(c.proxy_url_for(false, "target", 80, &none), Some("http://p:3128"));
        assert_eq!(c.proxy_url_for(false, "skip.me", 80, &none), None);
        assert_eq!(
            c.proxy_url_for(false, "localhost", 80, &none),
            None,
            "with no_proxy, loopback goes direct as in Go"
        );
    }

    #[test]
    fn proxy_urls_are_read_as_urls() {
        let address = HttpClientConfig::proxy_address;
        assert_eq!(address("http://squid:3128/"), Some(("squid:3128".into(), None)));
        assert_eq!(address("http://[::1]:3128"), Some(("[::1]:3128".into(), None)));
        assert_eq!(address("http://squid"), Some(("squid:80".into(), None)));
        assert_eq!(address("https://squid:3128"), None, "only http:// proxies");
        // Credentials are percent-decoded, as Go's url package decodes them.
        let (host, auth) = address("http://u%40corp:p%3Aw@squid:3128").unwrap();
        assert_eq!((host.as_str(), auth), ("squid:3128", Some(basic_credentials("u@corp", "p:w"))));
        assert_eq!(address("http://u@squid:3128").unwrap().1, Some(basic_credentials("u", "")));
        let proxy = |url: &str| HttpClientConfig { proxy_url: Some(url.into()), ..HttpClientConfig::default() };
        for (bad, why) in [
            ("https://squid:3128", "only http:// proxies"),
            ("squid:3128", "only http:// proxies"),
            ("http://squid:3128/path", "expected http://[user:password@]host:port"),
            ("http://", "empty host"),
            ("http://squid:99999", "invalid port"),
        ] {
            let e = proxy(bad).validate().unwrap_err();
            assert!(e.0 == "proxy_url" && e.1.contains(why), "{bad}: {e:?}");
        }
    }
}
