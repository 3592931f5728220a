//! The effective configuration as YAML, defaults filled in, in upstream's key order: what
//! `/api/v1/status/config` shows, so an operator sees what the server actually runs.

use serde_norway::{Mapping, Value};

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{
    AlertmanagerConfig, Config, DnsSdConfig, FileSdConfig, HistogramKeys, HttpClientConfig, HttpSdConfig, NameSchemes,
    OAuth2, RemoteReadConfig, RemoteWriteConfig, ScrapeConfig, ScrapeLimits, ScrapeProtocol, StaticConfig, TlsConfig,
};
use crate::labels::Labels;

fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Mapping(pairs.into_iter().map(|(k, v)| (Value::from(k), v)).collect::<Mapping>())
}

fn labels(l: &Labels) -> Value {
    Value::Mapping(l.iter().map(|l| (Value::from(l.name.as_str()), Value::from(l.value.as_str()))).collect())
}

/// The limit keys and their values, in upstream's order.
fn limits(l: &ScrapeLimits) -> [(&'static str, Value); 7] {
    [
        ("body_size_limit", l.body_size_limit.to_string().into()),
        ("sample_limit", l.sample_limit.into()),
        ("label_limit", l.label_limit.into()),
        ("label_name_length_limit", l.label_name_length_limit.into()),
        ("label_value_length_limit", l.label_value_length_limit.into()),
        ("target_limit", l.target_limit.into()),
        ("keep_dropped_targets", l.keep_dropped_targets.into()),
    ]
}

fn protocols(p: &[ScrapeProtocol]) -> Value {
    Value::Sequence(p.iter().map(|p| Value::from(p.name())).collect())
}

/// The histogram keys and their values, in upstream's order.
fn histogram_keys(h: &HistogramKeys) -> [(&'static str, Value); 3] {
    [
        ("scrape_native_histograms", h.scrape_native_histograms.into()),
        ("always_scrape_classic_histograms", h.always_scrape_classic_histograms.into()),
        ("convert_classic_histograms_to_nhcb", h.convert_classic_histograms_to_nhcb.into()),
    ]
}

/// `metric_name_validation_scheme` and `metric_name_escaping_scheme`, as upstream 3.x writes
/// them out.
fn name_keys(n: &NameSchemes) -> [(&'static str, Value); 2] {
    [
        ("metric_name_validation_scheme", n.validation.name().into()),
        ("metric_name_escaping_scheme", n.escaping.name().into()),
    ]
}

fn scrape_config(sc: &ScrapeConfig) -> Value {
    let mut out = map([
        ("job_name", sc.job_name.as_str().into()),
        ("honor_labels", sc.honor_labels.into()),
        ("honor_timestamps", sc.honor_timestamps.into()),
        ("track_timestamps_staleness", sc.track_timestamps_staleness.into()),
        ("scrape_interval", sc.scrape_interval.to_string().into()),
        ("scrape_timeout", sc.scrape_timeout.to_string().into()),
        ("metrics_path", sc.metrics_path.as_str().into()),
        ("scheme", sc.scheme.as_str().into()),
        ("enable_compression", sc.enable_compression.into()),
    ]);
    let Value::Mapping(m) = &mut out else { return out };
    if let Some(extra) = sc.extra_scrape_metrics {
        m.insert("extra_scrape_metrics".into(), extra.into());
    }
    m.extend(limits(&sc.limits).map(|(k, v)| (Value::from(k), v)));
    if sc.native_histogram_bucket_limit > 0 {
        m.insert("native_histogram_bucket_limit".into(), sc.native_histogram_bucket_limit.into());
    }
    if sc.native_histogram_min_bucket_factor != 0.0 {
        m.insert("native_histogram_min_bucket_factor".into(), sc.native_histogram_min_bucket_factor.into());
    }
    if let Some(file) = &sc.scrape_failure_log_file {
        m.insert("scrape_failure_log_file".into(), file.display().to_string().into());
    }
    m.insert("scrape_protocols".into(), protocols(&sc.scrape_protocols));
    if let Some(p) = sc.fallback_scrape_protocol {
        m.insert("fallback_scrape_protocol".into(), p.name().into());
    }
    m.extend(histogram_keys(&sc.histograms).map(|(k, v)| (Value::from(k), v)));
    m.extend(name_keys(&sc.names).map(|(k, v)| (Value::from(k), v)));
    http_client(m, &sc.http);
    if !sc.params.is_empty() {
        let params = sc
            .params
            .iter()
            .map(|(k, vs)| (Value::from(k.as_str()), vs.iter().map(|v| Value::from(v.as_str())).collect()));
        m.insert("params".into(), Value::Mapping(params.collect()));
    }
    for (key, rules) in
        [("relabel_configs", &sc.relabel_configs), ("metric_relabel_configs", &sc.metric_relabel_configs)]
    {
        if !rules.is_empty() {
            m.insert(key.into(), Value::Sequence(rules.iter().map(|r| r.to_yaml()).collect()));
        }
    }
    discovery(m, &sc.static_configs, &sc.file_sd_configs, &sc.dns_sd_configs, &sc.http_sd_configs);
    out
}

fn path(p: &Option<PathBuf>) -> Option<Value> {
    p.as_ref().map(|p| Value::from(p.display().to_string()))
}

fn secret(s: &Option<String>) -> Option<Value> {
    s.as_ref().map(|_| Value::from("<secret>"))
}

/// A mapping of the pairs that have a value, in their order.
fn present(pairs: Vec<(&str, Option<Value>)>) -> Value {
    Value::Mapping(pairs.into_iter().filter_map(|(k, v)| Some((Value::from(k), v?))).collect())
}

fn strings(m: &BTreeMap<String, String>) -> Value {
    Value::Mapping(m.iter().map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str()))).collect())
}

