//! Relabeling: `relabel_configs` on discovered targets and `metric_relabel_configs` on scraped
//! series, with upstream's actions, defaults and regex semantics.
//!
//! A rule's regex is fully anchored (`^(?:regex)$`); `$1`, `${1}`, `$name` and `${name}` in
//! `target_label` and `replacement` expand as Go's `Regexp.Expand` does ([`crate::re2::expand`]:
//! the longest name wins, `$1x` is the group named `1x`). A rule list either rewrites a
//! label set or drops it (`keep`, `drop`, `keepequal`, `dropequal`).

use std::collections::BTreeMap;

use regex::Regex;
use serde::Deserialize;

use crate::labels::{Labels, NameValidation};

/// The relabeling actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

/// One rule as written in the configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    #[serde(default)]
    pub source_labels: Vec<String>,
    #[serde(default, deserialize_with = "crate::config::scalar::optional")]
    pub separator: Option<String>,
    #[serde(default, deserialize_with = "crate::config::scalar::optional")]
    pub target_label: Option<String>,
    #[serde(default, deserialize_with = "crate::config::scalar::optional")]
    pub regex: Option<String>,
    pub modulus: Option<u64>,
    #[serde(default, deserialize_with = "crate::config::scalar::optional")]
    pub replacement: Option<String>,
    pub action: Option<Action>,
}

/// A validated rule, regex compiled.
#[derive(Debug, Clone)]
pub struct Rule {
    source_labels: Vec<String>,
    separator: String,
    target_label: String,
    regex: Regex,
    /// The regex as written, for rendering the configuration back.
    regex_text: String,
    modulus: u64,
    replacement: String,
    action: Action,
    /// The label names it may make (its config's `metric_name_validation_scheme`).
    names: NameValidation,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.source_labels == other.source_labels
            && self.separator == other.separator
            && self.target_label == other.target_label
            && self.regex_text == other.regex_text
            && self.modulus == other.modulus
            && self.replacement == other.replacement
            && self.action == other.action
            && self.names == other.names
    }
}

