//! Which configuration keys Pyrite implements, and which ones upstream Prometheus knows.
//!
//! Walking the YAML before typed deserialization lets every refused key be named precisely:
//! "supported by Prometheus, not by Pyrite yet" reads differently from a typo.

use serde_norway::Value;

use super::ConfigError;

struct Section {
    supported: &'static [&'static str],
    upstream_only: &'static [&'static str],
}

const TOP: Section = Section {
    supported: &[
        "global",
        "scrape_configs",
        "rule_files",
        "alerting",
        "remote_write",
        "remote_read",
        "storage",
        "runtime",
        "scrape_config_files",
    ],
    upstream_only: &["tracing", "otlp"],
};

/// A file `scrape_config_files` names.
const SCRAPE_CONFIG_FILE: Section = Section { supported: &["scrape_configs"], upstream_only: &[] };

/// `runtime`: Go's garbage collector's target (`gogc`), read and checked for a configuration
/// Prometheus 3.x runs to load; Pyrite has no garbage collector to tune.
const RUNTIME: Section = Section { supported: &["gogc"], upstream_only: &[] };

const STORAGE: Section = Section { supported: &["exemplars", "tsdb"], upstream_only: &[] };

const TSDB: Section = Section {
    supported: &["out_of_order_time_window", "retention"],
    upstream_only: &["stale_series_compaction_threshold", "chunk_encoding"],
};

const RETENTION: Section = Section { supported: &["time", "size", "percentage"], upstream_only: &[] };

const EXEMPLARS: Section = Section { supported: &["max_exemplars"], upstream_only: &[] };

const GLOBAL: Section = Section {
    supported: &[
        "scrape_interval",
        "scrape_timeout",
        "evaluation_interval",
        "rule_query_offset",
        "external_labels",
        "query_log_file",
        "scrape_failure_log_file",
        "extra_scrape_metrics",
        "body_size_limit",
        "sample_limit",
        "label_limit",
        "label_name_length_limit",
        "label_value_length_limit",
        "target_limit",
        "keep_dropped_targets",
        "scrape_protocols",
        "scrape_native_histograms",
        "always_scrape_classic_histograms",
        "convert_classic_histograms_to_nhcb",
        "metric_name_validation_scheme",
        "metric_name_escaping_scheme",
    ],
    upstream_only: &[],
};

const SCRAPE: Section = Section {
    supported: &[
        "job_name",
        "scrape_interval",
        "scrape_timeout",
        "metrics_path",
        "scheme",
        "honor_labels",
        "honor_timestamps",
        "track_timestamps_staleness",
        "enable_compression",
        "extra_scrape_metrics",
        "params",
        "relabel_configs",
        "metric_relabel_configs",
        "static_configs",
        "file_sd_configs",
        "http_sd_configs",
        "dns_sd_configs",
        "basic_auth",
        "authorization",
        "bearer_token",
        "bearer_token_file",
        "oauth2",
        "follow_redirects",
        "enable_http2",
        "tls_config",
        "proxy_url",
        "no_proxy",
        "proxy_from_environment",
        "http_headers",
        "body_size_limit",
        "sample_limit",
        "label_limit",
        "label_name_length_limit",
        "label_value_length_limit",
        "target_limit",
        "keep_dropped_targets",
        "scrape_protocols",
        "fallback_scrape_protocol",
        "scrape_native_histograms",
        "always_scrape_classic_histograms",
        "convert_classic_histograms_to_nhcb",
        "native_histogram_bucket_limit",
        "native_histogram_min_bucket_factor",
        "metric_name_validation_scheme",
        "metric_name_escaping_scheme",
        "scrape_failure_log_file",
    ],
    upstream_only: &[
        // HTTP client options
        "proxy_connect_header",
        // service discovery
        "kubernetes_sd_configs",
        "consul_sd_configs",
        "ec2_sd_configs",
        "aws_sd_configs",
        "elasticache_sd_configs",
        "msk_sd_configs",
        "rds_sd_configs",
        "oci_sd_configs",
        "outscale_sd_configs",
        "ecs_sd_configs",
        "azure_sd_configs",
        "gce_sd_configs",
        "digitalocean_sd_configs",
        "docker_sd_configs",
        "dockerswarm_sd_configs",
        "eureka_sd_configs",
        "hetzner_sd_configs",
        "ionos_sd_configs",
        "kuma_sd_configs",
        "lightsail_sd_configs",
        "linode_sd_configs",
        "marathon_sd_configs",
        "nerve_sd_configs",
        "nomad_sd_configs",
        "openstack_sd_configs",
        "ovhcloud_sd_configs",
        "puppetdb_sd_configs",
        "scaleway_sd_configs",
        "serverset_sd_configs",
        "triton_sd_configs",
        "uyuni_sd_configs",
        "vultr_sd_configs",
        "stackit_sd_configs",
    ],
};

