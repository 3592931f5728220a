//! The `prometheus.yml` model: parsing, defaults and validation.
//!
//! Pyrite accepts a subset of upstream's configuration and says so: a key that upstream knows but
//! Pyrite does not implement yet is refused with an error naming the key path and the file,
//! rather than silently ignored; a key upstream does not know either is refused as unknown. Type
//! errors also carry the key path (`scrape_configs[0].scrape_interval: ...`).

mod alerting;
pub mod duration;
mod headers;
mod http;
mod keys;
mod protocols;
mod proxy;
mod remote_read;
mod remote_write;
mod render;
pub(crate) mod scalar;
mod size;
mod web;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use thiserror::Error;

pub use alerting::{AlertingConfig, AlertmanagerConfig};
pub use duration::Duration;
pub use headers::{for_another_host, HttpHeader};
pub use http::{
    basic_credentials, Authorization, BasicAuth, HttpClientConfig, OAuth2, ReadSecret, SecretError, TlsConfig,
};
pub use protocols::{accept_header, ScrapeProtocol};
pub use proxy::{EnvironmentProxies, NoProxy};
pub use remote_read::RemoteReadConfig;
pub use remote_write::{MetadataConfig, ProtobufMessage, QueueConfig, RemoteWriteConfig, SigV4Config};
pub use size::ByteSize;
pub use web::{CipherSuite, ClientAuth, Curve, Pem, TlsServerConfig, TlsVersion, WebConfig};

use crate::exposition::Escaping;
use crate::labels::{Labels, NameValidation};
use crate::relabel::{RawRule, Rule};

/// A configuration file that could not be used. `path` is the key path inside the file.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    Yaml { file: String, message: String },
    #[error("{file}: {path}: {message}")]
    Invalid { file: String, path: String, message: String },
    #[error("{file}: {path}: key is valid in Prometheus but not supported by Pyrite yet")]
    Unsupported { file: String, path: String },
    #[error("{file}: {path}: unknown key")]
    Unknown { file: String, path: String },
    /// Agent mode runs no rules, sends no alerts and reads no remote storage.
    #[error("{file}: field {field} is not allowed in agent mode")]
    NotInAgentMode { file: String, field: &'static str },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub global: GlobalConfig,
    /// The main file's scrape configs, then those of its `scrape_config_files`
    /// ([`Config::include_scrape_configs`]).
    pub scrape_configs: Vec<ScrapeConfig>,
    /// `scrape_config_files`: patterns (the last element may be a glob) of files holding more
    /// `scrape_configs`, relative to the config file's directory. The files are read by whoever
    /// loads the configuration, at start and at every reload, as upstream.
    pub scrape_config_files: Vec<String>,
    /// Rule file patterns (the last element may be a glob), relative to the config file's directory.
    pub rule_files: Vec<String>,
    pub alerting: AlertingConfig,
    pub remote_write: Vec<RemoteWriteConfig>,
    pub remote_read: Vec<RemoteReadConfig>,
    /// `storage.exemplars.max_exemplars`, if the section is given (upstream's default when
    /// the key is not, [`DEFAULT_MAX_EXEMPLARS`]; negative values mean 0).
    pub max_exemplars: Option<usize>,
    /// `storage.tsdb.out_of_order_time_window`: how far behind the newest sample an
    /// out-of-order sample is still accepted (0: none, the default).
    pub out_of_order_window: Duration,
    /// `storage.tsdb.retention`, if the section is given.
    pub retention: Option<Retention>,
}

/// `storage.tsdb.retention` (upstream 3.x): when given, it replaces the retention flags
/// whole; a limit left out is 0, no limit of that kind, as upstream reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    pub time: Duration,
    pub size: ByteSize,
    /// Of the data directory's file system, 0 to 100; when not 0 it replaces `size`.
    pub percentage: f64,
}

/// Upstream's `storage.exemplars.max_exemplars` when exemplar storage is on.
pub const DEFAULT_MAX_EXEMPLARS: usize = 100_000;

#[derive(Debug, Clone, PartialEq)]
pub struct GlobalConfig {
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    pub evaluation_interval: Duration,
    /// Default `query_offset` of rule groups.
    pub rule_query_offset: Duration,
    pub external_labels: Labels,
    pub limits: ScrapeLimits,
    /// As set; unset, each scrape config picks upstream's default by its
    /// `scrape_native_histograms`.
    pub scrape_protocols: Option<Vec<ScrapeProtocol>>,
    /// The defaults of the scrape configs' histogram keys.
    pub histograms: HistogramKeys,
    /// `metric_name_validation_scheme` and `metric_name_escaping_scheme`, the scrape configs'
    /// defaults; the scheme also governs the alerting and remote-write relabel configs.
    pub names: NameSchemes,
    /// Where every query evaluated is logged, one JSON line each; relative to the
    /// configuration file's directory.
    pub query_log_file: Option<PathBuf>,
    /// `scrape_failure_log_file`, the scrape configs' default; relative to the configuration
    /// file's directory.
    pub scrape_failure_log_file: Option<PathBuf>,
    /// `extra_scrape_metrics`, the scrape configs' default; unset, the server's
    /// (`--enable-feature=extra-scrape-metrics`).
    pub extra_scrape_metrics: Option<bool>,
}

/// Which names scrapes take and how they ask targets to escape others, as upstream 3.x:
/// `utf8` and `allow-utf-8` by default, `underscores` under `legacy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameSchemes {
    pub validation: NameValidation,
    pub escaping: Escaping,
}

impl Default for NameSchemes {
    fn default() -> Self {
        NameSchemes { validation: NameValidation::Utf8, escaping: Escaping::AllowUtf8 }
    }
}

/// An escaping scheme by its name, or upstream's error (`whose`: "global" or "scrape config").
fn escaping_named(name: &str, whose: &str) -> Result<Escaping, String> {
    Escaping::ALL.into_iter().find(|e| e.name() == name).ok_or_else(|| {
        format!(
            "unknown {whose} name escaping method specified, must be one of 'allow-utf-8', 'underscores', 'dots', or 'values', got {name:?}"
        )
    })
}

/// The escaping a validation scheme calls for when none is set.
fn default_escaping(validation: NameValidation) -> Escaping {
    match validation {
        NameValidation::Utf8 => Escaping::AllowUtf8,
        NameValidation::Legacy => Escaping::Underscores,
    }
}

/// The two keys, in `global` and in each scrape config.
#[derive(Deserialize, Default)]
struct RawNameSchemes {
    metric_name_validation_scheme: Option<String>,
    metric_name_escaping_scheme: Option<String>,
}

impl RawNameSchemes {
    /// The validation scheme set, if any (an empty one is none, as upstream reads it); the
    /// error names the key.
    fn validation(&self) -> Result<Option<NameValidation>, (&'static str, String)> {
        match self.metric_name_validation_scheme.as_deref() {
            None | Some("") => Ok(None),
            Some(name) => NameValidation::parse(name).map(Some).map_err(|m| ("metric_name_validation_scheme", m)),
        }
    }

    /// `global`'s schemes.
    fn global(&self) -> Result<NameSchemes, (&'static str, String)> {
        let validation = self.validation()?.unwrap_or(NameValidation::Utf8);
        let escaping = match self.metric_name_escaping_scheme.as_deref() {
            None | Some("") => default_escaping(validation),
            Some(name) => escaping_named(name, "global").map_err(|m| ("metric_name_escaping_scheme", m))?,
        };
        Ok(NameSchemes { validation, escaping })
    }

    /// A scrape config's schemes, as upstream infers them: an unset validation is the global
    /// one, and an unset escaping the global one if the validation is inherited too, else the
    /// one its own validation calls for; `allow-utf-8` wants `utf8`.
    fn scrape(&self, global: NameSchemes) -> Result<NameSchemes, (&'static str, String)> {
        let own = self.validation()?;
        let validation = own.unwrap_or(global.validation);
        let escaping = match (self.metric_name_escaping_scheme.as_deref(), own) {
            (None | Some(""), None) => global.escaping,
            (None | Some(""), Some(v)) => default_escaping(v),
            (Some(name), _) => escaping_named(name, "scrape config").map_err(|m| ("metric_name_escaping_scheme", m))?,
        };
        if escaping == Escaping::AllowUtf8 && validation != NameValidation::Utf8 {
            return Err((
                "metric_name_escaping_scheme",
                "utf8 metric names requested but validation scheme is not set to UTF8".into(),
            ));
        }
        Ok(NameSchemes { validation, escaping })
    }
}

