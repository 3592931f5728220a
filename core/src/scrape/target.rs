//! Scrape targets and their labels.

use crate::config::{Config, Duration};
use crate::labels::Labels;

/// One endpoint to scrape, with everything the scrape loop needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `host:port`.
    pub address: String,
    pub scheme: String,
    pub metrics_path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub honor_labels: bool,
    /// The `job_name` of the scrape config it comes from.
    pub scrape_pool: String,
    /// The labels every series of this target gets: `job`, `instance` and static labels.
    pub labels: Labels,
    /// The labels service discovery gave it, before relabeling (`__address__`, `__scheme__`,
    /// `__metrics_path__`, `__scrape_interval__`, `__scrape_timeout__`, `job`, static labels).
    pub discovered: Labels,
}

impl Target {
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.address, self.metrics_path)
    }

    pub fn job(&self) -> &str {
        self.labels.get("job")
    }

    pub fn instance(&self) -> &str {
        self.labels.get("instance")
    }
}

/// Every target of every scrape config. Targets whose final labels are identical within a job
/// are kept once, as upstream does.
pub fn targets_from_config(config: &Config) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for sc in &config.scrape_configs {
        for st in &sc.static_configs {
            for address in &st.targets {
                // Static labels first, so that an explicit `job` or `instance` label wins over
                // the defaults only where upstream lets it (static labels override both).
                let mut pairs: Vec<(String, String)> =
                    vec![("job".into(), sc.job_name.clone()), ("instance".into(), address.clone())];
                pairs.extend(st.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                let mut discovered: Vec<(String, String)> = vec![
                    ("__address__".into(), address.clone()),
                    ("__metrics_path__".into(), sc.metrics_path.clone()),
                    ("__scheme__".into(), sc.scheme.clone()),
                    ("__scrape_interval__".into(), sc.scrape_interval.to_string()),
                    ("__scrape_timeout__".into(), sc.scrape_timeout.to_string()),
                    ("job".into(), sc.job_name.clone()),
                ];
                discovered.extend(st.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                let target = Target {
                    address: address.clone(),
                    scheme: sc.scheme.clone(),
                    metrics_path: sc.metrics_path.clone(),
                    interval: sc.scrape_interval,
                    timeout: sc.scrape_timeout,
                    honor_labels: sc.honor_labels,
                    scrape_pool: sc.job_name.clone(),
                    labels: Labels::from_pairs(pairs),
                    discovered: Labels::from_pairs(discovered),
                };
                if !out.iter().any(|t| t.labels == target.labels && t.url() == target.url()) {
                    out.push(target);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_get_job_instance_and_static_labels() {
        let c = Config::parse(
            "scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['a:1', 'b:2', 'a:1']\n        labels: {env: prod}\n",
            "p.yml",
        )
        .unwrap();
        let t = targets_from_config(&c);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].labels.to_string(), r#"{env="prod", instance="a:1", job="node"}"#);
        assert_eq!(t[1].url(), "http://b:2/metrics");
        assert_eq!(t[0].discovered.get("__address__"), "a:1");
        assert_eq!(t[0].discovered.get("__scrape_interval__"), "1m");
        assert_eq!(t[0].scrape_pool, "node");
    }
}
