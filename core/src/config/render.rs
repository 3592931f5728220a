//! The effective configuration as YAML, defaults filled in, in upstream's key order: what
//! `/api/v1/status/config` shows, so an operator sees what the server actually runs.

use serde_yaml::{Mapping, Value};

use super::{Config, ScrapeConfig, StaticConfig};
use crate::labels::Labels;

fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Mapping(pairs.into_iter().map(|(k, v)| (Value::from(k), v)).collect::<Mapping>())
}

fn labels(l: &Labels) -> Value {
    Value::Mapping(l.iter().map(|l| (Value::from(l.name.as_str()), Value::from(l.value.as_str()))).collect())
}

fn scrape_config(sc: &ScrapeConfig) -> Value {
    map([
        ("job_name", sc.job_name.as_str().into()),
        ("honor_labels", sc.honor_labels.into()),
        ("scrape_interval", sc.scrape_interval.to_string().into()),
        ("scrape_timeout", sc.scrape_timeout.to_string().into()),
        ("metrics_path", sc.metrics_path.as_str().into()),
        ("scheme", sc.scheme.as_str().into()),
        ("static_configs", Value::Sequence(sc.static_configs.iter().map(static_config).collect())),
    ])
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
        ]);
        if !g.external_labels.is_empty() {
            if let Value::Mapping(m) = &mut global {
                m.insert("external_labels".into(), labels(&g.external_labels));
            }
        }
        let mut root = map([("global", global)]);
        if !self.scrape_configs.is_empty() {
            if let Value::Mapping(m) = &mut root {
                let configs = self.scrape_configs.iter().map(scrape_config).collect();
                m.insert("scrape_configs".into(), Value::Sequence(configs));
            }
        }
        serde_yaml::to_string(&root).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_fills_defaults_and_parses_back_to_the_same_config() {
        let text = "global:\n  scrape_interval: 15s\n  external_labels: {dc: eu}\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['a:1']\n        labels: {env: prod}\n";
        let config = Config::parse(text, "p.yml").unwrap();
        let yaml = config.to_yaml();
        assert!(yaml.contains("scrape_timeout: 10s"), "{yaml}");
        assert!(yaml.contains("metrics_path: /metrics"), "{yaml}");
        assert_eq!(Config::parse(&yaml, "rendered").unwrap(), config);
    }
}