/// `scrape_native_histograms`, `always_scrape_classic_histograms` and
/// `convert_classic_histograms_to_nhcb` (all off by default, as upstream 3.x).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramKeys {
    /// Native histograms are taken as such (and the protobuf format asked for first).
    pub scrape_native_histograms: bool,
    /// A histogram's classic series are taken even when it is taken as a native histogram.
    pub always_scrape_classic_histograms: bool,
    /// Classic histograms are taken as native histograms with custom buckets.
    pub convert_classic_histograms_to_nhcb: bool,
}

/// The limits a scrape config sets or inherits from `global`; 0 means no limit, as upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrapeLimits {
    /// A scrape with more samples (after metric relabeling) fails whole.
    pub sample_limit: u64,
    /// A series with more labels fails the scrape.
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    /// More targets (after relabeling) than this fails every target of the config.
    pub target_limit: u64,
    /// At most this many of the targets relabeling dropped are kept for `/api/v1/targets`
    /// (all are counted).
    pub keep_dropped_targets: u64,
    /// A larger (uncompressed) body fails the scrape.
    pub body_size_limit: ByteSize,
}

/// One `scrape_configs` entry with global defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeConfig {
    pub job_name: String,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    pub metrics_path: String,
    pub scheme: String,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    /// Series exposed with their own timestamps get staleness markers too when they vanish.
    pub track_timestamps_staleness: bool,
    /// Ask for gzip bodies (`Accept-Encoding: gzip`), else for plain ones (`identity`).
    pub enable_compression: bool,
    /// Report `scrape_timeout_seconds`, `scrape_sample_limit` and `scrape_body_size_bytes`
    /// too; unset, the server's default (`--enable-feature=extra-scrape-metrics`).
    pub extra_scrape_metrics: Option<bool>,
    /// URL query parameters of every scrape.
    pub params: BTreeMap<String, Vec<String>>,
    pub relabel_configs: Vec<Rule>,
    pub metric_relabel_configs: Vec<Rule>,
    pub limits: ScrapeLimits,
    pub scrape_protocols: Vec<ScrapeProtocol>,
    /// How to read an answer whose `Content-Type` names no format Prometheus parses.
    pub fallback_scrape_protocol: Option<ScrapeProtocol>,
    pub histograms: HistogramKeys,
    /// The metric and label names its scrapes take, and the escaping they ask for.
    pub names: NameSchemes,
    /// `native_histogram_bucket_limit`: 0 for none.
    pub native_histogram_bucket_limit: u64,
    /// `native_histogram_min_bucket_factor`: 0 for none.
    pub native_histogram_min_bucket_factor: f64,
    /// Where its failed scrapes are logged (`scrape_failure_log_file`, else `global`'s).
    pub scrape_failure_log_file: Option<PathBuf>,
    pub http: HttpClientConfig,
    pub static_configs: Vec<StaticConfig>,
    pub file_sd_configs: Vec<FileSdConfig>,
    pub http_sd_configs: Vec<HttpSdConfig>,
    pub dns_sd_configs: Vec<DnsSdConfig>,
    /// The `scrape_config_files` file that defined it; none for the main file.
    pub defined_in: Option<String>,
}

/// `dns_sd_configs`: names looked up every `refresh_interval`; SRV records give host and
/// port, A and AAAA records an address to which `port` is added.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DnsSdConfig {
    pub names: Vec<String>,
    #[serde(rename = "type", default = "srv")]
    pub kind: String,
    pub port: Option<u16>,
    #[serde(default = "thirty_seconds")]
    pub refresh_interval: Duration,
}

fn srv() -> String {
    "SRV".into()
}

fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}

/// `file_sd_configs`: files (the last path element may be a glob) of target groups, re-read
/// when they change and every `refresh_interval`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FileSdConfig {
    pub files: Vec<String>,
    #[serde(default = "five_minutes")]
    pub refresh_interval: Duration,
}

/// `http_sd_configs`: a URL answering target groups as JSON, fetched every `refresh_interval`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HttpSdConfig {
    pub url: String,
    #[serde(default = "one_minute")]
    pub refresh_interval: Duration,
}

fn five_minutes() -> Duration {
    Duration::from_secs(300)
}

fn one_minute() -> Duration {
    Duration::from_secs(60)
}

/// Upstream's rule for a `file_sd_configs` pattern: a literal path whose last element may hold
/// `*`, ending in `.json`, `.yml` or `.yaml`.
fn valid_sd_file(pattern: &str) -> bool {
    let (dir, name) = pattern.rsplit_once('/').unwrap_or(("", pattern));
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    !dir.contains(['*', '?', '[']) && matches!(extension.as_deref(), Some("json" | "yml" | "yaml"))
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default, deserialize_with = "scalar::map")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    global: RawGlobal,
    #[serde(default)]
    scrape_configs: Vec<RawScrapeConfig>,
    #[serde(default)]
    scrape_config_files: Vec<String>,
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    alerting: alerting::RawAlerting,
    #[serde(default)]
    remote_write: Vec<remote_write::RawRemoteWrite>,
    #[serde(default)]
    remote_read: Vec<remote_read::RawRemoteRead>,
    #[serde(default)]
    storage: RawStorage,
    /// Checked and not used: Go's garbage collector's target.
    #[serde(default, rename = "runtime")]
    _runtime: RawRuntime,
}

#[derive(Deserialize, Default)]
struct RawRuntime {
    #[serde(rename = "gogc")]
    _gogc: Option<i64>,
}

#[derive(Deserialize, Default)]
struct RawStorage {
    exemplars: Option<RawExemplars>,
    #[serde(default)]
    tsdb: RawTsdb,
}

#[derive(Deserialize, Default)]
struct RawTsdb {
    out_of_order_time_window: Option<Duration>,
    retention: Option<RawRetention>,
}

#[derive(Deserialize, Default)]
struct RawRetention {
    time: Option<Duration>,
    size: Option<ByteSize>,
    percentage: Option<f64>,
}

#[derive(Deserialize, Default)]
struct RawExemplars {
    max_exemplars: Option<i64>,
}

/// Unknown keys are refused by `keys::check` before this (and `flatten` rules out
/// `deny_unknown_fields`).
#[derive(Deserialize, Default)]
struct RawGlobal {
    scrape_interval: Option<Duration>,
    scrape_timeout: Option<Duration>,
    evaluation_interval: Option<Duration>,
    rule_query_offset: Option<Duration>,
    #[serde(default, deserialize_with = "scalar::map")]
    external_labels: BTreeMap<String, String>,
    #[serde(flatten)]
    limits: RawLimits,
    scrape_protocols: Option<Vec<String>>,
    #[serde(flatten)]
    histograms: RawHistogramKeys,
    #[serde(flatten)]
    names: RawNameSchemes,
    query_log_file: Option<PathBuf>,
    scrape_failure_log_file: Option<PathBuf>,
    extra_scrape_metrics: Option<bool>,
}

/// The histogram keys, in `global` and in each scrape config.
#[derive(Deserialize, Default)]
struct RawHistogramKeys {
    scrape_native_histograms: Option<bool>,
    always_scrape_classic_histograms: Option<bool>,
    convert_classic_histograms_to_nhcb: Option<bool>,
}

impl RawHistogramKeys {
    /// These keys, each defaulting to `base`'s.
    fn over(&self, base: HistogramKeys) -> HistogramKeys {
        HistogramKeys {
            scrape_native_histograms: self.scrape_native_histograms.unwrap_or(base.scrape_native_histograms),
            always_scrape_classic_histograms: self
                .always_scrape_classic_histograms
                .unwrap_or(base.always_scrape_classic_histograms),
            convert_classic_histograms_to_nhcb: self
                .convert_classic_histograms_to_nhcb
                .unwrap_or(base.convert_classic_histograms_to_nhcb),
        }
    }
}

/// The limit keys, in `global` and in each scrape config.
#[derive(Deserialize, Default)]
struct RawLimits {
    sample_limit: Option<u64>,
    label_limit: Option<u64>,
    label_name_length_limit: Option<u64>,
    label_value_length_limit: Option<u64>,
    target_limit: Option<u64>,
    keep_dropped_targets: Option<u64>,
    body_size_limit: Option<ByteSize>,
}