const ALERTING: Section = Section { supported: &["alert_relabel_configs", "alertmanagers"], upstream_only: &[] };

const ALERTMANAGER: Section = Section {
    supported: &[
        "scheme",
        "path_prefix",
        "timeout",
        "api_version",
        "static_configs",
        "file_sd_configs",
        "http_sd_configs",
        "dns_sd_configs",
        "relabel_configs",
        "alert_relabel_configs",
        "basic_auth",
        "authorization",
        "bearer_token",
        "bearer_token_file",
        "oauth2",
        "tls_config",
        "proxy_url",
        "no_proxy",
        "proxy_from_environment",
        "http_headers",
        "follow_redirects",
        "enable_http2",
    ],
    upstream_only: &[
        "sigv4",
        "proxy_connect_header",
        "kubernetes_sd_configs",
        "consul_sd_configs",
        "ec2_sd_configs",
        "aws_sd_configs",
        "elasticache_sd_configs",
        "msk_sd_configs",
        "rds_sd_configs",
        "oci_sd_configs",
        "outscale_sd_configs",
        "ecs_sd_configs",
    ],
};

const REMOTE_READ: Section = Section {
    supported: &[
        "url",
        "name",
        "remote_timeout",
        "headers",
        "read_recent",
        "required_matchers",
        "filter_external_labels",
        "basic_auth",
        "authorization",
        "bearer_token",
        "bearer_token_file",
        "oauth2",
        "tls_config",
        "proxy_url",
        "no_proxy",
        "proxy_from_environment",
        "http_headers",
        "follow_redirects",
        "enable_http2",
    ],
    upstream_only: &["chunked_read_limit", "proxy_connect_header"],
};

const REMOTE_WRITE: Section = Section {
    supported: &[
        "url",
        "name",
        "remote_timeout",
        "headers",
        "write_relabel_configs",
        "send_exemplars",
        "send_native_histograms",
        "round_robin_dns",
        "protobuf_message",
        "queue_config",
        "metadata_config",
        "sigv4",
        "basic_auth",
        "authorization",
        "bearer_token",
        "bearer_token_file",
        "oauth2",
        "tls_config",
        "proxy_url",
        "no_proxy",
        "proxy_from_environment",
        "http_headers",
        "follow_redirects",
        "enable_http2",
    ],
    upstream_only: &["azuread", "google_iam", "proxy_connect_header"],
};

const QUEUE: Section = Section {
    supported: &[
        "capacity",
        "max_shards",
        "min_shards",
        "max_samples_per_send",
        "batch_send_deadline",
        "min_backoff",
        "max_backoff",
        "retry_on_http_429",
        "sample_age_limit",
    ],
    upstream_only: &[],
};

const METADATA: Section = Section { supported: &["send", "send_interval", "max_samples_per_send"], upstream_only: &[] };

const SIGV4: Section = Section {
    supported: &["region", "access_key", "secret_key", "profile", "role_arn", "use_fips_sts_endpoint", "service_name"],
    upstream_only: &[],
};

const OAUTH2: Section = Section {
    supported: &[
        "client_id",
        "client_secret",
        "client_secret_file",
        "scopes",
        "token_url",
        "endpoint_params",
        "tls_config",
        "proxy_url",
    ],
    upstream_only: &[
        "client_secret_ref",
        "grant_type",
        "client_certificate_key_id",
        "client_certificate_key",
        "client_certificate_key_file",
        "client_certificate_key_ref",
        "signature_algorithm",
        "iss",
        "audience",
        "claims",
        "no_proxy",
        "proxy_from_environment",
        "proxy_connect_header",
    ],
};