/// A proxy URL with its credentials hidden.
fn proxy_url(proxy: &str) -> Value {
    match proxy.rsplit_once('@') {
        Some((_, host)) => format!("http://<secret>@{host}").into(),
        None => proxy.into(),
    }
}

fn tls_config(t: &TlsConfig) -> Value {
    present(vec![
        ("ca", t.ca.as_deref().map(Value::from)),
        ("ca_file", path(&t.ca_file)),
        ("cert", t.cert.as_deref().map(Value::from)),
        ("cert_file", path(&t.cert_file)),
        ("key", secret(&t.key)),
        ("key_file", path(&t.key_file)),
        ("server_name", t.server_name.as_deref().map(Value::from)),
        ("insecure_skip_verify", Some(Value::from(t.insecure_skip_verify))),
        ("min_version", t.min_version.map(|v| v.name().into())),
        ("max_version", t.max_version.map(|v| v.name().into())),
    ])
}

fn oauth2(o: &OAuth2) -> Value {
    let scopes = (!o.scopes.is_empty()).then(|| o.scopes.iter().map(|s| Value::from(s.as_str())).collect());
    present(vec![
        ("client_id", Some(o.client_id.as_str().into())),
        ("client_secret", secret(&o.client_secret)),
        ("client_secret_file", path(&o.client_secret_file)),
        ("scopes", scopes.map(Value::Sequence)),
        ("token_url", Some(o.token_url.as_str().into())),
        ("endpoint_params", (!o.endpoint_params.is_empty()).then(|| strings(&o.endpoint_params))),
        ("tls_config", Some(tls_config(&o.tls))),
        ("proxy_url", o.proxy_url.as_deref().map(proxy_url)),
    ])
}

/// The HTTP client keys of a scrape config, Alertmanager set or remote store in upstream's
/// order, secrets hidden.
fn http_client(m: &mut Mapping, http: &HttpClientConfig) {
    if let Some(b) = &http.basic_auth {
        let fields = vec![
            ("username", b.username.as_deref().map(Value::from)),
            ("username_file", path(&b.username_file)),
            ("password", secret(&b.password)),
            ("password_file", path(&b.password_file)),
        ];
        m.insert("basic_auth".into(), present(fields));
    }
    if let Some(a) = &http.authorization {
        let fields = vec![
            ("type", Some(Value::from(a.kind.as_deref().unwrap_or("Bearer")))),
            ("credentials", secret(&a.credentials)),
            ("credentials_file", path(&a.credentials_file)),
        ];
        m.insert("authorization".into(), present(fields));
    }
    if let Some(o) = &http.oauth2 {
        m.insert("oauth2".into(), oauth2(o));
    }
    m.insert("tls_config".into(), tls_config(&http.tls));
    m.insert("follow_redirects".into(), http.follow_redirects.into());
    m.insert("enable_http2".into(), http.enable_http2.into());
    if let Some(proxy) = &http.proxy_url {
        m.insert("proxy_url".into(), proxy_url(proxy));
    }
    if let Some(no_proxy) = &http.no_proxy {
        m.insert("no_proxy".into(), no_proxy.as_str().into());
    }
    if http.proxy_from_environment {
        m.insert("proxy_from_environment".into(), true.into());
    }
    if !http.http_headers.is_empty() {
        let headers = http.http_headers.iter().map(|(name, h)| {
            let list = |items: Vec<Value>| (!items.is_empty()).then_some(Value::Sequence(items));
            let fields = vec![
                ("values", list(h.values.iter().map(|v| Value::from(v.as_str())).collect())),
                ("secrets", list(h.secrets.iter().map(|_| Value::from("<secret>")).collect())),
                ("files", list(h.files.iter().map(|f| Value::from(f.display().to_string())).collect())),
            ];
            (Value::from(name.as_str()), present(fields))
        });
        m.insert("http_headers".into(), Value::Mapping(headers.collect()));
    }
}