impl RawLimits {
    /// These limits, each defaulting to `base`'s where it is left out or 0, as upstream takes a
    /// scrape config's 0 as the global value.
    fn over(&self, base: ScrapeLimits) -> ScrapeLimits {
        let or = |limit: Option<u64>, base: u64| limit.filter(|&n| n != 0).unwrap_or(base);
        ScrapeLimits {
            sample_limit: or(self.sample_limit, base.sample_limit),
            label_limit: or(self.label_limit, base.label_limit),
            label_name_length_limit: or(self.label_name_length_limit, base.label_name_length_limit),
            label_value_length_limit: or(self.label_value_length_limit, base.label_value_length_limit),
            target_limit: or(self.target_limit, base.target_limit),
            keep_dropped_targets: or(self.keep_dropped_targets, base.keep_dropped_targets),
            body_size_limit: self.body_size_limit.filter(|b| b.0 != 0).unwrap_or(base.body_size_limit),
        }
    }
}

#[derive(Deserialize)]
struct RawScrapeConfig {
    #[serde(deserialize_with = "scalar::string")]
    job_name: String,
    scrape_interval: Option<Duration>,
    scrape_timeout: Option<Duration>,
    metrics_path: Option<String>,
    scheme: Option<String>,
    #[serde(default)]
    honor_labels: bool,
    honor_timestamps: Option<bool>,
    #[serde(default)]
    track_timestamps_staleness: bool,
    enable_compression: Option<bool>,
    extra_scrape_metrics: Option<bool>,
    #[serde(default)]
    params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    relabel_configs: Vec<RawRule>,
    #[serde(default)]
    metric_relabel_configs: Vec<RawRule>,
    #[serde(flatten)]
    discovery: Discovery,
    #[serde(flatten)]
    limits: RawLimits,
    #[serde(flatten)]
    http: RawHttpClient,
    scrape_protocols: Option<Vec<String>>,
    fallback_scrape_protocol: Option<String>,
    #[serde(flatten)]
    histograms: RawHistogramKeys,
    #[serde(flatten)]
    names: RawNameSchemes,
    native_histogram_bucket_limit: Option<u64>,
    native_histogram_min_bucket_factor: Option<f64>,
    scrape_failure_log_file: Option<PathBuf>,
}

/// The HTTP client keys of a scrape config, an Alertmanager set or a remote store.
#[derive(Deserialize, Default)]
struct RawHttpClient {
    basic_auth: Option<BasicAuth>,
    authorization: Option<Authorization>,
    /// The keys `authorization` replaced, still read by upstream 3.x: a token, or a file
    /// holding one, sent as `Bearer`.
    #[serde(default, deserialize_with = "scalar::optional")]
    bearer_token: Option<String>,
    bearer_token_file: Option<PathBuf>,
    oauth2: Option<OAuth2>,
    follow_redirects: Option<bool>,
    enable_http2: Option<bool>,
    proxy_url: Option<String>,
    #[serde(default, deserialize_with = "scalar::optional")]
    no_proxy: Option<String>,
    #[serde(default)]
    proxy_from_environment: bool,
    #[serde(default)]
    tls_config: TlsConfig,
    #[serde(default)]
    http_headers: BTreeMap<String, HttpHeader>,
}

impl RawHttpClient {
    /// The `authorization` section, or the one `bearer_token` or `bearer_token_file` stand for,
    /// as upstream reads them (an empty one is none); an error names the key in upstream's words.
    fn bearer_authorization(&self) -> Result<Option<Authorization>, (&'static str, &'static str)> {
        let token = self.bearer_token.clone().filter(|t| !t.is_empty());
        let file = self.bearer_token_file.clone().filter(|f| !f.as_os_str().is_empty());
        if token.is_none() && file.is_none() {
            return Ok(self.authorization.clone());
        }
        if token.is_some() && file.is_some() {
            return Err(("bearer_token", "at most one of bearer_token & bearer_token_file must be configured"));
        }
        if self.basic_auth.is_some() || self.oauth2.is_some() {
            return Err((
                "bearer_token",
                "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
            ));
        }
        if self.authorization.is_some() {
            return Err(("authorization", "authorization is not compatible with bearer_token & bearer_token_file"));
        }
        Ok(Some(Authorization { kind: None, credentials: token, credentials_file: file }))
    }

    /// Checked, with upstream's defaults and file paths made relative to `dir`.
    fn build(
        self,
        dir: &std::path::Path,
        at: &dyn Fn(&str) -> String,
        invalid: Invalid,
    ) -> Result<HttpClientConfig, ConfigError> {
        let authorization = self.bearer_authorization().map_err(|(key, message)| invalid(at(key), message.into()))?;
        let mut http = HttpClientConfig {
            tls: self.tls_config,
            basic_auth: self.basic_auth,
            authorization,
            oauth2: self.oauth2,
            proxy_url: self.proxy_url,
            no_proxy: self.no_proxy.filter(|n| !n.is_empty()).map(|list| NoProxy::parse(&list)),
            proxy_from_environment: self.proxy_from_environment,
            follow_redirects: self.follow_redirects.unwrap_or(true),
            enable_http2: self.enable_http2.unwrap_or(true),
            http_headers: self.http_headers,
        };
        http.validate().map_err(|(key, message)| invalid(at(key), message))?;
        http.resolve_paths(dir);
        Ok(http)
    }
}

/// Relabeling rules under `key`, each checked; errors name `key[index]`.
fn build_rules(
    raw: Vec<RawRule>,
    names: NameValidation,
    key: &str,
    at: &dyn Fn(&str) -> String,
    invalid: Invalid,
) -> Result<Vec<Rule>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(j, r)| r.build(names).map_err(|m| invalid(at(&format!("{key}[{j}]")), m)))
        .collect()
}

/// The YAML of `text` (an empty file, or one of comments only, is an empty mapping); `file`
/// names it in errors.
fn yaml(text: &str, file: &str) -> Result<serde_norway::Value, ConfigError> {
    if text.trim().is_empty() {
        return Ok(serde_norway::Value::Mapping(Default::default()));
    }
    let value: serde_norway::Value =
        yaml::from_str(text).map_err(|e| ConfigError::Yaml { file: file.into(), message: e.to_string() })?;
    Ok(if value.is_null() { serde_norway::Value::Mapping(Default::default()) } else { value })
}

/// Drops every mapping entry whose value is null, once its key has been checked: Go's YAML
/// decoder gives such a field its zero value, and upstream's own example configuration has
/// `targets:` with its one entry commented out. For lists, maps, strings and numbers whose
/// zero means "unset" that is the same; where the zero is not the default, the default is kept
/// here and Go takes the zero: a boolean defaulting to true (`honor_timestamps: ~` is false in
/// Go), and a relabel rule's `replacement`, `separator` and `regex` (Go: empty) or `action`
/// (Go refuses the rule).
fn nulls_as_absent(value: &mut serde_norway::Value) {
    match value {
        serde_norway::Value::Mapping(entries) => {
            entries.retain(|_, v| !v.is_null());
            entries.values_mut().for_each(nulls_as_absent);
        }
        serde_norway::Value::Sequence(items) => items.iter_mut().for_each(nulls_as_absent),
        serde_norway::Value::Tagged(tagged) => nulls_as_absent(&mut tagged.value),
        _ => {}
    }
}

