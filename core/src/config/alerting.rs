//! The `alerting` section: where alerts go (`alertmanagers`, each with its own targets,
//! relabeling and HTTP client settings) and how they are relabeled before they leave.

use std::path::Path;

use serde::Deserialize;

use super::{build_rules, ConfigError, Discovery, Duration, HttpClientConfig, Invalid, RawHttpClient};
use crate::labels::NameValidation;
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
    /// Applied to each discovered Alertmanager (`__address__`, `__scheme__`, `__alerts_path__`).
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

/// Unknown keys are refused by `keys::check` before this (and `flatten` rules out
/// `deny_unknown_fields`).
#[derive(Deserialize)]
struct RawAlertmanager {
    scheme: Option<String>,
    #[serde(default)]
    path_prefix: String,
    timeout: Option<Duration>,
    api_version: Option<String>,
    #[serde(flatten)]
    discovery: Discovery,
    #[serde(default)]
    relabel_configs: Vec<RawRule>,
    #[serde(default)]
    alert_relabel_configs: Vec<RawRule>,
    #[serde(flatten)]
    http: RawHttpClient,
}

impl RawAlerting {
    pub(super) fn validate(
        self,
        dir: &Path,
        names: NameValidation,
        invalid: Invalid,
    ) -> Result<AlertingConfig, ConfigError> {
        let top = |key: &str| format!("alerting.{key}");
        let alert_relabel_configs =
            build_rules(self.alert_relabel_configs, names, "alert_relabel_configs", &top, invalid)?;
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
            let http = am.http.build(dir, &at, invalid)?;
            let mut discovery = am.discovery;
            discovery.validate(dir, &at, invalid)?;
            alertmanagers.push(AlertmanagerConfig {
                scheme,
                // Upstream's `path.Join("/", prefix, …)`: one leading slash, none trailing.
                path_prefix: match am.path_prefix.trim_matches('/') {
                    "" => String::new(),
                    inner => format!("/{inner}"),
                },
                timeout: am.timeout.unwrap_or(Duration::from_secs(10)),
                api_version,
                http,
                discovery,
                relabel_configs: build_rules(am.relabel_configs, names, "relabel_configs", &at, invalid)?,
                alert_relabel_configs: build_rules(
                    am.alert_relabel_configs,
                    names,
                    "alert_relabel_configs",
                    &at,
                    invalid,
                )?,
            });
        }
        Ok(AlertingConfig { alert_relabel_configs, alertmanagers })
    }
}