/// The target sources of a scrape config or Alertmanager set.
fn discovery(
    m: &mut Mapping,
    static_configs: &[StaticConfig],
    file_sd_configs: &[FileSdConfig],
    dns_sd_configs: &[DnsSdConfig],
    http_sd_configs: &[HttpSdConfig],
) {
    m.insert("static_configs".into(), Value::Sequence(static_configs.iter().map(static_config).collect()));
    if !file_sd_configs.is_empty() {
        let files = file_sd_configs.iter().map(|f| {
            let files = f.files.iter().map(|p| Value::from(p.as_str())).collect();
            map([("files", Value::Sequence(files)), ("refresh_interval", f.refresh_interval.to_string().into())])
        });
        m.insert("file_sd_configs".into(), Value::Sequence(files.collect()));
    }
    if !dns_sd_configs.is_empty() {
        let dns = dns_sd_configs.iter().map(|d| {
            let names = d.names.iter().map(|n| Value::from(n.as_str())).collect();
            let mut entry = map([
                ("names", Value::Sequence(names)),
                ("type", d.kind.as_str().into()),
                ("refresh_interval", d.refresh_interval.to_string().into()),
            ]);
            if let (Value::Mapping(e), Some(port)) = (&mut entry, d.port) {
                e.insert("port".into(), port.into());
            }
            entry
        });
        m.insert("dns_sd_configs".into(), Value::Sequence(dns.collect()));
    }
    if !http_sd_configs.is_empty() {
        let urls = http_sd_configs.iter().map(|h| {
            map([("url", h.url.as_str().into()), ("refresh_interval", h.refresh_interval.to_string().into())])
        });
        m.insert("http_sd_configs".into(), Value::Sequence(urls.collect()));
    }
}

fn alertmanager_config(am: &AlertmanagerConfig) -> Value {
    let mut out = map([
        ("scheme", am.scheme.as_str().into()),
        ("path_prefix", format!("{}/", am.path_prefix).into()),
        ("timeout", am.timeout.to_string().into()),
        ("api_version", am.api_version.as_str().into()),
    ]);
    let Value::Mapping(m) = &mut out else { return out };
    http_client(m, &am.http);
    for (key, rules) in [("relabel_configs", &am.relabel_configs), ("alert_relabel_configs", &am.alert_relabel_configs)]
    {
        if !rules.is_empty() {
            m.insert(key.into(), Value::Sequence(rules.iter().map(|r| r.to_yaml()).collect()));
        }
    }
    let d = &am.discovery;
    discovery(m, &d.static_configs, &d.file_sd_configs, &d.dns_sd_configs, &d.http_sd_configs);
    out
}

/// A `remote_read` entry with its defaults; header values are shown, as upstream shows them.
fn remote_read_config(rr: &RemoteReadConfig) -> Value {
    let mut out = map([
        ("url", rr.url.as_str().into()),
        ("remote_timeout", rr.remote_timeout.to_string().into()),
        ("read_recent", rr.read_recent.into()),
        ("filter_external_labels", rr.filter_external_labels.into()),
    ]);
    let Value::Mapping(m) = &mut out else { return out };
    if !rr.name.is_empty() {
        m.insert("name".into(), rr.name.as_str().into());
    }
    if !rr.headers.is_empty() {
        m.insert("headers".into(), strings(&rr.headers));
    }
    if !rr.required_matchers.is_empty() {
        m.insert("required_matchers".into(), strings(&rr.required_matchers));
    }
    http_client(m, &rr.http);
    out
}