const BASIC_AUTH: Section =
    Section { supported: &["username", "username_file", "password", "password_file"], upstream_only: &[] };

const AUTHORIZATION: Section = Section { supported: &["type", "credentials", "credentials_file"], upstream_only: &[] };

const TLS: Section = Section {
    supported: &[
        "ca",
        "ca_file",
        "cert",
        "cert_file",
        "key",
        "key_file",
        "server_name",
        "insecure_skip_verify",
        "min_version",
        "max_version",
    ],
    upstream_only: &["ca_ref", "cert_ref", "key_ref"],
};

const DNS_SD: Section = Section { supported: &["names", "type", "port", "refresh_interval"], upstream_only: &[] };

const STATIC: Section = Section { supported: &["targets", "labels"], upstream_only: &[] };

const FILE_SD: Section = Section { supported: &["files", "refresh_interval"], upstream_only: &[] };

const HTTP_SD: Section = Section {
    supported: &["url", "refresh_interval"],
    upstream_only: &[
        "basic_auth",
        "authorization",
        "bearer_token",
        "bearer_token_file",
        "oauth2",
        "tls_config",
        "proxy_url",
        "no_proxy",
        "proxy_from_environment",
        "proxy_connect_header",
        "follow_redirects",
        "enable_http2",
        "http_headers",
    ],
};

/// The keys of a standalone HTTP client configuration (promtool's `--http.config.file`).
const HTTP_CLIENT: Section = Section {
    supported: &[
        "basic_auth",
        "authorization",
        "bearer_token",
        "bearer_token_file",
        "oauth2",
        "follow_redirects",
        "enable_http2",
        "tls_config",
        "proxy_url",
        "no_proxy",
        "proxy_from_environment",
        "http_headers",
    ],
    upstream_only: &["proxy_connect_header"],
};

/// Scrape config keys Prometheus 2.x knew that 3.x renamed (and no longer accepts), with the
/// new name: refused with a message that names it.
const RENAMED_SCRAPE_KEYS: [(&str, &str); 1] = [("scrape_classic_histograms", "always_scrape_classic_histograms")];

fn check_mapping(value: &Value, section: &Section, path: &str, file: &str) -> Result<(), ConfigError> {
    let Value::Mapping(map) = value else {
        return Ok(()); // a type error; typed deserialization reports it with its path
    };
    for key in map.keys() {
        let Some(key) = key.as_str() else { continue };
        let at = if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
        // A key upstream knows, left empty, asks for nothing (its value is dropped as null).
        if section.supported.contains(&key)
            || (section.upstream_only.contains(&key) && map.get(key).is_some_and(Value::is_null))
        {
            continue;
        }
        return Err(if section.upstream_only.contains(&key) {
            ConfigError::Unsupported { file: file.into(), path: at }
        } else {
            ConfigError::Unknown { file: file.into(), path: at }
        });
    }
    Ok(())
}

/// Refuses any key outside what Pyrite implements, naming it.
pub(super) fn check(root: &Value, file: &str) -> Result<(), ConfigError> {
    check_mapping(root, &TOP, "", file)?;
    if let Some(global) = root.get("global") {
        check_mapping(global, &GLOBAL, "global", file)?;
    }
    if let Some(runtime) = root.get("runtime") {
        check_mapping(runtime, &RUNTIME, "runtime", file)?;
    }
    if let Some(storage) = root.get("storage") {
        check_mapping(storage, &STORAGE, "storage", file)?;
        if let Some(exemplars) = storage.get("exemplars") {
            check_mapping(exemplars, &EXEMPLARS, "storage.exemplars", file)?;
        }
        if let Some(tsdb) = storage.get("tsdb") {
            check_mapping(tsdb, &TSDB, "storage.tsdb", file)?;
            if let Some(retention) = tsdb.get("retention") {
                check_mapping(retention, &RETENTION, "storage.tsdb.retention", file)?;
            }
        }
    }
    let mut clients = scrape_configs(root, file)?;
    if let Some(alerting) = root.get("alerting") {
        check_mapping(alerting, &ALERTING, "alerting", file)?;
        if let Some(Value::Sequence(ams)) = alerting.get("alertmanagers") {
            for (i, am) in ams.iter().enumerate() {
                let path = format!("alerting.alertmanagers[{i}]");
                check_mapping(am, &ALERTMANAGER, &path, file)?;
                clients.push((am, path));
            }
        }
    }
    if let Some(Value::Sequence(remotes)) = root.get("remote_write") {
        for (i, rw) in remotes.iter().enumerate() {
            let path = format!("remote_write[{i}]");
            check_mapping(rw, &REMOTE_WRITE, &path, file)?;
            for (key, section) in [("queue_config", &QUEUE), ("metadata_config", &METADATA), ("sigv4", &SIGV4)] {
                if let Some(value) = rw.get(key) {
                    check_mapping(value, section, &format!("{path}.{key}"), file)?;
                }
            }
            clients.push((rw, path));
        }
    }
    if let Some(Value::Sequence(remotes)) = root.get("remote_read") {
        for (i, rr) in remotes.iter().enumerate() {
            let path = format!("remote_read[{i}]");
            check_mapping(rr, &REMOTE_READ, &path, file)?;
            clients.push((rr, path));
        }
    }
    // Each scrape config, Alertmanager set and remote store: its HTTP client and target sources.
    check_clients(clients, file)
}

