//! Rule files: recording and alerting rule groups as upstream's `rulefmt` reads and checks
//! them, templates included.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use thiserror::Error;

use super::template;
use crate::config::{scalar, yaml, Duration};
use crate::labels::NameValidation;
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
    #[serde(default, deserialize_with = "scalar::or_default")]
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
    #[serde(default, deserialize_with = "scalar::or_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "scalar::or_default")]
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
    #[serde(default, deserialize_with = "scalar::or_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "scalar::or_default")]
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

    /// Upstream's checks of one rule, its names judged by `names`; the reason if it fails.
    fn check(&self, options: ParseOptions, names: NameValidation) -> Result<(), String> {
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
            if !names.metric_name(record) {
                return Err(format!("invalid recording rule name: {record}"));
            }
            // A valid UTF-8 name, but most likely an expression written in the wrong field.
            if record.contains(['{', '}']) {
                return Err(format!("braces present in the recording rule name; should it be in expr?: {record}"));
            }
        }
        if let Some(bad) = invalid_label_name(&self.labels, names) {
            return Err(format!("invalid label name: {bad}"));
        }
        if let Some(bad) = self.annotations.keys().find(|k| !names.label_name(k)) {
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
    /// Parses and checks a rule file; `file` names it in errors. Record names, label and
    /// annotation names are judged by `names`: the configuration's global scheme in the server,
    /// `utf8` in promtool's commands, as upstream.
    pub fn parse(
        text: &str,
        file: &str,
        options: ParseOptions,
        names: NameValidation,
    ) -> Result<RuleFile, RuleFileError> {
        let parsed: RuleFile = if text.trim().is_empty() {
            RuleFile { groups: Vec::new() }
        } else {
            yaml::from_str(text).map_err(|e| RuleFileError::Yaml { file: file.into(), message: e.to_string() })?
        };
        let mut group_names: HashSet<&str> = HashSet::new();
        for group in &parsed.groups {
            let group_error = |message: String| RuleFileError::Group { file: file.into(), message };
            if group.name.is_empty() {
                return Err(group_error("Groupname must not be empty".into()));
            }
            if !group_names.insert(&group.name) {
                return Err(group_error(format!("groupname: {:?} is repeated in the same file", group.name)));
            }
            if let Some(bad) = invalid_label_name(&group.labels, names) {
                return Err(group_error(format!("group {:?}: invalid label name: {bad}", group.name)));
            }
            for (i, rule) in group.rules.iter().enumerate() {
                rule.check(options, names).map_err(|message| RuleFileError::Rule {
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

    /// The rules, across groups, that share their name and labels (the group's merged with
    /// the rule's) with another, each once, sorted: promtool's `duplicate-rules` lint. The
    /// server loads them, as upstream does: the second to write a sample at a timestamp is
    /// refused as a duplicate.
    pub fn duplicates(&self) -> Vec<(&str, BTreeMap<&str, &str>)> {
        let mut all: Vec<(&str, BTreeMap<&str, &str>)> = self
            .groups
            .iter()
            .flat_map(|g| g.rules.iter().map(move |r| (g, r)))
            .map(|(g, r)| {
                let labels = g.labels.iter().chain(&r.labels).map(|(k, v)| (k.as_str(), v.as_str())).collect();
                (r.name(), labels)
            })
            .collect();
        all.sort();
        let mut duplicates: Vec<(&str, BTreeMap<&str, &str>)> = Vec::new();
        for pair in all.windows(2) {
            if pair[0] == pair[1] && duplicates.last() != Some(&pair[1]) {
                duplicates.push(pair[1].clone());
            }
        }
        duplicates
    }

    pub fn rule_count(&self) -> usize {
        self.groups.iter().map(|g| g.rules.len()).sum()
    }
}

/// The first of `labels`' names that `names` refuses, or that is `__name__` (a rule's labels
/// cannot rename what it writes).
fn invalid_label_name(labels: &BTreeMap<String, String>, names: NameValidation) -> Option<&String> {
    labels.keys().find(|k| !names.label_name(k) || *k == "__name__")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<RuleFile, String> {
        check_under(text, NameValidation::Utf8)
    }

    fn check_under(text: &str, names: NameValidation) -> Result<RuleFile, String> {
        RuleFile::parse(text, "r.yml", ParseOptions::default(), names).map_err(|e| e.to_string())
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
        assert!(rule("{record: 'a{b=\"c\"}', expr: up}").contains("braces present in the recording rule name"));
        assert!(rule("{record: a, expr: up, for: 1m}").contains("invalid field 'for'"));
        assert!(rule("{alert: A, expr: up, labels: {__name__: y}}").contains("invalid label name: __name__"));
        assert!(rule("{alert: A, expr: up, unknown: 1}").contains("unknown field"));
        let template = rule("{alert: A, expr: up, annotations: {summary: '{{ $value | humanise }}'}}");
        assert!(
            template
                .contains(r#"annotation "summary": error parsing template __alert_A: function "humanise" not defined"#),
            "{template}"
        );
        let repeated = check("groups:\n  - {name: g, rules: []}\n  - {name: g, rules: []}\n").unwrap_err();
        assert_eq!(repeated, r#"r.yml: groupname: "g" is repeated in the same file"#);
        assert!(check("groups: [").unwrap_err().starts_with("r.yml: "));
    }

    #[test]
    fn names_are_judged_by_the_scheme_given() {
        let file =
            |body: &str| format!("groups:\n  - name: g\n    labels: {{'team.name': a}}\n    rules:\n      - {body}\n");
        let dotted = file("{record: 'job:http.requests:rate5m', expr: up, labels: {'1x': y}}");
        assert!(check(&dotted).is_ok(), "utf8, upstream 3.x's default, takes any name");
        let legacy = check_under(&dotted, NameValidation::Legacy).unwrap_err();
        assert!(legacy.contains("group \"g\": invalid label name: team.name"), "{legacy}");
        let legacy = |body: &str| {
            check_under(&format!("groups:\n  - name: g\n    rules:\n      - {body}\n"), NameValidation::Legacy)
        };
        assert!(legacy("{record: 'a.b', expr: up}").unwrap_err().contains("invalid recording rule name: a.b"));
        assert!(legacy("{record: a, expr: up, labels: {'1x': y}}").unwrap_err().contains("invalid label name: 1x"));
        let annotation = legacy("{alert: A, expr: up, annotations: {'a-b': y}}").unwrap_err();
        assert!(annotation.contains("invalid annotation name: a-b"), "{annotation}");
        assert!(legacy("{record: 'a:b_c', expr: up, labels: {x: y}}").is_ok());
    }

    /// As Go's YAML leaves a field it reads null from empty.
    #[test]
    fn null_lists_and_maps_are_empty() {
        assert_eq!(check("groups:\n").unwrap().groups.len(), 0);
        let file = check("groups:\n  - name: g\n    rules:\n  - name: h\n    labels:\n    rules:\n      - {alert: A, expr: up, labels: null, annotations: null}\n").unwrap();
        assert_eq!(file.rule_count(), 1);
    }

    #[test]
    fn duplicates_are_found_across_groups_with_merged_labels() {
        let text = "groups:\n  - name: g\n    labels: {team: a}\n    rules:\n      - {record: r, expr: up}\n      - {record: r, expr: up * 2}\n      - {record: r, expr: up * 3}\n      - {alert: A, expr: up > 1, labels: {severity: warn}}\n  - name: h\n    rules:\n      - {record: r, expr: up, labels: {team: a}}\n      - {alert: A, expr: up > 2, labels: {severity: page}}\n";
        let file = check(text).expect("the server loads duplicates, as upstream");
        let team_a = BTreeMap::from([("team", "a")]);
        assert_eq!(file.duplicates(), vec![("r", team_a)], "each duplicate once; other severities differ");
    }
}
