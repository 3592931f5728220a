//! The `remote_write` section: where the sender (`daemon/src/remote_write/`) sends what is
//! appended, with upstream's defaults and checks (`config.RemoteWriteConfig`, `QueueConfig`,
//! `MetadataConfig`, `sigv4.SigV4Config`). Kept apart from the sender, which only reads it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{build_rules, check_http_url, headers, ConfigError, Duration, HttpClientConfig, Invalid, RawHttpClient};
use crate::labels::NameValidation;
use crate::relabel::{RawRule, Rule};

/// The protobuf message a `remote_write` entry sends (`protobuf_message`): the receiver's
/// own enum, so that both sides name the messages alike. `V1` (`prometheus.WriteRequest`) is
/// the default, `V2` is `io.prometheus.write.v2.Request`.
pub type ProtobufMessage = crate::remote::v2::WriteMessage;

/// One `remote_write` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWriteConfig {
    pub url: String,
    /// As written, or empty; [`RemoteWriteConfig::queue_name`] gives the name of the queue.
    pub name: String,
    pub remote_timeout: Duration,
    /// Sent with every request.
    pub headers: BTreeMap<String, String>,
    pub write_relabel_configs: Vec<Rule>,
    pub send_exemplars: bool,
    pub send_native_histograms: bool,
    /// Each new connection goes to one of the host's addresses at random, not the first.
    pub round_robin_dns: bool,
    pub protobuf_message: ProtobufMessage,
    /// Upstream's default differs from other clients': `enable_http2` is false.
    pub http: HttpClientConfig,
    pub sigv4: Option<SigV4Config>,
    pub queue: QueueConfig,
    pub metadata: MetadataConfig,
}

/// `queue_config`: how samples are buffered, batched, sent in parallel and retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Samples buffered per shard.
    pub capacity: usize,
    pub max_shards: usize,
    pub min_shards: usize,
    pub max_samples_per_send: usize,
    /// A batch is sent when it is full or has waited this long.
    pub batch_send_deadline: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Retry a request answered 429 (else it is dropped, as upstream's default).
    pub retry_on_http_429: bool,
    /// Samples older than this are dropped rather than sent; 0 keeps them all.
    pub sample_age_limit: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 10_000,
            max_shards: 50,
            min_shards: 1,
            max_samples_per_send: 2000,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration(30),
            max_backoff: Duration::from_secs(5),
            retry_on_http_429: false,
            sample_age_limit: Duration(0),
        }
    }
}

/// `metadata_config`: whether and how often metric metadata is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataConfig {
    pub send: bool,
    pub send_interval: Duration,
    pub max_samples_per_send: usize,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig { send: true, send_interval: Duration::from_secs(60), max_samples_per_send: 2000 }
    }
}

/// `sigv4`: requests signed with AWS Signature Version 4. Without keys, credentials come from
/// the environment, `profile` or `role_arn`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigV4Config {
    pub region: Option<String>,
    pub access_key: Option<String>,
    /// Secret: shown as `<secret>`.
    pub secret_key: Option<String>,
    pub profile: Option<String>,
    pub role_arn: Option<String>,
    #[serde(default)]
    pub use_fips_sts_endpoint: bool,
    /// The AWS service signed for; upstream's default is `aps` (Amazon Managed Prometheus).
    pub service_name: Option<String>,
}

impl RemoteWriteConfig {
    /// The queue's name in metrics and logs: `name`, or else the first 6 hex digits of the MD5
    /// of the entry as `status/config` shows it (as upstream's `toHash`), so it is stable
    /// across restarts and reloads while the entry is unchanged.
    pub fn queue_name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        self.hash()[..6].to_string()
    }

    /// The MD5 of the rendered entry, secrets hidden: equal for entries upstream calls
    /// duplicates.
    fn hash(&self) -> String {
        let rendered = serde_norway::to_string(&super::render::remote_write_config(self)).unwrap_or_default();
        format!("{:x}", md5::compute(rendered.as_bytes()))
    }
}