/// A `remote_write` entry with its defaults, in upstream's key order (what upstream leaves out
/// when empty or false is left out); header values are shown, as upstream shows them.
pub(super) fn remote_write_config(rw: &RemoteWriteConfig) -> Value {
    let mut out = map([("url", rw.url.as_str().into()), ("remote_timeout", rw.remote_timeout.to_string().into())]);
    let Value::Mapping(m) = &mut out else { return out };
    if !rw.headers.is_empty() {
        m.insert("headers".into(), strings(&rw.headers));
    }
    if !rw.write_relabel_configs.is_empty() {
        let rules = rw.write_relabel_configs.iter().map(|r| r.to_yaml()).collect();
        m.insert("write_relabel_configs".into(), Value::Sequence(rules));
    }
    if !rw.name.is_empty() {
        m.insert("name".into(), rw.name.as_str().into());
    }
    for (key, on) in [
        ("send_exemplars", rw.send_exemplars),
        ("send_native_histograms", rw.send_native_histograms),
        ("round_robin_dns", rw.round_robin_dns),
    ] {
        if on {
            m.insert(key.into(), true.into());
        }
    }
    m.insert("protobuf_message".into(), rw.protobuf_message.proto_name().into());
    http_client(m, &rw.http);
    let q = &rw.queue;
    let mut queue = map([
        ("capacity", q.capacity.into()),
        ("max_shards", q.max_shards.into()),
        ("min_shards", q.min_shards.into()),
        ("max_samples_per_send", q.max_samples_per_send.into()),
        ("batch_send_deadline", q.batch_send_deadline.to_string().into()),
        ("min_backoff", q.min_backoff.to_string().into()),
        ("max_backoff", q.max_backoff.to_string().into()),
    ]);
    if let Value::Mapping(queue) = &mut queue {
        if q.retry_on_http_429 {
            queue.insert("retry_on_http_429".into(), true.into());
        }
        if q.sample_age_limit.millis() > 0 {
            queue.insert("sample_age_limit".into(), q.sample_age_limit.to_string().into());
        }
    }
    m.insert("queue_config".into(), queue);
    let md = &rw.metadata;
    let metadata = map([
        ("send", md.send.into()),
        ("send_interval", md.send_interval.to_string().into()),
        ("max_samples_per_send", md.max_samples_per_send.into()),
    ]);
    m.insert("metadata_config".into(), metadata);
    if let Some(s) = &rw.sigv4 {
        let text = |s: &Option<String>| s.as_deref().map(Value::from);
        let sigv4 = present(vec![
            ("region", text(&s.region)),
            ("access_key", text(&s.access_key)),
            ("secret_key", secret(&s.secret_key)),
            ("profile", text(&s.profile)),
            ("role_arn", text(&s.role_arn)),
            ("use_fips_sts_endpoint", s.use_fips_sts_endpoint.then_some(Value::from(true))),
            ("service_name", text(&s.service_name)),
        ]);
        m.insert("sigv4".into(), sigv4);
    }
    out
}

fn static_config(st: &StaticConfig) -> Value {
    let targets = Value::Sequence(st.targets.iter().map(|t| t.as_str().into()).collect());
    if st.labels.is_empty() {
        return map([("targets", targets)]);
    }
    let labels = st.labels.iter().map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str()))).collect();
    map([("targets", targets), ("labels", Value::Mapping(labels))])
}