/// Typed deserialization whose errors carry the key path.
fn typed<T: serde::de::DeserializeOwned>(value: serde_norway::Value, file: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| ConfigError::Invalid {
        file: file.into(),
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

impl HttpClientConfig {
    /// Parses a standalone HTTP client configuration (promtool's `--http.config.file`):
    /// `basic_auth`, `authorization`, `oauth2`, `tls_config`, `proxy_url`, `follow_redirects`,
    /// `enable_http2`, checked as in a scrape config, paths relative to `file`'s directory.
    pub fn parse(text: &str, file: &str) -> Result<HttpClientConfig, ConfigError> {
        let mut value = yaml(text, file)?;
        keys::check_http_client(&value, file)?;
        nulls_as_absent(&mut value);
        let raw: RawHttpClient = typed(value, file)?;
        let dir = std::path::Path::new(file).parent().unwrap_or(std::path::Path::new(""));
        let invalid = |path: String, message: String| ConfigError::Invalid { file: file.into(), path, message };
        raw.build(dir, &|key: &str| key.to_string(), &invalid)
    }
}

impl Config {
    /// Parses and validates a configuration; `file` names it in errors.
    /// Relative paths in it (secret files, `file_sd_configs` files) are taken relative to the
    /// directory of `file`.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let mut value = yaml(text, file)?;
        keys::check(&value, file)?;
        nulls_as_absent(&mut value);
        let raw: RawConfig = typed(value, file)?;
        raw.validate(file)
    }

    /// Adds the scrape configs of `file` (its `text`), one of the files `scrape_config_files`
    /// names, as upstream reads them: a file of `scrape_configs` alone, each taking the global
    /// defaults, with relative paths taken relative to the file's own directory, and every job
    /// name unique across the main file and all of these.
    pub fn include_scrape_configs(&mut self, text: &str, file: &str) -> Result<(), ConfigError> {
        let mut value = yaml(text, file)?;
        keys::check_scrape_config_file(&value, file)?;
        nulls_as_absent(&mut value);
        let raw: RawScrapeConfigFile = typed(value, file)?;
        let invalid = |path: String, message: String| ConfigError::Invalid { file: file.into(), path, message };
        let dir = std::path::Path::new(file).parent().unwrap_or(std::path::Path::new(""));
        for (i, sc) in raw.scrape_configs.into_iter().enumerate() {
            let at = |key: &str| format!("scrape_configs[{i}].{key}");
            let mut sc = sc.validate(&self.global, dir, &at, &invalid)?;
            if let Some(first) = self.scrape_configs.iter().find(|c| c.job_name == sc.job_name) {
                let place = first.defined_in.as_ref().map_or_else(|| "main config file".into(), |f| format!("{f:?}"));
                let message =
                    format!("found multiple scrape configs with job name {:?}, first found in {place}", sc.job_name);
                return Err(invalid(at("job_name"), message));
            }
            sc.defined_in = Some(file.into());
            self.scrape_configs.push(sc);
        }
        Ok(())
    }
}

/// A file `scrape_config_files` names.
#[derive(Deserialize)]
struct RawScrapeConfigFile {
    #[serde(default)]
    scrape_configs: Vec<RawScrapeConfig>,
}

/// The checks of a `rule_files` or `scrape_config_files` entry (`what`: `rule file` or
/// `scrape config file`), with upstream's messages: its shape, Go's glob syntax, and what
/// Pyrite's glob cannot read as Go does.
fn check_file_pattern(pattern: &str, what: &str) -> Result<(), String> {
    if !valid_file_pattern(pattern) {
        return Err(format!("invalid {what} path {pattern:?}"));
    }
    if !go_glob_syntax(pattern) {
        return Err(format!("error retrieving {what}s for {pattern:?}: syntax error in pattern"));
    }
    match unreadable_glob(pattern) {
        Some(why) => Err(format!("{pattern:?}: {why}")),
        None => Ok(()),
    }
}

/// Upstream's check of a `rule_files` or `scrape_config_files` entry: a `*` only in its last
/// path element.
fn valid_file_pattern(pattern: &str) -> bool {
    pattern.split_once('*').is_none_or(|(_, after)| !after.contains('/'))
}

/// Whether Go's `filepath.Glob` reads `pattern`: every `[` closed after at least one range,
/// each range's ends present (an unescaped `-` or `]` cannot be one), and no `\` at the end.
/// Upstream refuses a configuration whose `rule_files` or `scrape_config_files` pattern it
/// cannot read ("syntax error in pattern"), where the glob crate reads no file.
fn go_glob_syntax(pattern: &str) -> bool {
    let mut chars = pattern.chars().peekable();
    // Go's `getEsc`: one end of a range, `\` escaping the next character.
    let end = |chars: &mut std::iter::Peekable<std::str::Chars>| match chars.next() {
        Some('-' | ']') | None => None,
        Some('\\') => chars.next(),
        c => c,
    };
    while let Some(c) = chars.next() {
        if c == '\\' {
            if chars.next().is_none() {
                return false;
            }
        } else if c == '[' {
            chars.next_if_eq(&'^');
            let mut ranges = 0;
            while ranges == 0 || chars.next_if_eq(&']').is_none() {
                if end(&mut chars).is_none() || (chars.next_if_eq(&'-').is_some() && end(&mut chars).is_none()) {
                    return false;
                }
                ranges += 1;
            }
        }
    }
    true
}

/// Why Pyrite cannot read a `rule_files` or `scrape_config_files` pattern Go reads, if it
/// cannot: the glob crate that finds the files has no `\` escapes and takes `[!` for a negated
/// class, where Go takes the `!` literally. Refused rather than read differently.
fn unreadable_glob(pattern: &str) -> Option<&'static str> {
    if pattern.contains('\\') {
        return Some("backslash escapes in file patterns are not supported by Pyrite");
    }
    pattern
        .contains("[!")
        .then_some("a '!' first in a character class is not supported by Pyrite (Go reads it literally; put it later)")
}

impl Config {
    /// The exemplars each of `shards` keeps: `storage.exemplars.max_exemplars` (upstream's
    /// default without it) split evenly, when exemplar storage is `on`; else none.
    pub fn exemplars_per_shard(&self, on: bool, shards: usize) -> usize {
        match on {
            true => self.max_exemplars.unwrap_or(DEFAULT_MAX_EXEMPLARS).div_ceil(shards.max(1)),
            false => 0,
        }
    }

    /// Upstream's agent-mode check: `alerting` (Alertmanagers or alert relabeling),
    /// `rule_files` and `remote_read` are refused, in that order; `file` names the file.
    pub fn check_agent(&self, file: &str) -> Result<(), ConfigError> {
        let refused = |field| Err(ConfigError::NotInAgentMode { file: file.into(), field });
        if !self.alerting.alertmanagers.is_empty() || !self.alerting.alert_relabel_configs.is_empty() {
            return refused("alerting");
        }
        if !self.rule_files.is_empty() {
            return refused("rule_files");
        }
        if !self.remote_read.is_empty() {
            return refused("remote_read");
        }
        Ok(())
    }
}

/// A file named in the configuration, relative to its directory `dir`; empty is none.
fn file_in(dir: &std::path::Path, file: Option<PathBuf>) -> Option<PathBuf> {
    file.filter(|f| !f.as_os_str().is_empty()).map(|f| dir.join(f))
}

/// A duration given in the file: `0s` is none given, as upstream reads its intervals and
/// timeouts (a zero there takes the default).
fn given(d: Option<Duration>) -> Option<Duration> {
    d.filter(|d| d.millis() != 0)
}

impl RawConfig {
    fn validate(self, file: &str) -> Result<Config, ConfigError> {
        let invalid = |path: String, message: String| ConfigError::Invalid { file: file.into(), path, message };
        let dir = std::path::Path::new(file).parent().unwrap_or(std::path::Path::new(""));
        let scrape_interval = given(self.global.scrape_interval).unwrap_or(Duration::from_secs(60));
        let mut scrape_timeout = given(self.global.scrape_timeout).unwrap_or(Duration::from_secs(10));
        if given(self.global.scrape_timeout).is_none() && scrape_timeout > scrape_interval {
            scrape_timeout = scrape_interval;
        }
        if scrape_timeout > scrape_interval {
            return Err(invalid(
                "global.scrape_timeout".into(),
                "global scrape timeout greater than scrape interval".into(),
            ));
        }
        let names = self.global.names.global().map_err(|(key, m)| invalid(format!("global.{key}"), m))?;
        check_label_names(&self.global.external_labels, names.validation, "global.external_labels", &invalid)?;
        let global = GlobalConfig {
            scrape_interval,
            scrape_timeout,
            evaluation_interval: given(self.global.evaluation_interval).unwrap_or(Duration::from_secs(60)),
            rule_query_offset: self.global.rule_query_offset.unwrap_or_default(),
            external_labels: Labels::from_pairs(self.global.external_labels),
            limits: self.global.limits.over(ScrapeLimits::default()),
            scrape_protocols: self
                .global
                .scrape_protocols
                .map(|names| protocols::parse_protocols(&names))
                .transpose()
                .map_err(|m| invalid("global.scrape_protocols".into(), m))?,
            histograms: self.global.histograms.over(HistogramKeys::default()),
            names,
            query_log_file: file_in(dir, self.global.query_log_file),
            scrape_failure_log_file: file_in(dir, self.global.scrape_failure_log_file),
            extra_scrape_metrics: self.global.extra_scrape_metrics,
        };
        let mut scrape_configs: Vec<ScrapeConfig> = Vec::new();
        for (i, sc) in self.scrape_configs.into_iter().enumerate() {
            let at = |key: &str| format!("scrape_configs[{i}].{key}");
            if scrape_configs.iter().any(|c| c.job_name == sc.job_name) {
                return Err(invalid(
                    at("job_name"),
                    format!("found multiple scrape configs with job name {:?}", sc.job_name),
                ));
            }
            scrape_configs.push(sc.validate(&global, dir, &at, &invalid)?);
        }
        let scrape_config_files = self
            .scrape_config_files
            .iter()
            .enumerate()
            .map(|(i, pattern)| {
                check_file_pattern(pattern, "scrape config file")
                    .map(|()| dir.join(pattern).display().to_string())
                    .map_err(|m| invalid(format!("scrape_config_files[{i}]"), m))
            })
            .collect::<Result<_, _>>()?;
        for (i, pattern) in self.rule_files.iter().enumerate() {
            check_file_pattern(pattern, "rule file").map_err(|m| invalid(format!("rule_files[{i}]"), m))?;
        }
        let rule_files = self
            .rule_files
            .iter()
            .map(|p| if std::path::Path::new(p).is_relative() { dir.join(p).display().to_string() } else { p.clone() })
            .collect();
        let alerting = self.alerting.validate(dir, names.validation, &invalid)?;
        let remote_write = remote_write::validate(self.remote_write, dir, names.validation, &invalid)?;
        let remote_read = remote_read::validate(self.remote_read, dir, &invalid)?;
        let max_exemplars =
            self.storage.exemplars.map(|e| e.max_exemplars.map_or(DEFAULT_MAX_EXEMPLARS, |n| n.max(0) as usize));
        let out_of_order_window = self.storage.tsdb.out_of_order_time_window.unwrap_or_default();
        let retention = self.storage.tsdb.retention.map(|r| Retention {
            time: r.time.unwrap_or_default(),
            size: r.size.unwrap_or_default(),
            percentage: r.percentage.unwrap_or_default(),
        });
        if let Some(p) = retention.map(|r| r.percentage).filter(|p| !(0.0..=100.0).contains(p)) {
            let message = format!("'storage.tsdb.retention.percentage' must be in the range [0, 100], got {p}");
            return Err(invalid("storage.tsdb.retention.percentage".into(), message));
        }
        Ok(Config {
            global,
            scrape_configs,
            scrape_config_files,
            rule_files,
            alerting,
            remote_write,
            remote_read,
            max_exemplars,
            out_of_order_window,
            retention,
        })
    }
}