/// Unknown keys are refused by `keys::check` before this (and `flatten` rules out
/// `deny_unknown_fields`).
#[derive(Deserialize)]
pub(super) struct RawRemoteWrite {
    #[serde(default)]
    url: String,
    #[serde(default, deserialize_with = "super::scalar::string")]
    name: String,
    remote_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "super::scalar::map")]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    write_relabel_configs: Vec<RawRule>,
    #[serde(default)]
    send_exemplars: bool,
    #[serde(default)]
    send_native_histograms: bool,
    #[serde(default)]
    round_robin_dns: bool,
    protobuf_message: Option<String>,
    #[serde(default)]
    queue_config: RawQueue,
    #[serde(default)]
    metadata_config: RawMetadata,
    sigv4: Option<SigV4Config>,
    #[serde(flatten)]
    http: RawHttpClient,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    capacity: Option<usize>,
    max_shards: Option<usize>,
    min_shards: Option<usize>,
    max_samples_per_send: Option<usize>,
    batch_send_deadline: Option<Duration>,
    min_backoff: Option<Duration>,
    max_backoff: Option<Duration>,
    retry_on_http_429: Option<bool>,
    sample_age_limit: Option<Duration>,
}

impl RawQueue {
    /// The queue with upstream's defaults, checked as upstream's `QueueConfig.Validate`: the
    /// key at fault and the problem.
    fn build(self) -> Result<QueueConfig, (&'static str, String)> {
        let d = QueueConfig::default();
        let q = QueueConfig {
            capacity: self.capacity.unwrap_or(d.capacity),
            max_shards: self.max_shards.unwrap_or(d.max_shards),
            min_shards: self.min_shards.unwrap_or(d.min_shards),
            max_samples_per_send: self.max_samples_per_send.unwrap_or(d.max_samples_per_send),
            batch_send_deadline: self.batch_send_deadline.unwrap_or(d.batch_send_deadline),
            min_backoff: self.min_backoff.unwrap_or(d.min_backoff),
            max_backoff: self.max_backoff.unwrap_or(d.max_backoff),
            retry_on_http_429: self.retry_on_http_429.unwrap_or(d.retry_on_http_429),
            sample_age_limit: self.sample_age_limit.unwrap_or(d.sample_age_limit),
        };
        let positive = |key: &'static str, n: usize| match n {
            0 => Err((key, format!("remote write queue {key} must be positive"))),
            _ => Ok(()),
        };
        positive("max_shards", q.max_shards)?;
        positive("min_shards", q.min_shards)?;
        if q.min_shards > q.max_shards {
            return Err(("min_shards", "remote write queue min_shards must not be greater than max_shards".into()));
        }
        positive("max_samples_per_send", q.max_samples_per_send)?;
        positive("capacity", q.capacity)?;
        if q.max_backoff < q.min_backoff {
            return Err(("max_backoff", "remote write queue max_backoff must not be less than min_backoff".into()));
        }
        Ok(q)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetadata {
    send: Option<bool>,
    send_interval: Option<Duration>,
    max_samples_per_send: Option<usize>,
}

/// The most `remote_write` entries: Pyrite runs each queue on threads of its own, where
/// upstream runs goroutines.
const MAX_ENTRIES: usize = 256;

/// Every `remote_write` entry checked, secret file paths relative to `dir`.
pub(super) fn validate(
    raw: Vec<RawRemoteWrite>,
    dir: &Path,
    names: NameValidation,
    invalid: Invalid,
) -> Result<Vec<RemoteWriteConfig>, ConfigError> {
    if raw.len() > MAX_ENTRIES {
        let message = format!("{} entries, more than the {MAX_ENTRIES} remote-write queues Pyrite runs", raw.len());
        return Err(invalid("remote_write".into(), message));
    }
    let mut out: Vec<RemoteWriteConfig> = Vec::new();
    let mut hashes: Vec<String> = Vec::new();
    for (i, rw) in raw.into_iter().enumerate() {
        let at = |key: &str| format!("remote_write[{i}].{key}");
        if rw.url.is_empty() {
            return Err(invalid(at("url"), "url for remote_write is empty".into()));
        }
        check_http_url(&rw.url).map_err(|m| invalid(at("url"), m))?;
        let write_relabel_configs =
            build_rules(rw.write_relabel_configs, names, "write_relabel_configs", &at, invalid)?;
        headers::check(&rw.headers).map_err(|m| invalid(at("headers"), m))?;
        let protobuf_message = match rw.protobuf_message.as_deref() {
            None => ProtobufMessage::V1,
            Some(name) => ProtobufMessage::from_proto_name(name).ok_or_else(|| {
                let known: Vec<&str> = ProtobufMessage::ALL.iter().map(|m| m.proto_name()).collect();
                let message = format!(
                    "invalid protobuf_message value: unknown type for remote write protobuf message {name}, supported: {}",
                    known.join(", ")
                );
                invalid(at("protobuf_message"), message)
            })?,
        };
        // Upstream's remote-write client does not speak HTTP/2 unless asked.
        let enable_http2 = rw.http.enable_http2.unwrap_or(false);
        let mut http = rw.http.build(dir, &at, invalid)?;
        http.enable_http2 = enable_http2;
        let queue = rw.queue_config.build().map_err(|(key, m)| invalid(at(&format!("queue_config.{key}")), m))?;
        if let Some(sigv4) = &rw.sigv4 {
            let given = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
            if given(&sigv4.access_key) != given(&sigv4.secret_key) {
                let message = "must provide a AWS SigV4 Access key and Secret Key if credentials are specified in the SigV4 config";
                return Err(invalid(at("sigv4"), message.into()));
            }
            let others: Vec<&str> = [
                ("basic_auth", http.basic_auth.is_some()),
                ("authorization", http.authorization.is_some()),
                ("oauth2", http.oauth2.is_some()),
            ]
            .into_iter()
            .filter_map(|(key, set)| set.then_some(key))
            .collect();
            if !others.is_empty() {
                let message = format!(
                    "at most one of basic_auth, authorization, oauth2, sigv4, azuread or google_iam must be configured. Currently configured: [{} sigv4]",
                    others.join(" ")
                );
                return Err(invalid(at("sigv4"), message));
            }
        }
        if !rw.name.is_empty() && out.iter().any(|o| o.name == rw.name) {
            return Err(invalid(
                at("name"),
                format!("found multiple remote write configs with job name {:?}", rw.name),
            ));
        }
        let d = MetadataConfig::default();
        let metadata = MetadataConfig {
            send: rw.metadata_config.send.unwrap_or(d.send),
            send_interval: rw.metadata_config.send_interval.unwrap_or(d.send_interval),
            max_samples_per_send: rw.metadata_config.max_samples_per_send.unwrap_or(d.max_samples_per_send),
        };
        let entry = RemoteWriteConfig {
            url: rw.url,
            name: rw.name,
            remote_timeout: rw.remote_timeout.unwrap_or(Duration::from_secs(30)),
            headers: rw.headers,
            write_relabel_configs,
            send_exemplars: rw.send_exemplars,
            send_native_histograms: rw.send_native_histograms,
            round_robin_dns: rw.round_robin_dns,
            protobuf_message,
            http,
            sigv4: rw.sigv4,
            queue,
            metadata,
        };
        let hash = entry.hash();
        if hashes.contains(&hash) {
            let message =
                format!("duplicate remote write configs are not allowed, found duplicate for URL: {}", entry.url);
            return Err(invalid(format!("remote_write[{i}]"), message));
        }
        hashes.push(hash);
        out.push(entry);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "p.yml").map_err(|e| e.to_string())
    }