impl Config {
    /// The configuration as YAML with every default written out.
    pub fn to_yaml(&self) -> String {
        let g = &self.global;
        let mut global = map([
            ("scrape_interval", g.scrape_interval.to_string().into()),
            ("scrape_timeout", g.scrape_timeout.to_string().into()),
            ("evaluation_interval", g.evaluation_interval.to_string().into()),
            ("rule_query_offset", g.rule_query_offset.to_string().into()),
        ]);
        if let Value::Mapping(m) = &mut global {
            if let Some(p) = &g.scrape_protocols {
                m.insert("scrape_protocols".into(), protocols(p));
            }
            m.extend(histogram_keys(&g.histograms).map(|(k, v)| (Value::from(k), v)));
            m.extend(name_keys(&g.names).map(|(k, v)| (Value::from(k), v)));
            m.extend(limits(&g.limits).map(|(k, v)| (Value::from(k), v)));
            if let Some(extra) = g.extra_scrape_metrics {
                m.insert("extra_scrape_metrics".into(), extra.into());
            }
            for (key, file) in
                [("query_log_file", &g.query_log_file), ("scrape_failure_log_file", &g.scrape_failure_log_file)]
            {
                if let Some(file) = file {
                    m.insert(key.into(), file.display().to_string().into());
                }
            }
            if !g.external_labels.is_empty() {
                m.insert("external_labels".into(), labels(&g.external_labels));
            }
        }
        let mut root = map([("global", global)]);
        if let Value::Mapping(m) = &mut root {
            // As upstream, the main file's: those of `scrape_config_files` are not shown.
            let configs: Vec<Value> =
                self.scrape_configs.iter().filter(|sc| sc.defined_in.is_none()).map(scrape_config).collect();
            if !configs.is_empty() {
                m.insert("scrape_configs".into(), Value::Sequence(configs));
            }
            if !self.scrape_config_files.is_empty() {
                let files = self.scrape_config_files.iter().map(|f| Value::from(f.as_str())).collect();
                m.insert("scrape_config_files".into(), Value::Sequence(files));
            }
        }
        if let Value::Mapping(m) = &mut root {
            if !self.rule_files.is_empty() {
                let files = self.rule_files.iter().map(|f| Value::from(f.as_str())).collect();
                m.insert("rule_files".into(), Value::Sequence(files));
            }
            let a = &self.alerting;
            if !a.alertmanagers.is_empty() || !a.alert_relabel_configs.is_empty() {
                let mut alerting = Mapping::new();
                if !a.alert_relabel_configs.is_empty() {
                    let rules = a.alert_relabel_configs.iter().map(|r| r.to_yaml()).collect();
                    alerting.insert("alert_relabel_configs".into(), Value::Sequence(rules));
                }
                let sets = a.alertmanagers.iter().map(alertmanager_config).collect();
                alerting.insert("alertmanagers".into(), Value::Sequence(sets));
                m.insert("alerting".into(), Value::Mapping(alerting));
            }
            if !self.remote_write.is_empty() {
                m.insert(
                    "remote_write".into(),
                    Value::Sequence(self.remote_write.iter().map(remote_write_config).collect()),
                );
            }
            if !self.remote_read.is_empty() {
                m.insert(
                    "remote_read".into(),
                    Value::Sequence(self.remote_read.iter().map(remote_read_config).collect()),
                );
            }
        }
        serde_norway::to_string(&root).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_fills_defaults_and_parses_back_to_the_same_config() {
        let text = "global:\n  scrape_interval: 15s\n  sample_limit: 5000\n  external_labels: {dc: eu}\nscrape_configs:\n  - job_name: node\n    params: {module: [a, b]}\n    body_size_limit: 10MB\n    relabel_configs:\n      - {source_labels: [__address__], regex: '(.*):.*', target_label: host}\n      - {action: hashmod, source_labels: [host], modulus: 4, target_label: shard}\n    metric_relabel_configs: [{action: labeldrop, regex: tmp_.*}]\n    static_configs:\n      - targets: ['a:1']\n        labels: {env: prod}\nrule_files: [/etc/rules/*.yml]\nalerting:\n  alert_relabel_configs: [{action: labeldrop, regex: replica}]\n  alertmanagers:\n    - path_prefix: /am\n      timeout: 5s\n      basic_auth: {username: u, password_file: /etc/am-password}\n      static_configs: [{targets: ['am:9093']}]\n";
        let config = Config::parse(text, "p.yml").unwrap();
        let yaml = config.to_yaml();
        assert!(yaml.contains("scrape_timeout: 10s"), "{yaml}");
        assert!(yaml.contains("metrics_path: /metrics"), "{yaml}");
        assert!(yaml.contains("sample_limit: 5000") && yaml.contains("replacement: $1"), "{yaml}");
        assert!(yaml.contains("api_version: v2") && yaml.contains("password_file: /etc/am-password"), "{yaml}");
        assert_eq!(Config::parse(&yaml, "rendered").unwrap(), config);
    }

    #[test]
    fn scrape_protocols_and_histogram_keys_render_and_parse_back() {
        let text = "global:\n  convert_classic_histograms_to_nhcb: true\n  metric_name_validation_scheme: legacy\nscrape_configs:\n  - job_name: native\n    metric_name_escaping_scheme: dots\n    scrape_native_histograms: true\n    fallback_scrape_protocol: PrometheusText0.0.4\n    native_histogram_bucket_limit: 160\n    native_histogram_min_bucket_factor: 1.1\n  - job_name: plain\n";
        let config = Config::parse(text, "p.yml").unwrap();
        let yaml = config.to_yaml();
        assert!(
            yaml.contains("- PrometheusProto") && yaml.contains("fallback_scrape_protocol: PrometheusText0.0.4"),
            "{yaml}"
        );
        assert!(
            yaml.contains("native_histogram_bucket_limit: 160") && !yaml.contains("global:\n  scrape_protocols"),
            "{yaml}"
        );
        assert_eq!(Config::parse(&yaml, "rendered").unwrap(), config);
    }
}