impl RawScrapeConfig {
    /// Upstream's checks of one scrape config, with `global`'s defaults for what it leaves
    /// out; relative paths in it are taken relative to `dir`, `at` gives a key's path.
    fn validate(
        self,
        global: &GlobalConfig,
        dir: &std::path::Path,
        at: &dyn Fn(&str) -> String,
        invalid: Invalid,
    ) -> Result<ScrapeConfig, ConfigError> {
        let sc = self;
        if sc.job_name.is_empty() {
            return Err(invalid(at("job_name"), "job_name is empty".into()));
        }
        let interval = given(sc.scrape_interval).unwrap_or(global.scrape_interval);
        let timeout = match given(sc.scrape_timeout) {
            Some(t) => t,
            None => global.scrape_timeout.min(interval),
        };
        if timeout > interval {
            return Err(invalid(
                at("scrape_timeout"),
                format!(
                    "scrape timeout greater than scrape interval for scrape config with job name {:?}",
                    sc.job_name
                ),
            ));
        }
        if interval.millis() <= 0 {
            return Err(invalid(at("scrape_interval"), "scrape interval must be positive".into()));
        }
        let scheme = sc.scheme.unwrap_or_else(|| "http".into());
        match scheme.as_str() {
            "http" => {}
            "https" => {}
            other => return Err(invalid(at("scheme"), format!("unknown scheme {other:?}, must be http or https"))),
        }
        let metrics_path = sc.metrics_path.unwrap_or_else(|| "/metrics".into());
        if !metrics_path.starts_with('/') {
            return Err(invalid(at("metrics_path"), format!("metrics_path {metrics_path:?} must start with '/'")));
        }
        let mut sd = sc.discovery;
        sd.validate(dir, &at, &invalid)?;
        let http = sc.http.build(dir, &at, &invalid)?;
        let histograms = sc.histograms.over(global.histograms);
        let names = sc.names.scrape(global.names).map_err(|(key, m)| invalid(at(key), m))?;
        // As upstream: the job's list, else the global one, else the default its
        // `scrape_native_histograms` calls for.
        let scrape_protocols = match (sc.scrape_protocols, &global.scrape_protocols) {
            (Some(names), _) => protocols::parse_protocols(&names).map_err(|m| invalid(at("scrape_protocols"), m))?,
            (None, Some(global)) => global.clone(),
            (None, None) if histograms.scrape_native_histograms => ScrapeProtocol::PROTO_FIRST.to_vec(),
            (None, None) => ScrapeProtocol::DEFAULT.to_vec(),
        };
        let fallback_scrape_protocol = sc
            .fallback_scrape_protocol
            .map(|name| ScrapeProtocol::parse(&name))
            .transpose()
            .map_err(|m| invalid(at("fallback_scrape_protocol"), m))?;

        Ok(ScrapeConfig {
            scrape_interval: interval,
            scrape_timeout: timeout,
            metrics_path,
            scheme,
            honor_labels: sc.honor_labels,
            honor_timestamps: sc.honor_timestamps.unwrap_or(true),
            track_timestamps_staleness: sc.track_timestamps_staleness,
            enable_compression: sc.enable_compression.unwrap_or(true),
            extra_scrape_metrics: sc.extra_scrape_metrics.or(global.extra_scrape_metrics),
            params: sc.params,
            relabel_configs: build_rules(sc.relabel_configs, names.validation, "relabel_configs", &at, &invalid)?,
            metric_relabel_configs: build_rules(
                sc.metric_relabel_configs,
                names.validation,
                "metric_relabel_configs",
                &at,
                &invalid,
            )?,
            limits: sc.limits.over(global.limits),
            scrape_protocols,
            fallback_scrape_protocol,
            histograms,
            names,
            native_histogram_bucket_limit: sc.native_histogram_bucket_limit.unwrap_or(0),
            native_histogram_min_bucket_factor: sc.native_histogram_min_bucket_factor.unwrap_or(0.0),
            scrape_failure_log_file: file_in(dir, sc.scrape_failure_log_file)
                .or_else(|| global.scrape_failure_log_file.clone()),
            static_configs: sd.static_configs,
            http,
            file_sd_configs: sd.file_sd_configs,
            http_sd_configs: sd.http_sd_configs,
            dns_sd_configs: sd.dns_sd_configs,
            job_name: sc.job_name,
            defined_in: None,
        })
    }
}

/// The target sources of a scrape config or of an `alertmanagers` entry.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Discovery {
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(default)]
    pub http_sd_configs: Vec<HttpSdConfig>,
    #[serde(default)]
    pub dns_sd_configs: Vec<DnsSdConfig>,
}

/// Builds a config error from a key path and a message.
type Invalid<'a> = &'a dyn Fn(String, String) -> ConfigError;

impl Discovery {
    /// Upstream's checks; relative `file_sd_configs` paths are made relative to `dir`. `at`
    /// gives the key path of a key of the enclosing section.
    fn validate(
        &mut self,
        dir: &std::path::Path,
        at: &dyn Fn(&str) -> String,
        invalid: Invalid,
    ) -> Result<(), ConfigError> {
        for (j, st) in self.static_configs.iter().enumerate() {
            let here = at(&format!("static_configs[{j}]"));
            for t in &st.targets {
                check_target_address(t).map_err(|m| invalid(format!("{here}.targets"), m))?;
            }
            check_label_names(&st.labels, NameValidation::Utf8, &format!("{here}.labels"), invalid)?;
        }
        for pattern in self.file_sd_configs.iter_mut().flat_map(|f| f.files.iter_mut()) {
            if std::path::Path::new(pattern.as_str()).is_relative() {
                *pattern = dir.join(pattern.as_str()).display().to_string();
            }
        }
        for (j, fsd) in self.file_sd_configs.iter().enumerate() {
            if let Some(bad) = fsd.files.iter().find(|f| !valid_sd_file(f)) {
                let message = format!("path name {bad:?} is not valid for file discovery");
                return Err(invalid(at(&format!("file_sd_configs[{j}].files")), message));
            }
        }
        for (j, dsd) in self.dns_sd_configs.iter().enumerate() {
            let here = |key: &str| at(&format!("dns_sd_configs[{j}].{key}"));
            if dsd.names.is_empty() {
                return Err(invalid(here("names"), "DNS-SD config must contain at least one SRV record name".into()));
            }
            match crate::dns::RecordType::parse(&dsd.kind) {
                None => return Err(invalid(here("type"), format!("invalid DNS-SD records type {}", dsd.kind))),
                Some(crate::dns::RecordType::Srv) => {}
                Some(_) if dsd.port.is_none() => {
                    let message = "a port is required in DNS-SD configs for all record types except SRV";
                    return Err(invalid(here("port"), message.into()));
                }
                Some(_) => {}
            }
        }
        for (j, hsd) in self.http_sd_configs.iter().enumerate() {
            check_http_url(&hsd.url).map_err(|m| invalid(at(&format!("http_sd_configs[{j}].url")), m))?;
        }
        // Zero would look up without pause (upstream's ticker panics on it).
        let intervals = [
            ("file_sd_configs", self.file_sd_configs.iter().map(|c| c.refresh_interval).collect::<Vec<_>>()),
            ("dns_sd_configs", self.dns_sd_configs.iter().map(|c| c.refresh_interval).collect()),
            ("http_sd_configs", self.http_sd_configs.iter().map(|c| c.refresh_interval).collect()),
        ];
        for (section, intervals) in intervals {
            if let Some(j) = intervals.iter().position(|i| i.millis() <= 0) {
                let key = at(&format!("{section}[{j}].refresh_interval"));
                return Err(invalid(key, "refresh_interval must be greater than zero".into()));
            }
        }
        Ok(())
    }
}