    #[test]
    fn more_remote_write_entries_than_pyrite_runs_are_refused_naming_the_key() {
        let entries = |n: usize| {
            let urls: Vec<String> = (0..n).map(|i| format!("{{url: 'http://a{i}/'}}")).collect();
            format!("remote_write: [{}]\n", urls.join(", "))
        };
        assert!(parse(&entries(MAX_ENTRIES)).is_ok());
        let refused = parse(&entries(MAX_ENTRIES + 1)).unwrap_err();
        assert!(refused.contains("remote_write: 257 entries, more than the 256"), "{refused}");
    }

    #[test]
    fn defaults_are_upstreams() {
        let c = parse("remote_write:\n  - url: http://r:9090/api/v1/write\n").unwrap();
        let rw = &c.remote_write[0];
        assert_eq!(rw.remote_timeout, Duration::from_secs(30));
        assert_eq!(rw.protobuf_message, ProtobufMessage::V1);
        assert!(!rw.send_exemplars && !rw.send_native_histograms && !rw.round_robin_dns);
        assert!(rw.http.follow_redirects && !rw.http.enable_http2);
        assert_eq!(rw.queue, QueueConfig::default());
        assert_eq!(
            (rw.queue.capacity, rw.queue.max_shards, rw.queue.min_shards, rw.queue.max_samples_per_send),
            (10_000, 50, 1, 2000)
        );
        assert_eq!(rw.queue.min_backoff, Duration(30));
        assert_eq!(
            rw.metadata,
            MetadataConfig { send: true, send_interval: Duration::from_secs(60), max_samples_per_send: 2000 }
        );
        assert!(rw.sigv4.is_none() && rw.name.is_empty());
        // A partial section keeps the defaults of the keys it leaves out.
        let c = parse("remote_write:\n  - url: http://r/\n    queue_config: {max_shards: 4}\n    metadata_config: {send: false}\n")
            .unwrap();
        assert_eq!((c.remote_write[0].queue.max_shards, c.remote_write[0].queue.capacity), (4, 10_000));
        assert_eq!(c.remote_write[0].metadata.send_interval, Duration::from_secs(60));
    }

