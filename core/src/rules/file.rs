//! Rule files: recording and alerting rule groups as upstream's `rulefmt` reads and checks
//! them, templates included.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use thiserror::Error;

use super::template;
use crate::config::{yaml, Duration};
use crate::labels::{is_valid_label_name, is_valid_metric_name};
use crate::promql::{parse_with, ParseOptions};

/// A rule file that cannot be used: the file, and where in it, and why.
#[derive(Debug, Error, PartialEq)]
pub enum RuleFileError {
    #[error("{file}: {message}")]
    Yaml { file: String, message: String },
    #[error("{file}: {message}")]
    Group { file: String, message: String },
    /// Upstream's wording: `group "g", rule 2, "name": reason`.
    #[error("{file}: group {group:?}, rule {index}, {name:?}: {message}")]
    Rule { file: String, group: String, index: usize, name: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub groups: Vec<RuleGroup>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    pub name: String,
    pub interval: Option<Duration>,
    /// Series or alerts a rule may produce; 0 or less for no limit, as upstream.
    #[serde(default)]
    pub limit: i64,
    pub query_offset: Option<Duration>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub record: Option<String>,
    pub alert: Option<String>,
    #[serde(default)]
    pub expr: String,
    #[serde(rename = "for")]
    pub for_: Option<Duration>,
    pub keep_firing_for: Option<Duration>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Rule {
    pub fn is_alerting(&self) -> bool {
        self.alert.is_some()
    }

    /// The record or alert name.
    pub fn name(&self) -> &str {
        self.record.as_deref().or(self.alert.as_deref()).unwrap_or("")
    }

    /// Upstream's checks of one rule; the reason if it fails.
    fn check(&self, options: ParseOptions) -> Result<(), String> {
        match (&self.record, &self.alert) {
            (Some(_), Some(_)) => return Err("only one of 'record' and 'alert' must be set".into()),
            (None, None) => return Err("one of 'record' or 'alert' must be set".into()),
            _ => {}
        }
        if self.expr.trim().is_empty() {
            return Err("field 'expr' must be set in rule".into());
        }
        parse_with(&self.expr, options).map_err(|e| format!("could not parse expression: {e}"))?;
        if let Some(record) = &self.record {
            if !self.annotations.is_empty() {
                return Err("invalid field 'annotations' in recording rule".into());
            }
            if self.for_.is_some() {
                return Err("invalid field 'for' in recording rule".into());
            }
            if self.keep_firing_for.is_some() {
                return Err("invalid field 'keep_firing_for' in recording rule".into());
            }
            if !is_valid_metric_name(record) {
                return Err(format!("invalid recording rule name: {record}"));
            }
        }
        if let Some(bad) = self.labels.keys().find(|k| !is_valid_label_name(k) || *k == "__name__") {
            return Err(format!("invalid label name: {bad}"));
        }
        if let Some(bad) = self.annotations.keys().find(|k| !is_valid_label_name(k)) {
            return Err(format!("invalid annotation name: {bad}"));
        }
        if let Some(alert) = &self.alert {
            let name = format!("__alert_{alert}");
            for (kind, map) in [("label", &self.labels), ("annotation", &self.annotations)] {
                for (key, text) in map {
                    template::check(&name, text).map_err(|e| format!("{kind} {key:?}: {e}"))?;
                }
            }
        }
        Ok(())
    }
}

impl RuleFile {
    /// Parses and checks a rule file; `file` names it in errors.
    pub fn parse(text: &str, file: &str, options: ParseOptions) -> Result<RuleFile, RuleFileError> {
        let parsed: RuleFile = if text.trim().is_empty() {
            RuleFile { groups: Vec::new() }
        } else {
            yaml::from_str(text).map_err(|e| RuleFileError::Yaml { file: file.into(), message: e.to_string() })?
        };
        // Sets, not scans: a file of 200,000 rules took minutes to check pair by pair.
        let mut names: HashSet<&str> = HashSet::new();
        for group in &parsed.groups {
            let group_error = |message: String| RuleFileError::Group { file: file.into(), message };
            if group.name.is_empty() {
                return Err(group_error("Groupname must not be empty".into()));
            }
            if !names.insert(&group.name) {
                return Err(group_error(format!("groupname: {:?} is repeated in the same file", group.name)));
            }
            if let Some(bad) = group.labels.keys().find(|k| !is_valid_label_name(k) || *k == "__name__") {
                return Err(group_error(format!("group {:?}: invalid label name: {bad}", group.name)));
            }
            let mut firsts: HashMap<(&str, &BTreeMap<String, String>), usize> = HashMap::new();
            for (i, rule) in group.rules.iter().enumerate() {
                let duplicate = match firsts.entry((rule.name(), &rule.labels)) {
                    Entry::Occupied(first) => Some(*first.get()),
                    Entry::Vacant(slot) => {
                        slot.insert(i);
                        None
                    }
                };
                let checked = match duplicate {
                    // Two rules writing (or alerting on) the same series cannot both be right.
                    Some(first) => Err(format!("duplicate rule: same name and labels as rule {}", first + 1)),
                    None => rule.check(options),
                };
                checked.map_err(|message| RuleFileError::Rule {
                    file: file.into(),
                    group: group.name.clone(),
                    index: i + 1,
                    name: rule.name().to_string(),
                    message,
                })?;
            }
        }
        Ok(parsed)
    }

    /// The file with keys upstream does not know removed from groups and rules (promtool's
    /// `--ignore-unknown-fields`); unchanged if it is not YAML.
    pub fn without_unknown_fields(text: &str) -> String {
        const GROUP_KEYS: [&str; 6] = ["name", "interval", "limit", "query_offset", "labels", "rules"];
        const RULE_KEYS: [&str; 7] = ["record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"];
        let Ok(mut doc) = yaml::from_str::<serde_norway::Value>(text) else { return text.to_string() };
        let keep = |map: &mut serde_norway::Mapping, known: &[&str]| {
            map.retain(|k, _| k.as_str().is_some_and(|k| known.contains(&k)));
        };
        if let Some(groups) = doc.get_mut("groups").and_then(|g| g.as_sequence_mut()) {
            for group in groups.iter_mut().filter_map(|g| g.as_mapping_mut()) {
                keep(group, &GROUP_KEYS);
                if let Some(rules) = group.get_mut("rules").and_then(|r| r.as_sequence_mut()) {
                    rules.iter_mut().filter_map(|r| r.as_mapping_mut()).for_each(|r| keep(r, &RULE_KEYS));
                }
            }
        }
        serde_norway::to_string(&doc).unwrap_or_else(|_| text.to_string())
    }

    pub fn rule_count(&self) -> usize {
        self.groups.iter().map(|g| g.rules.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<RuleFile, String> {
        RuleFile::parse(text, "r.yml", ParseOptions::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_typical_file_parses() {
        let text = "groups:\n  - name: api\n    interval: 30s\n    rules:\n      - record: job:http_requests:rate5m\n        expr: sum by (job) (rate(http_requests_total[5m]))\n      - alert: HighErrorRate\n        expr: job:http_errors:ratio > 0.05\n        for: 10m\n        labels: {severity: page}\n        annotations: {summary: 'Error rate {{ $value | humanizePercentage }}'}\n";
        let file = check(text).unwrap();
        assert_eq!(file.rule_count(), 2);
        assert_eq!(file.groups[0].rules[1].for_, Some(Duration::from_secs(600)));
    }

    #[test]
    fn bad_rules_are_refused_with_upstreams_reasons() {
        let rule = |body: &str| check(&format!("groups:\n  - name: g\n    rules:\n      - {body}\n")).unwrap_err();
        assert_eq!(
            rule("{record: 'a:b', expr: 'sum('}").split(": could not parse").next(),
            Some(r#"r.yml: group "g", rule 1, "a:b""#)
        );
        assert!(rule("{alert: A, record: b, expr: up}").contains("only one of 'record' and 'alert'"));
        assert!(rule("{expr: up}").contains("one of 'record' or 'alert' must be set"));
        assert!(rule("{alert: A}").contains("field 'expr' must be set"));
        assert!(rule("{record: 'bad name', expr: up}").contains("invalid recording rule name"));
        assert!(rule("{record: a, expr: up, for: 1m}").contains("invalid field 'for'"));
        assert!(rule("{alert: A, expr: up, labels: {'1x': y}}").contains("invalid label name: 1x"));
        assert!(rule("{alert: A, expr: up, unknown: 1}").contains("unknown field"));
        let template = rule("{alert: A, expr: up, annotations: {summary: '{{ $value | humanise }}'}}");
        assert!(
            template
                .contains(r#"annotation "summary": error parsing template __alert_A: function "humanise" not defined"#),
            "{template}"
        );
        let twice = check(
            "groups:\n  - name: g\n    rules:\n      - {record: a, expr: up}\n      - {record: a, expr: up * 2}\n",
        );
        assert_eq!(
            twice.unwrap_err(),
            r#"r.yml: group "g", rule 2, "a": duplicate rule: same name and labels as rule 1"#
        );
        let severities = "groups:\n  - name: g\n    rules:\n      - {alert: A, expr: up > 1, labels: {severity: warn}}\n      - {alert: A, expr: up > 2, labels: {severity: page}}\n";
        assert!(check(severities).is_ok(), "the same alert at two severities is a common, valid pattern");
        let repeated = check("groups:\n  - {name: g, rules: []}\n  - {name: g, rules: []}\n").unwrap_err();
        assert_eq!(repeated, r#"r.yml: groupname: "g" is repeated in the same file"#);
        assert!(check("groups: [").unwrap_err().starts_with("r.yml: "));
    }
}