/// Refuses any key outside what Pyrite implements in a file `scrape_config_files` names.
pub(super) fn check_scrape_config_file(root: &Value, file: &str) -> Result<(), ConfigError> {
    check_mapping(root, &SCRAPE_CONFIG_FILE, "", file)?;
    check_clients(scrape_configs(root, file)?, file)
}

/// Checks the keys of each of `root`'s scrape configs; returns them with their paths, for
/// [`check_clients`].
fn scrape_configs<'a>(root: &'a Value, file: &str) -> Result<Vec<(&'a Value, String)>, ConfigError> {
    let mut clients = Vec::new();
    if let Some(Value::Sequence(scs)) = root.get("scrape_configs") {
        for (i, sc) in scs.iter().enumerate() {
            let path = format!("scrape_configs[{i}]");
            if let Some((old, new)) = RENAMED_SCRAPE_KEYS.iter().find(|(old, _)| sc.get(old).is_some()) {
                let message = format!("renamed to {new} in Prometheus 3.0");
                return Err(ConfigError::Invalid { file: file.into(), path: format!("{path}.{old}"), message });
            }
            check_mapping(sc, &SCRAPE, &path, file)?;
            clients.push((sc, path));
        }
    }
    Ok(clients)
}

/// The HTTP client and target sources of each scrape config, Alertmanager set and remote
/// store, at its path.
fn check_clients(clients: Vec<(&Value, String)>, file: &str) -> Result<(), ConfigError> {
    for (sc, path) in clients {
        check_client_sections(sc, &path, file)?;
        for (key, section) in [
            ("static_configs", &STATIC),
            ("file_sd_configs", &FILE_SD),
            ("http_sd_configs", &HTTP_SD),
            ("dns_sd_configs", &DNS_SD),
        ] {
            if let Some(Value::Sequence(items)) = sc.get(key) {
                for (j, item) in items.iter().enumerate() {
                    check_mapping(item, section, &format!("{path}.{key}[{j}]"), file)?;
                }
            }
        }
    }
    Ok(())
}

/// The `basic_auth`, `authorization`, `oauth2` and `tls_config` sections of an HTTP client at
/// `path`.
fn check_client_sections(client: &Value, path: &str, file: &str) -> Result<(), ConfigError> {
    let at = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    for (key, section) in
        [("basic_auth", &BASIC_AUTH), ("authorization", &AUTHORIZATION), ("oauth2", &OAUTH2), ("tls_config", &TLS)]
    {
        if let Some(value) = client.get(key) {
            check_mapping(value, section, &at(key), file)?;
        }
    }
    if let Some(tls) = client.get("oauth2").and_then(|o| o.get("tls_config")) {
        check_mapping(tls, &TLS, &at("oauth2.tls_config"), file)?;
    }
    Ok(())
}

/// Refuses any key of a standalone HTTP client configuration that Pyrite does not implement.
pub(super) fn check_http_client(root: &Value, file: &str) -> Result<(), ConfigError> {
    check_mapping(root, &HTTP_CLIENT, "", file)?;
    check_client_sections(root, "", file)
}