/// An absolute `http` or `https` URL, or why not. An http(s) URL that parses has a host: the
/// url crate refuses `http://` ("empty host"), where upstream's check says "host is missing in
/// URL".
fn check_http_url(url: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Err(e) => Err(format!("{url:?}: {e}")),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            Err(format!("URL scheme must be 'http' or 'https': {url:?}"))
        }
        Ok(_) => Ok(()),
    }
}

/// That `names` takes every label name of `labels` (upstream reads a static group's labels as
/// a `model.LabelSet`, whose names 3.x takes as `utf8`).
fn check_label_names(
    labels: &BTreeMap<String, String>,
    names: NameValidation,
    path: &str,
    invalid: &dyn Fn(String, String) -> ConfigError,
) -> Result<(), ConfigError> {
    match labels.keys().find(|n| !names.label_name(n)) {
        Some(bad) => Err(invalid(path.into(), format!("{bad:?} is not a valid label name"))),
        None => Ok(()),
    }
}

/// A target's address is a host, with a port or not (`host:port`, `[v6]:port`), as upstream's
/// `CheckTargetAddress` takes it: anything but a scheme or path. A port left out is the
/// scheme's; one that is no port fails the scrape.
pub fn check_target_address(address: &str) -> Result<(), String> {
    match address.contains('/') {
        true => Err(format!("{address:?} is not a valid hostname")),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_mode_refuses_alerting_rules_and_remote_read_as_upstream() {
        let agent = |text: &str| Config::parse(text, "a.yml").unwrap().check_agent("a.yml").map_err(|e| e.to_string());
        assert_eq!(agent("scrape_configs: []\nremote_write: [{url: 'http://x/'}]\n"), Ok(()));
        assert_eq!(agent("rule_files: [r.yml]\n"), Err("a.yml: field rule_files is not allowed in agent mode".into()));
        let am = "alerting: {alertmanagers: [{static_configs: [{targets: ['am:9093']}]}]}\n";
        assert_eq!(agent(am), Err("a.yml: field alerting is not allowed in agent mode".into()));
        let read = "remote_read: [{url: 'http://x/read'}]\n";
        assert_eq!(agent(read), Err("a.yml: field remote_read is not allowed in agent mode".into()));
    }

    #[test]
    fn defaults_apply_from_global() {
        let c = Config::parse(
            "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['localhost:9100']\n        labels: {env: prod}\n",
            "p.yml",
        )
        .unwrap();
        let sc = &c.scrape_configs[0];
        assert_eq!(sc.scrape_interval, Duration::from_secs(15));
        assert_eq!(sc.scrape_timeout, Duration::from_secs(10));
        assert_eq!(sc.metrics_path, "/metrics");
        assert_eq!(sc.static_configs[0].labels["env"], "prod");
        assert_eq!(c.global.evaluation_interval, Duration::from_secs(60));
    }

    /// A zero interval or timeout is one not given, as upstream reads them.
    #[test]
    fn zero_intervals_and_timeouts_take_the_defaults() {
        let text = "global:\n  scrape_interval: 0s\n  scrape_timeout: 0s\n  evaluation_interval: 0s\nscrape_configs:\n  - job_name: a\n    scrape_interval: 0s\n    scrape_timeout: 0s\n";
        let c = Config::parse(text, "p.yml").unwrap();
        assert_eq!(c.global.evaluation_interval, Duration::from_secs(60));
        let sc = &c.scrape_configs[0];
        assert_eq!((sc.scrape_interval, sc.scrape_timeout), (Duration::from_secs(60), Duration::from_secs(10)));
    }

    #[test]
    fn timeout_defaults_to_interval_when_shorter() {
        let c = Config::parse("scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n", "p.yml").unwrap();
        assert_eq!(c.scrape_configs[0].scrape_timeout, Duration::from_secs(5));
    }

    #[test]
    fn http_sd_urls_are_checked_as_upstream_checks_them() {
        let e = |url: &str| {
            let text = format!("scrape_configs:\n  - job_name: a\n    http_sd_configs: [{{url: '{url}'}}]\n");
            Config::parse(&text, "p.yml").err().map(|e| e.to_string())
        };
        assert_eq!(e("http://sd.example:8080/targets?env=prod"), None);
        let at = "p.yml: scrape_configs[0].http_sd_configs[0].url: ";
        assert_eq!(e("ftp://sd/x").unwrap(), format!("{at}URL scheme must be 'http' or 'https': \"ftp://sd/x\""));
        assert_eq!(e("http://").unwrap(), format!("{at}\"http://\": empty host"));
        assert_eq!(e("/targets").unwrap(), format!("{at}\"/targets\": relative URL without a base"));
    }

    #[test]
    fn a_zero_refresh_interval_is_refused() {
        let text = "scrape_configs:\n  - job_name: a\n    file_sd_configs: [{files: [a.json]}, {files: [b.json], refresh_interval: 0s}]\n";
        let e = Config::parse(text, "p.yml").unwrap_err().to_string();
        assert_eq!(
            e,
            "p.yml: scrape_configs[0].file_sd_configs[1].refresh_interval: refresh_interval must be greater than zero"
        );
        let text = "scrape_configs:\n  - job_name: a\n    dns_sd_configs: [{names: [x], refresh_interval: 0s}]\n";
        assert!(Config::parse(text, "p.yml").is_err());
    }

    #[test]
    fn string_fields_take_numbers_and_booleans_as_go_reads_them() {
        let text = "global: {external_labels: {replica: 1}}
scrape_configs:
  - job_name: 123
    relabel_configs: [{target_label: shard, replacement: 2}]
    static_configs: [{targets: ['a:1'], labels: {rack: 7, canary: true, version: 1.0, ratio: 0.50, none: ~}}]
remote_write: [{url: 'http://w/', name: 429, headers: {X-Scope-OrgID: 1}, basic_auth: {username: 123456, password: 7}}]
";
        let c = Config::parse(text, "p.yml").unwrap();
        assert_eq!(c.global.external_labels.get("replica"), "1");
        let sc = &c.scrape_configs[0];
        assert_eq!(sc.job_name, "123");
        let labels = &sc.static_configs[0].labels;
        let values = ["rack", "canary", "version", "ratio"].map(|name| labels[name].as_str());
        assert_eq!(values, ["7", "true", "1.0", "0.5"]);
        // Null is absent, which a label set cannot tell from Go's "".
        assert_eq!(labels.get("none"), None);
        let rw = &c.remote_write[0];
        assert_eq!((rw.name.as_str(), rw.headers["X-Scope-OrgID"].as_str()), ("429", "1"));
        let auth = rw.http.basic_auth.as_ref().unwrap();
        assert_eq!((auth.username.as_deref(), auth.password.as_deref()), (Some("123456"), Some("7")));
        let relabeled = crate::relabel::relabel(&sc.relabel_configs, &Labels::from_pairs([("a", "b")]));
        assert_eq!(relabeled.map(|l| l.get("shard").to_string()).as_deref(), Some("2"));
        // Numbers stay numbers where they are numbers.
        let e = Config::parse("global: {sample_limit: many}\n", "p.yml").unwrap_err().to_string();
        assert_eq!(e, "p.yml: global: invalid type: string \"many\", expected u64");
    }

    /// Upstream's own example (`documentation/examples/prometheus.yml`): its Alertmanager's
    /// `targets` and its `rule_files` hold only comments.
    #[test]
    fn null_values_are_absent_ones_as_upstreams_example_has_them() {
        let example = concat!(
            "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n",
            "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets:\n          # - alertmanager:9093\n",
            "rule_files:\n  # - \"first_rules.yml\"\n",
            "scrape_configs:\n  - job_name: \"prometheus\"\n    static_configs:\n      - targets: [\"localhost:9090\"]\n",
            "        labels:\n          app: \"prometheus\"\n    scrape_native_histograms: true\n",
            "    relabel_configs:\n    kubernetes_sd_configs:\n",
        );
        let c = Config::parse(example, "prometheus.yml").unwrap();
        assert!(c.alerting.alertmanagers[0].discovery.static_configs[0].targets.is_empty());
        assert!(c.rule_files.is_empty() && c.scrape_configs[0].relabel_configs.is_empty());
        assert_eq!(Config::parse("# comments only\n", "p.yml").unwrap().scrape_configs.len(), 0);
        // Go's garbage collector's target, without effect here, checked as upstream 3.x does.
        assert!(Config::parse("runtime: {gogc: 75}\n", "p.yml").is_ok());
        assert!(Config::parse("runtime: {gogc: lots}\n", "p.yml").is_err());
        let e = Config::parse("scrape_configs: [{job_name: a, outscale_sd_configs: [{}]}]\n", "p.yml").unwrap_err();
        assert!(e.to_string().ends_with("not supported by Pyrite yet"), "{e}");
        // A misspelt key is refused even with nothing after it, as Go's strict decoder does.
        let e = Config::parse("global:\n  scrape_intervall:\n", "p.yml").unwrap_err();
        assert_eq!(e.to_string(), "p.yml: global.scrape_intervall: unknown key");
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let e = Config::parse("storage: {tsdb: {chunk_encoding: {}}}\n", "p.yml").unwrap_err().to_string();
        assert_eq!(e, "p.yml: storage.tsdb.chunk_encoding: key is valid in Prometheus but not supported by Pyrite yet");
        let retention = |text: &str| Config::parse(text, "p.yml").map(|c| c.retention).map_err(|e| e.to_string());
        assert_eq!(retention("storage: {tsdb: {}}\n"), Ok(None));
        let r = Retention { time: Duration::default(), size: ByteSize(10 << 30), percentage: 0.0 };
        assert_eq!(retention("storage: {tsdb: {retention: {size: 10GB}}}\n"), Ok(Some(r)));
        let r = Retention { time: Duration::from_secs(3600), size: ByteSize(0), percentage: 0.5 };
        assert_eq!(retention("storage: {tsdb: {retention: {time: 1h, percentage: 0.5}}}\n"), Ok(Some(r)));
        assert_eq!(
            retention("storage: {tsdb: {retention: {percentage: 101}}}\n"),
            Err("p.yml: storage.tsdb.retention.percentage: 'storage.tsdb.retention.percentage' must be in the range [0, 100], got 101".into())
        );
        let e = retention("storage: {tsdb: {retention: {tme: 1h}}}\n").unwrap_err();
        assert_eq!(e, "p.yml: storage.tsdb.retention.tme: unknown key");
        let window = |text: &str| Config::parse(text, "p.yml").unwrap().out_of_order_window;
        assert_eq!(window("storage: {tsdb: {out_of_order_time_window: 30m}}\n"), Duration::from_secs(1800));
        assert_eq!(window("storage: {tsdb: {}}\n"), Duration::default());
        let exemplars = |text: &str| Config::parse(text, "p.yml").unwrap().max_exemplars;
        assert_eq!(exemplars("storage: {exemplars: {max_exemplars: 7}}\n"), Some(7));
        assert_eq!(exemplars("storage: {exemplars: {}}\n"), Some(DEFAULT_MAX_EXEMPLARS));
        assert_eq!(exemplars("storage: {exemplars: {max_exemplars: -1}}\n"), Some(0));
        assert_eq!(exemplars("{}\n"), None);
        let config = Config::parse("storage: {exemplars: {max_exemplars: 5}}\n", "p.yml").unwrap();
        assert_eq!((config.exemplars_per_shard(true, 2), config.exemplars_per_shard(false, 2)), (3, 0));
        let e = Config::parse("storage: {exemplars: {max: 1}}\n", "p.yml").unwrap_err().to_string();
        assert!(e.contains("storage.exemplars.max"), "{e}");
        let text =
            "alerting:\n  alertmanagers:\n    - api_version: v1\n      static_configs: [{targets: ['am:9093']}]\n";
        let e = Config::parse(text, "p.yml").unwrap_err().to_string();
        assert!(
            e.starts_with("p.yml: alerting.alertmanagers[0].api_version: expected Alertmanager api version"),
            "{e}"
        );
        let c = Config::parse("global: {rule_query_offset: 30s}\n", "p.yml").unwrap();
        assert_eq!(c.global.rule_query_offset, Duration::from_secs(30));
        let e = Config::parse("alerting:\n  alertmanagers:\n    - sigv4: {}\n", "p.yml").unwrap_err().to_string();
        assert_eq!(
            e,
            "p.yml: alerting.alertmanagers[0].sigv4: key is valid in Prometheus but not supported by Pyrite yet"
        );
        let text = "rule_files: [rules/*.yml]\nalerting:\n  alertmanagers:\n    - path_prefix: /am/\n      static_configs: [{targets: ['am:9093']}]\n";
        let c = Config::parse(text, "/etc/p.yml").unwrap();
        assert_eq!(
            (c.rule_files[0].as_str(), c.alerting.alertmanagers[0].path_prefix.as_str()),
            ("/etc/rules/*.yml", "/am")
        );
        let e = Config::parse("scrape_configs:\n  - job_name: a\n    oauth2: {}\n", "p.yml").unwrap_err().to_string();
        assert_eq!(e, "p.yml: scrape_configs[0].oauth2.client_id: oauth2 client_id must be configured");
        let e = Config::parse(
            "scrape_configs:\n  - job_name: a\n    relabel_configs: [{action: hashmod, target_label: x}]\n",
            "p.yml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "p.yml: scrape_configs[0].relabel_configs[0]: relabel configuration for hashmod requires non-zero modulus"
        );
        let e = Config::parse("global:\n  scrape_intervl: 1m\n", "p.yml").unwrap_err().to_string();
        assert_eq!(e, "p.yml: global.scrape_intervl: unknown key");
        let e = Config::parse("global:\n  scrape_interval: 1x\n", "p.yml").unwrap_err().to_string();
        assert!(e.starts_with("p.yml: global.scrape_interval: not a valid duration string"), "{e}");
        let e = Config::parse(
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 6s\n",
            "p.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("scrape_configs[0].scrape_timeout"), "{e}");
        let e = Config::parse("scrape_configs:\n  - job_name: a\n  - job_name: a\n", "p.yml").unwrap_err().to_string();
        assert!(e.contains("multiple scrape configs"), "{e}");
        let e = Config::parse(
            "scrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['http://x:1/']}]\n",
            "p.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("static_configs[0].targets"), "{e}");
        assert!(Config::parse("global: [", "p.yml").unwrap_err().to_string().starts_with("p.yml: "));
    }

    #[test]
    fn scrape_protocols_default_as_upstream_and_are_checked() {
        let protocols = |text: &str| Config::parse(text, "p.yml").map(|c| c.scrape_configs[0].scrape_protocols.clone());
        assert_eq!(protocols("scrape_configs:\n  - job_name: a\n").unwrap(), ScrapeProtocol::DEFAULT);
        // Native histograms ask for the protobuf format first, unless a list is given.
        let native = "scrape_configs:\n  - job_name: a\n    scrape_native_histograms: true\n";
        assert_eq!(protocols(native).unwrap(), ScrapeProtocol::PROTO_FIRST);
        let global_native = "global: {scrape_native_histograms: true}\nscrape_configs:\n  - job_name: a\n";
        assert_eq!(protocols(global_native).unwrap(), ScrapeProtocol::PROTO_FIRST);
        let global_list =
            "global:\n  scrape_protocols: [PrometheusText0.0.4]\nscrape_configs:\n  - {job_name: a, scrape_native_histograms: true}\n";
        assert_eq!(protocols(global_list).unwrap(), [ScrapeProtocol::PrometheusText0_0_4]);
        let own = "global:\n  scrape_protocols: [PrometheusText0.0.4]\nscrape_configs:\n  - {job_name: a, scrape_protocols: [PrometheusProto]}\n";
        assert_eq!(protocols(own).unwrap(), [ScrapeProtocol::PrometheusProto]);
        let error = |text: &str| Config::parse(text, "p").unwrap_err().to_string();
        assert!(error("scrape_configs:\n  - job_name: a\n    scrape_protocols: [Proto]\n")
            .starts_with("p: scrape_configs[0].scrape_protocols: unknown scrape protocol Proto, supported: ["),);
        assert_eq!(
            error("global:\n  scrape_protocols: []\n"),
            "p: global.scrape_protocols: scrape_protocols cannot be empty"
        );
        assert!(error("scrape_configs:\n  - {job_name: a, fallback_scrape_protocol: Text}\n")
            .starts_with("p: scrape_configs[0].fallback_scrape_protocol: unknown scrape protocol Text"));
        let c =
            Config::parse("scrape_configs:\n  - {job_name: a, fallback_scrape_protocol: PrometheusText0.0.4}\n", "p")
                .unwrap();
        assert_eq!(c.scrape_configs[0].fallback_scrape_protocol, Some(ScrapeProtocol::PrometheusText0_0_4));
    }

    #[test]
    fn name_schemes_are_inferred_as_upstream_infers_them() {
        let schemes = |text: &str| -> Vec<(NameValidation, Escaping)> {
            let c = Config::parse(text, "p").unwrap();
            c.scrape_configs.iter().map(|sc| (sc.names.validation, sc.names.escaping)).collect()
        };
        use {Escaping::*, NameValidation::*};
        assert_eq!(schemes("scrape_configs:\n  - job_name: a\n"), [(Utf8, AllowUtf8)]);
        // A legacy scrape config under a utf8 global escapes with underscores, not the global's
        // allow-utf-8; an inherited legacy scheme inherits the global escaping.
        let text = "global: {metric_name_validation_scheme: legacy, metric_name_escaping_scheme: dots}\n\
                    scrape_configs:\n  - job_name: a\n  - {job_name: b, metric_name_validation_scheme: utf8}\n\
                    \x20 - {job_name: c, metric_name_validation_scheme: legacy}\n  - {job_name: d, metric_name_escaping_scheme: values}\n";
        assert_eq!(schemes(text), [(Legacy, Dots), (Utf8, AllowUtf8), (Legacy, Underscores), (Legacy, Values)]);
        let err = |text: &str| Config::parse(text, "p").unwrap_err().to_string();
        assert_eq!(
            err("scrape_configs:\n  - {job_name: a, metric_name_validation_scheme: legacy, metric_name_escaping_scheme: allow-utf-8}\n"),
            "p: scrape_configs[0].metric_name_escaping_scheme: utf8 metric names requested but validation scheme is not set to UTF8"
        );
        assert!(err("global: {metric_name_escaping_scheme: quoted}\n")
            .starts_with("p: global.metric_name_escaping_scheme: unknown global name escaping method specified"));
        assert!(err("scrape_configs:\n  - {job_name: a, metric_name_validation_scheme: UTF8}\n")
            .starts_with("p: scrape_configs[0].metric_name_validation_scheme: unknown name validation method"));
        // external_labels follow the global scheme.
        assert!(Config::parse("global: {external_labels: {service.name: a}}\n", "p").is_ok());
        assert!(err("global: {metric_name_validation_scheme: legacy, external_labels: {service.name: a}}\n")
            .contains("\"service.name\" is not a valid label name"));
        // The scheme decides which names relabeling may make.
        let dotted = "relabel_configs: [{source_labels: [a], target_label: service.name}]";
        assert!(Config::parse(&format!("scrape_configs:\n  - {{job_name: a, {dotted}}}\n"), "p").is_ok());
        assert!(err(&format!(
            "scrape_configs:\n  - {{job_name: a, metric_name_validation_scheme: legacy, {dotted}}}\n"
        ))
        .contains("is invalid 'target_label'"));
    }

    #[test]
    fn histogram_keys_default_from_global() {
        let text = "global:\n  always_scrape_classic_histograms: true\n  convert_classic_histograms_to_nhcb: true\n\
                    scrape_configs:\n  - job_name: a\n    convert_classic_histograms_to_nhcb: false\n\
                    \x20   native_histogram_bucket_limit: 160\n    native_histogram_min_bucket_factor: 1.1\n";
        let sc = &Config::parse(text, "p").unwrap().scrape_configs[0];
        assert_eq!(
            sc.histograms,
            HistogramKeys {
                scrape_native_histograms: false,
                always_scrape_classic_histograms: true,
                convert_classic_histograms_to_nhcb: false
            }
        );
        assert_eq!((sc.native_histogram_bucket_limit, sc.native_histogram_min_bucket_factor), (160, 1.1));
        let renamed = Config::parse("scrape_configs:\n  - {job_name: a, scrape_classic_histograms: true}\n", "p");
        assert_eq!(
            renamed.unwrap_err().to_string(),
            "p: scrape_configs[0].scrape_classic_histograms: renamed to always_scrape_classic_histograms in Prometheus 3.0"
        );
    }

    #[test]
    fn empty_file_is_valid() {
        assert!(Config::parse("", "p.yml").unwrap().scrape_configs.is_empty());
    }

    #[test]
    fn included_scrape_configs_take_the_global_defaults_and_their_own_directory() {
        let main = "global: {scrape_interval: 7s, sample_limit: 9}\nscrape_config_files: [jobs/*.yml, /etc/x.yml]\nscrape_configs: [{job_name: main}]\n";
        let mut c = Config::parse(main, "/etc/p/p.yml").unwrap();
        assert_eq!(c.scrape_config_files, ["/etc/p/jobs/*.yml", "/etc/x.yml"]);
        let job = "scrape_configs:\n  - job_name: node\n    file_sd_configs: [{files: [t.json]}]\n";
        c.include_scrape_configs(job, "/etc/p/jobs/n.yml").unwrap();
        let node = &c.scrape_configs[1];
        assert_eq!((node.scrape_interval, node.limits.sample_limit), (Duration::from_secs(7), 9));
        assert_eq!(node.file_sd_configs[0].files, ["/etc/p/jobs/t.json"]);
        assert_eq!(node.defined_in.as_deref(), Some("/etc/p/jobs/n.yml"));
        let yaml = c.to_yaml();
        assert!(yaml.contains("job_name: main") && !yaml.contains("job_name: node"), "{yaml}");

        let twice =
            |file: &str| c.clone().include_scrape_configs(&format!("scrape_configs: [{{job_name: {file}}}]"), "b.yml");
        let e = twice("main").unwrap_err().to_string();
        assert_eq!(e, "b.yml: scrape_configs[0].job_name: found multiple scrape configs with job name \"main\", first found in main config file");
        let e = twice("node").unwrap_err().to_string();
        assert!(e.ends_with("first found in \"/etc/p/jobs/n.yml\""), "{e}");
        let e = c.clone().include_scrape_configs("global: {}\n", "b.yml").unwrap_err().to_string();
        assert_eq!(e, "b.yml: global: unknown key");
        let e = c.include_scrape_configs("scrape_configs: [{job_name: x, vultr_sd_configs: []}]", "b.yml").unwrap_err();
        assert!(e.to_string().ends_with("not supported by Pyrite yet"), "{e}");
    }

    #[test]
    fn file_patterns_take_a_star_in_their_last_element_only() {
        let e = |text: &str| Config::parse(text, "p.yml").unwrap_err().to_string();
        assert_eq!(
            e("scrape_config_files: ['a/*/*']"),
            "p.yml: scrape_config_files[0]: invalid scrape config file path \"a/*/*\""
        );
        assert_eq!(e("rule_files: [ok.yml, '*/r.yml']"), "p.yml: rule_files[1]: invalid rule file path \"*/r.yml\"");
        assert!(Config::parse("rule_files: ['a/b*c*.yml']\nscrape_config_files: ['*']", "p.yml").is_ok());
        // As Go's glob reads them: a malformed pattern is refused, not taken as naming no file.
        for bad in ["sc/[.yml", "sc/a.yml\\", "sc/[a-].yml", "sc/[].yml", "sc/[]a].yml"] {
            let e = e(&format!("scrape_config_files: ['{bad}']"));
            assert!(e.ends_with("syntax error in pattern"), "{bad}: {e}");
        }
        for good in ["sc/[a-z]*.yml", "sc/[^a].yml", "sc/[z-a].yml", "sc/[!a].yml", "sc/\\[.yml", "sc/[\\]].yml"] {
            assert!(go_glob_syntax(good), "{good}");
        }
        // What Go reads but the glob crate would read otherwise is refused, not misread.
        for unreadable in ["sc/[!a].yml", "sc/\\[.yml"] {
            let e = e(&format!("scrape_config_files: ['{unreadable}']"));
            assert!(e.contains("not supported by Pyrite"), "{unreadable}: {e}");
        }
        assert!(Config::parse("rule_files: ['r/[a!].yml', 'r/[^a].yml']", "p.yml").is_ok());
        let e = e("rule_files: ['r/[.yml']");
        assert_eq!(e, "p.yml: rule_files[0]: error retrieving rule files for \"r/[.yml\": syntax error in pattern");
    }
}
