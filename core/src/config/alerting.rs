//! The `alerting` section: where alerts go (`alertmanagers`, each with its own targets,
//! relabeling and HTTP client settings) and how they are relabeled before they leave.

use std::path::Path;

use serde::Deserialize;

use super::{
    Authorization, BasicAuth, ConfigError, Discovery, DnsSdConfig, Duration, FileSdConfig, HttpClientConfig,
    HttpSdConfig, Invalid, StaticConfig, TlsConfig,
};
use crate::relabel::{RawRule, Rule};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertingConfig {
    pub alert_relabel_configs: Vec<Rule>,
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

/// One `alertmanagers` entry: a set of Alertmanagers sent the same alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerConfig {
    pub scheme: String,
    pub path_prefix: String,
    pub timeout: Duration,
    pub api_version: String,
    pub http: HttpClientConfig,
    pub discovery: Discovery,
    /// Applied to each discovered Alertmanager (`__address__`, `__scheme__`, `__alertmanager_path__`).
    pub relabel_configs: Vec<Rule>,
    /// Applied to the alerts sent to this set, after the global ones.
    pub alert_relabel_configs: Vec<Rule>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerting {
    #[serde(default)]
    alert_relabel_configs: Vec<RawRule>,
    #[serde(default)]
    alertmanagers: Vec<RawAlertmanager>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertmanager {
    scheme: Option<String>,
    #[serde(default)]
    path_prefix: String,
    timeout: Option<Duration>,
    api_version: Option<String>,
    #[serde(default)]
    static_configs: Vec<StaticConfig>,
    #[serde(default)]
    file_sd_configs: Vec<FileSdConfig>,
    #[serde(default)]
    http_sd_configs: Vec<HttpSdConfig>,
    #[serde(default)]
    dns_sd_configs: Vec<DnsSdConfig>,
    #[serde(default)]
    relabel_configs: Vec<RawRule>,
    #[serde(default)]
    alert_relabel_configs: Vec<RawRule>,
    basic_auth: Option<BasicAuth>,
    authorization: Option<Authorization>,
    follow_redirects: Option<bool>,
    enable_http2: Option<bool>,
    proxy_url: Option<String>,
    #[serde(default)]
    tls_config: TlsConfig,
}

fn rules(
    raw: Vec<RawRule>,
    at: &dyn Fn(&str) -> String,
    key: &str,
    invalid: Invalid,
) -> Result<Vec<Rule>, ConfigError> {
    raw.into_iter().enumerate().map(|(j, r)| r.build().map_err(|m| invalid(at(&format!("{key}[{j}]")), m))).collect()
}

impl RawAlerting {
    pub(super) fn validate(self, dir: &Path, invalid: Invalid) -> Result<AlertingConfig, ConfigError> {
        let top = |key: &str| format!("alerting.{key}");
        let alert_relabel_configs = rules(self.alert_relabel_configs, &top, "alert_relabel_configs", invalid)?;
        let mut alertmanagers = Vec::new();
        for (i, am) in self.alertmanagers.into_iter().enumerate() {
            let at = |key: &str| format!("alerting.alertmanagers[{i}].{key}");
            let scheme = am.scheme.unwrap_or_else(|| "http".into());
            if scheme != "http" && scheme != "https" {
                return Err(invalid(at("scheme"), format!("unknown scheme {scheme:?}, must be http or https")));
            }
            let api_version = am.api_version.unwrap_or_else(|| "v2".into());
            if api_version != "v2" {
                return Err(invalid(
                    at("api_version"),
                    format!("expected Alertmanager api version to be one of [v2] but got {api_version}"),
                ));
            }
            let mut http = HttpClientConfig {
                tls: am.tls_config,
                basic_auth: am.basic_auth,
                authorization: am.authorization,
                proxy_url: am.proxy_url,
                follow_redirects: am.follow_redirects.unwrap_or(true),
                enable_http2: am.enable_http2.unwrap_or(true),
            };
            http.validate().map_err(|(key, message)| invalid(at(key), message))?;
            http.resolve_paths(dir);
            let mut discovery = Discovery {
                static_configs: am.static_configs,
                file_sd_configs: am.file_sd_configs,
                http_sd_configs: am.http_sd_configs,
                dns_sd_configs: am.dns_sd_configs,
            };
            discovery.validate(dir, &at, invalid)?;
            alertmanagers.push(AlertmanagerConfig {
                scheme,
                path_prefix: am.path_prefix.trim_end_matches('/').to_string(),
                timeout: am.timeout.unwrap_or(Duration::from_secs(10)),
                api_version,
                http,
                discovery,
                relabel_configs: rules(am.relabel_configs, &at, "relabel_configs", invalid)?,
                alert_relabel_configs: rules(am.alert_relabel_configs, &at, "alert_relabel_configs", invalid)?,
            });
        }
        Ok(AlertingConfig { alert_relabel_configs, alertmanagers })
    }
}