    #[test]
    fn every_key_parses_and_renders_back_to_the_same_config() {
        let text = "remote_write:
  - url: https://aps.example/api/v1/remote_write
    name: amp
    remote_timeout: 10s
    headers: {X-Scope-OrgID: tenant}
    write_relabel_configs: [{source_labels: [__name__], regex: 'go_.*', action: drop}]
    send_exemplars: true
    send_native_histograms: true
    round_robin_dns: true
    protobuf_message: io.prometheus.write.v2.Request
    follow_redirects: false
    enable_http2: true
    tls_config: {ca_file: ca.pem, server_name: aps}
    proxy_url: http://u:pw@proxy:3128
    queue_config: {capacity: 500, max_shards: 10, min_shards: 2, max_samples_per_send: 100, batch_send_deadline: 1s, min_backoff: 50ms, max_backoff: 1s, retry_on_http_429: true, sample_age_limit: 5m}
    metadata_config: {send: false, send_interval: 2m, max_samples_per_send: 10}
    sigv4: {region: eu-west-1, access_key: AK, secret_key: sigv4-S3cret, profile: p, role_arn: 'arn:aws:iam::1:role/r', use_fips_sts_endpoint: true, service_name: aps}
  - url: http://second/
    oauth2:
      client_id: id
      client_secret: oauth2-S3cret
      scopes: [a, b]
      token_url: https://idp/token
      endpoint_params: {audience: x}
      tls_config: {insecure_skip_verify: true}
      proxy_url: http://proxy:3128
";
        let c = Config::parse(text, "/etc/p.yml").unwrap();
        let rw = &c.remote_write[0];
        assert_eq!(rw.protobuf_message, ProtobufMessage::V2);
        assert_eq!(rw.http.tls.ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert_eq!(rw.queue.sample_age_limit, Duration::from_secs(300));
        assert_eq!(rw.sigv4.as_ref().and_then(|s| s.secret_key.as_deref()), Some("sigv4-S3cret"));
        assert_eq!(rw.queue_name(), "amp");
        let o = c.remote_write[1].http.oauth2.as_ref().unwrap();
        assert_eq!((o.scopes.len(), o.endpoint_params["audience"].as_str()), (2, "x"));
        let shown = c.to_yaml();
        for secret in ["sigv4-S3cret", "oauth2-S3cret", ":pw@"] {
            assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
        }
        assert!(shown.contains("secret_key: <secret>") && shown.contains("client_secret: <secret>"), "{shown}");
        // Secrets come back as `<secret>`; everything else as it was.
        let mut back = Config::parse(&shown, "/etc/p.yml").unwrap();
        let sigv4 = back.remote_write[0].sigv4.as_mut().unwrap();
        assert_eq!(sigv4.secret_key.replace("sigv4-S3cret".into()).as_deref(), Some("<secret>"));
        back.remote_write[0].http.proxy_url = rw.http.proxy_url.clone();
        back.remote_write[1].http.oauth2.as_mut().unwrap().client_secret = Some("oauth2-S3cret".into());
        assert_eq!(back, c);
        // Upstream's key order.
        let rendered = super::super::render::remote_write_config(rw);
        let keys: Vec<&str> = rendered.as_mapping().unwrap().keys().filter_map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "url",
                "remote_timeout",
                "headers",
                "write_relabel_configs",
                "name",
                "send_exemplars",
                "send_native_histograms",
                "round_robin_dns",
                "protobuf_message",
                "tls_config",
                "follow_redirects",
                "enable_http2",
                "proxy_url",
                "queue_config",
                "metadata_config",
                "sigv4"
            ]
        );
    }

    #[test]
    fn queue_names_are_the_name_or_a_hash_of_the_entry() {
        let c = parse(
            "remote_write: [{url: 'http://a/'}, {url: 'http://a/', remote_timeout: 5s}, {url: 'http://a/', name: x}]\n",
        )
        .unwrap();
        let names: Vec<String> = c.remote_write.iter().map(RemoteWriteConfig::queue_name).collect();
        assert_eq!(names[2], "x");
        assert!(names[0].len() == 6 && names[0].bytes().all(|b| b.is_ascii_hexdigit()), "{names:?}");
        assert_ne!(names[0], names[1]);
        // Stable: the same entry parsed again has the same name.
        assert_eq!(parse("remote_write: [{url: 'http://a/'}]\n").unwrap().remote_write[0].queue_name(), names[0]);
    }

    #[test]
    fn bad_entries_are_refused_naming_the_key() {
        let e = |text: &str| parse(text).unwrap_err();
        let cases = [
            ("remote_write: [{}]", "remote_write[0].url: url for remote_write is empty"),
            ("remote_write: [{url: 'ftp://a/'}]", "remote_write[0].url: URL scheme must be 'http' or 'https': \"ftp://a/\""),
            (
                "remote_write: [{url: 'http://a/', name: x}, {url: 'http://b/', name: x}]",
                "remote_write[1].name: found multiple remote write configs with job name \"x\"",
            ),
            (
                "remote_write: [{url: 'http://a/'}, {url: 'http://a/'}]",
                "remote_write[1]: duplicate remote write configs are not allowed, found duplicate for URL: http://a/",
            ),
            (
                "remote_write: [{url: 'http://a/', protobuf_message: v3}]",
                "remote_write[0].protobuf_message: invalid protobuf_message value: unknown type for remote write protobuf message v3, supported: prometheus.WriteRequest, io.prometheus.write.v2.Request",
            ),
            (
                "remote_write: [{url: 'http://a/', queue_config: {min_shards: 5, max_shards: 4}}]",
                "remote_write[0].queue_config.min_shards: remote write queue min_shards must not be greater than max_shards",
            ),
            (
                "remote_write: [{url: 'http://a/', queue_config: {max_shards: 0}}]",
                "remote_write[0].queue_config.max_shards: remote write queue max_shards must be positive",
            ),
            (
                "remote_write: [{url: 'http://a/', queue_config: {capacity: 0}}]",
                "remote_write[0].queue_config.capacity: remote write queue capacity must be positive",
            ),
            (
                "remote_write: [{url: 'http://a/', queue_config: {max_samples_per_send: 0}}]",
                "remote_write[0].queue_config.max_samples_per_send: remote write queue max_samples_per_send must be positive",
            ),
            (
                "remote_write: [{url: 'http://a/', queue_config: {min_backoff: 1s, max_backoff: 100ms}}]",
                "remote_write[0].queue_config.max_backoff: remote write queue max_backoff must not be less than min_backoff",
            ),
            (
                "remote_write: [{url: 'http://a/', sigv4: {access_key: a}}]",
                "remote_write[0].sigv4: must provide a AWS SigV4 Access key and Secret Key if credentials are specified in the SigV4 config",
            ),
            (
                "remote_write: [{url: 'http://a/', sigv4: {}, basic_auth: {username: u}}]",
                "remote_write[0].sigv4: at most one of basic_auth, authorization, oauth2, sigv4, azuread or google_iam must be configured. Currently configured: [basic_auth sigv4]",
            ),
            (
                "remote_write: [{url: 'http://a/', sigv4: {}, oauth2: {client_id: c, token_url: 'http://t/'}}]",
                "remote_write[0].sigv4: at most one of basic_auth, authorization, oauth2, sigv4, azuread or google_iam must be configured. Currently configured: [oauth2 sigv4]",
            ),
            (
                "remote_write: [{url: 'http://a/', oauth2: {client_id: c, token_url: 'http://t/'}, authorization: {credentials: x}}]",
                "remote_write[0].authorization: at most one of basic_auth, oauth2 & authorization must be configured",
            ),
            (
                "remote_write: [{url: 'http://a/', oauth2: {token_url: 'http://t/'}}]",
                "remote_write[0].oauth2.client_id: oauth2 client_id must be configured",
            ),
            (
                "remote_write: [{url: 'http://a/', oauth2: {client_id: c, token_url: 'http://t/', client_secret: s, client_secret_file: f}}]",
                "remote_write[0].oauth2: at most one of oauth2 client_secret, client_secret_file & client_secret_ref must be configured using grant-type=client_credentials",
            ),
            (
                "remote_write: [{url: 'http://a/', oauth2: {client_id: c, token_url: 'http://t/', proxy_url: 'https://p/'}}]",
                "remote_write[0].oauth2.proxy_url: \"https://p/\": only http:// proxies are supported",
            ),
            (
                "remote_write: [{url: 'http://a/', headers: {X-Amz-Date: x}}]",
                "remote_write[0].headers: X-Amz-Date is a reserved header. It must not be changed",
            ),
            (
                "remote_write: [{url: 'http://a/', write_relabel_configs: [{action: hashmod, target_label: x}]}]",
                "remote_write[0].write_relabel_configs[0]: relabel configuration for hashmod requires non-zero modulus",
            ),
            ("remote_write: [{url: 'http://a/', queue_config: {max_shard: 1}}]", "remote_write[0].queue_config.max_shard: unknown key"),
            ("remote_write: [{url: 'http://a/', sigv4: {region: r, x: 1}}]", "remote_write[0].sigv4.x: unknown key"),
            (
                "remote_write: [{url: 'http://a/', azuread: {cloud: AzurePublic}}]",
                "remote_write[0].azuread: key is valid in Prometheus but not supported by Pyrite yet",
            ),
            (
                "remote_write: [{url: 'http://a/', google_iam: {}}]",
                "remote_write[0].google_iam: key is valid in Prometheus but not supported by Pyrite yet",
            ),
            (
                "remote_write: [{url: 'http://a/', oauth2: {client_id: c, token_url: 'http://t/', client_secret_ref: r}}]",
                "remote_write[0].oauth2.client_secret_ref: key is valid in Prometheus but not supported by Pyrite yet",
            ),
            (
                "remote_write: [{url: 'http://a/', oauth2: {client_id: c, token_url: 'http://t/', tls_config: {ca_ref: x}}}]",
                "remote_write[0].oauth2.tls_config.ca_ref: key is valid in Prometheus but not supported by Pyrite yet",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(e(&format!("{text}\n")), format!("p.yml: {message}"), "{text}");
        }
        let negative = e("remote_write: [{url: 'http://a/', queue_config: {capacity: -1}}]\n");
        assert!(negative.starts_with("p.yml: remote_write[0].queue_config.capacity: invalid value"), "{negative}");
    }
}