/// Upstream's check of a `replace` target: label name characters and `$` references.
fn is_valid_replace_target(s: &str) -> bool {
    static TARGET: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    TARGET
        .get_or_init(|| Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$").expect("a valid pattern"))
        .is_match(s)
}

impl RawRule {
    /// Validates the rule as upstream does, for a config whose names are `names`; the error
    /// says what is wrong.
    pub fn build(self, names: NameValidation) -> Result<Rule, String> {
        let action = self.action.unwrap_or(Action::Replace);
        let name = action.name();
        let regex_text = self.regex.clone().unwrap_or_else(|| "(.*)".to_string());
        // As upstream's `NewRegexp`: anchored, `.` matching newlines, RE2's ASCII classes.
        let regex = crate::re2::anchored(&regex_text).map_err(|e| format!("invalid regex {regex_text:?}: {e}"))?;
        let target = self.target_label.clone().unwrap_or_default();
        let needs_target = matches!(
            action,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        if needs_target && target.is_empty() {
            return Err(format!("relabel configuration for {name} action requires 'target_label' value"));
        }
        // Under `legacy`, a name with `$1` or `${name}` in it must make a legacy name; under
        // `utf8` any name that is not empty may.
        let makes_names = |made: &str| match names {
            NameValidation::Legacy => is_valid_replace_target(made),
            NameValidation::Utf8 => names.label_name(made),
        };
        if action == Action::Replace && !makes_names(&target) {
            return Err(format!("{target:?} is invalid 'target_label' for {name} action"));
        }
        let replacement = self.replacement.as_deref().unwrap_or("$1");
        if action == Action::LabelMap && !makes_names(replacement) {
            return Err(format!("{replacement:?} is invalid 'replacement' for {name} action"));
        }
        if matches!(
            action,
            Action::Lowercase | Action::Uppercase | Action::KeepEqual | Action::DropEqual | Action::HashMod
        ) && !names.label_name(&target)
        {
            return Err(format!("{target:?} is invalid 'target_label' for {name} action"));
        }
        // As upstream, fields written out with their default values count as not set.
        let custom_separator = self.separator.as_deref().is_some_and(|s| s != ";");
        let custom_replacement = self.replacement.as_deref().is_some_and(|r| r != "$1");
        let custom_modulus = self.modulus.is_some_and(|m| m != 0);
        if matches!(action, Action::Lowercase | Action::Uppercase | Action::KeepEqual | Action::DropEqual)
            && custom_replacement
        {
            return Err(format!("'replacement' can not be set for {name} action"));
        }
        if matches!(action, Action::KeepEqual | Action::DropEqual)
            && (regex_text != "(.*)" || custom_modulus || custom_separator)
        {
            return Err(format!("{name} action requires only 'source_labels' and `target_label`, and no other fields"));
        }
        if action == Action::HashMod && self.modulus.unwrap_or(0) == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".to_string());
        }
        if matches!(action, Action::LabelDrop | Action::LabelKeep)
            && (!self.source_labels.is_empty()
                || !target.is_empty()
                || custom_modulus
                || custom_separator
                || custom_replacement)
        {
            return Err(format!("{name} action requires only 'regex', and no other fields"));
        }
        Ok(Rule {
            source_labels: self.source_labels,
            separator: self.separator.unwrap_or_else(|| ";".to_string()),
            target_label: target,
            regex,
            regex_text,
            modulus: self.modulus.unwrap_or(0),
            replacement: self.replacement.unwrap_or_else(|| "$1".to_string()),
            action,
            names,
        })
    }
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

impl Rule {
    /// The rule with its defaults written out, as upstream renders it in `/api/v1/status/config`.
    pub fn to_yaml(&self) -> serde_norway::Value {
        let mut m = serde_norway::Mapping::new();
        let mut put = |k: &str, v: serde_norway::Value| {
            m.insert(k.into(), v);
        };
        if !self.source_labels.is_empty() {
            put("source_labels", self.source_labels.iter().map(|s| serde_norway::Value::from(s.as_str())).collect());
        }
        put("separator", self.separator.as_str().into());
        if !self.target_label.is_empty() {
            put("target_label", self.target_label.as_str().into());
        }
        put("regex", self.regex_text.as_str().into());
        if self.modulus != 0 {
            put("modulus", self.modulus.into());
        }
        put("replacement", self.replacement.as_str().into());
        put("action", self.action.name().into());
        serde_norway::Value::Mapping(m)
    }
}

/// The upper 64 bits of the MD5 of `s`, as upstream's `hashmod` takes them.
fn hashmod(s: &str, modulus: u64) -> u64 {
    let digest = md5::compute(s.as_bytes());
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&digest.0[8..]);
    u64::from_be_bytes(tail) % modulus
}

impl Rule {
    /// Applies the rule to `labels` (name -> value); false if the set is dropped.
    fn apply(&self, labels: &mut BTreeMap<String, String>) -> bool {
        let value = || {
            let values: Vec<&str> =
                self.source_labels.iter().map(|n| labels.get(n).map_or("", String::as_str)).collect();
            values.join(&self.separator)
        };
        let set = |labels: &mut BTreeMap<String, String>, name: String, v: String| {
            if v.is_empty() {
                labels.remove(&name);
            } else {
                labels.insert(name, v);
            }
        };
        match self.action {
            Action::Keep => return self.regex.is_match(&value()),
            Action::Drop => return !self.regex.is_match(&value()),
            Action::KeepEqual => return labels.get(&self.target_label).map_or("", String::as_str) == value(),
            Action::DropEqual => return labels.get(&self.target_label).map_or("", String::as_str) != value(),
            Action::Replace => {
                let v = value();
                let Some(caps) = self.regex.captures(&v) else { return true };
                let mut target = String::new();
                crate::re2::expand(&caps, &self.target_label, &mut target);
                if !self.names.label_name(&target) {
                    return true;
                }
                let mut out = String::new();
                crate::re2::expand(&caps, &self.replacement, &mut out);
                set(labels, target, out);
            }
            Action::Lowercase => set(labels, self.target_label.clone(), value().to_lowercase()),
            Action::Uppercase => set(labels, self.target_label.clone(), value().to_uppercase()),
            Action::HashMod => set(labels, self.target_label.clone(), hashmod(&value(), self.modulus).to_string()),
            Action::LabelMap => {
                let mapped: Vec<(String, String)> = labels
                    .iter()
                    .filter(|(name, _)| self.regex.is_match(name))
                    .map(|(name, v)| (crate::re2::replace_all(&self.regex, name, &self.replacement), v.clone()))
                    .collect();
                for (name, v) in mapped {
                    labels.insert(name, v);
                }
            }
            Action::LabelDrop => labels.retain(|name, _| !self.regex.is_match(name)),
            Action::LabelKeep => labels.retain(|name, _| self.regex.is_match(name)),
        }
        true
    }
}

/// Applies `rules` in order to `labels`; None if a rule dropped the set.
pub fn relabel(rules: &[Rule], labels: &Labels) -> Option<Labels> {
    if rules.is_empty() {
        return Some(labels.clone());
    }
    let mut map: BTreeMap<String, String> = labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
    for rule in rules {
        if !rule.apply(&mut map) {
            return None;
        }
    }
    Some(Labels::from_pairs(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> Rule {
        serde_norway::from_str::<RawRule>(yaml).unwrap().build(NameValidation::Legacy).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn replace_expands_groups_and_anchors_the_regex() {
        let r = rule("source_labels: [__address__]\nregex: '(.*):\\d+'\ntarget_label: host\nreplacement: 'h-$1'");
        let out = relabel(std::slice::from_ref(&r), &labels(&[("__address__", "web:80")])).unwrap();
        assert_eq!(out.get("host"), "h-web");
        // Anchored: a partial match does nothing.
        let r2 = rule("source_labels: [a]\nregex: 'b'\ntarget_label: c");
        assert_eq!(relabel(&[r2], &labels(&[("a", "abc")])).unwrap().get("c"), "");
        // `${1}x` is group 1 then x; `$2y` is the (missing) group named 2y, as in Go.
        let r3 = rule("source_labels: [a]\nregex: '(.)(.)'\ntarget_label: c\nreplacement: '${1}x${2}y'");
        assert_eq!(relabel(&[r3], &labels(&[("a", "pq")])).unwrap().get("c"), "pxqy");
        let r3 = rule("source_labels: [a]\nregex: '(.)(.)'\ntarget_label: c\nreplacement: '${1}x$2y'");
        assert_eq!(relabel(&[r3], &labels(&[("a", "pq")])).unwrap().get("c"), "px");
        let r4 = rule("source_labels: [a]\nregex: '(.)'\ntarget_label: c\nreplacement: '$1x'");
        assert_eq!(relabel(&[r4], &labels(&[("a", "p"), ("c", "old")])).unwrap().get("c"), "", "empty deletes");
    }

    #[test]
    fn regexes_read_as_upstream_reads_them() {
        // `.` matches a newline (upstream's `^(?s:…)$`), and `\d` is ASCII only (RE2).
        let keep = rule("source_labels: [a]\nregex: 'x.*'\naction: keep");
        assert!(relabel(&[keep], &labels(&[("a", "x\ny")])).is_some());
        let digits = rule("source_labels: [a]\nregex: '\\d+'\naction: keep");
        assert!(relabel(std::slice::from_ref(&digits), &labels(&[("a", "42")])).is_some());
        assert!(relabel(&[digits], &labels(&[("a", "\u{0664}\u{0662}")])).is_none());
    }

    #[test]
    fn keep_drop_and_equality_actions_filter() {
        let keep = rule("source_labels: [job]\nregex: 'node|app'\naction: keep");
        assert!(relabel(std::slice::from_ref(&keep), &labels(&[("job", "app")])).is_some());
        assert!(relabel(&[keep], &labels(&[("job", "db")])).is_none());
        let drop = rule("source_labels: [a, b]\nseparator: '-'\nregex: '1-2'\naction: drop");
        assert!(relabel(&[drop], &labels(&[("a", "1"), ("b", "2")])).is_none());
        let eq = rule("source_labels: [a]\ntarget_label: b\naction: keepequal");
        assert!(relabel(std::slice::from_ref(&eq), &labels(&[("a", "1"), ("b", "1")])).is_some());
        assert!(relabel(&[eq], &labels(&[("a", "1"), ("b", "2")])).is_none());
        let neq = rule("source_labels: [a]\ntarget_label: b\naction: dropequal");
        assert!(relabel(&[neq], &labels(&[("a", "1"), ("b", "1")])).is_none());
    }

    #[test]
    fn label_actions_case_and_hashmod() {
        let map = rule("regex: '__meta_(.+)'\naction: labelmap");
        let out = relabel(&[map], &labels(&[("__meta_zone", "eu"), ("x", "1")])).unwrap();
        assert_eq!(out.get("zone"), "eu");
        let dropped = relabel(&[rule("regex: '__meta_.*'\naction: labeldrop")], &out).unwrap();
        assert_eq!(dropped.to_string(), r#"{x="1", zone="eu"}"#);
        let kept = relabel(&[rule("regex: 'x'\naction: labelkeep")], &out).unwrap();
        assert_eq!(kept.to_string(), r#"{x="1"}"#);
        let up = rule("source_labels: [x]\ntarget_label: y\naction: uppercase");
        assert_eq!(relabel(&[up], &labels(&[("x", "aBc")])).unwrap().get("y"), "ABC");
        // Upstream's own test case: "baz" modulo 1000 is 976 (MD5's lower 8 bytes, big-endian).
        let hm = rule("source_labels: [a]\ntarget_label: shard\nmodulus: 1000\naction: hashmod");
        assert_eq!(relabel(&[hm], &labels(&[("a", "baz")])).unwrap().get("shard"), "976");
    }

    #[test]
    fn invalid_rules_are_refused_with_upstreams_reasons() {
        let err =
            |yaml: &str| serde_norway::from_str::<RawRule>(yaml).unwrap().build(NameValidation::Legacy).unwrap_err();
        assert!(err("action: replace\nregex: a").contains("requires 'target_label'"));
        assert!(err("regex: '('\ntarget_label: a").contains("invalid regex"));
        assert!(err("action: hashmod\ntarget_label: a").contains("non-zero modulus"));
        assert!(err("action: labeldrop\nregex: a\ntarget_label: b").contains("requires only 'regex'"));
        assert!(err("action: lowercase\ntarget_label: '1a'").contains("invalid 'target_label'"));
        assert!(err("source_labels: [a]\ntarget_label: 'service.name'").contains("invalid 'target_label'"));
        assert!(err("action: labelmap\nregex: 'a_(.*)'\nreplacement: ''").contains("invalid 'replacement'"));
        assert_eq!(
            err("action: uppercase\nsource_labels: [a]\ntarget_label: b\nreplacement: x"),
            "'replacement' can not be set for uppercase action"
        );
        assert!(err("action: labelmap\nregex: 'a_(.*)'\nreplacement: 'x.$1'").contains("invalid 'replacement'"));
        assert!(serde_norway::from_str::<RawRule>("action: explode").is_err());
    }

    #[test]
    fn under_utf8_names_a_rule_makes_any_label_name() {
        let rule = |yaml: &str| serde_norway::from_str::<RawRule>(yaml).unwrap().build(NameValidation::Utf8);
        let dotted = rule("source_labels: [a]\ntarget_label: 'service.name'").unwrap();
        assert_eq!(relabel(&[dotted], &labels(&[("a", "x")])).unwrap().get("service.name"), "x");
        let expanded = rule("source_labels: [a]\nregex: '(.*)'\ntarget_label: 'k8s.$1'").unwrap();
        assert_eq!(relabel(&[expanded], &labels(&[("a", "pod")])).unwrap().get("k8s.pod"), "pod");
        assert!(rule("action: lowercase\ntarget_label: '1a'").is_ok());
        assert!(rule("action: labelmap\nregex: 'a_(.*)'\nreplacement: 'x.$1'").is_ok());
        assert!(rule("action: labelmap\nregex: 'a_(.*)'\nreplacement: ''").is_err());
    }
}
