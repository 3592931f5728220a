//! Service discovery's common currency: target groups, and the file and HTTP formats that
//! carry them (`file_sd_configs` files, `http_sd_configs` answers), parsed and checked as
//! upstream does. Fetching and watching is the daemon's; this is the sans-I/O part.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::labels::NameValidation;

/// Targets sharing labels, from one source (a file, a URL, a DNS name).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Where the group came from; not part of the formats.
    #[serde(skip)]
    pub source: String,
}

/// The most bytes the targets of one file or answer may take once each has its group's labels,
/// with the groups themselves (64 MiB): a group's labels are copied into each of its targets,
/// so a few megabytes of labels on a group of a million targets would otherwise ask for
/// terabytes, and an answer of `{}`s is millions of groups.
pub const MAX_TARGET_LABEL_BYTES: usize = 64 << 20;

/// The groups of a `file_sd_configs` file (`.json`, `.yml` or `.yaml`), or of an
/// `http_sd_configs` answer (JSON), each tagged with `source`.
pub fn parse_groups(text: &str, json: bool, source: &str) -> Result<Vec<TargetGroup>, String> {
    let mut groups: Vec<TargetGroup> = if json {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        crate::config::yaml::from_str(text).map_err(|e| e.to_string())?
    };
    for (i, g) in groups.iter_mut().enumerate() {
        // A `model.LabelSet`'s names, which upstream 3.x takes as `utf8`.
        if let Some(bad) = g.labels.keys().find(|n| !NameValidation::Utf8.label_name(n)) {
            return Err(format!("group {i}: invalid label name {bad:?}"));
        }
        if let Some(empty) = g.targets.iter().position(String::is_empty) {
            return Err(format!("group {i}: target {empty} is empty"));
        }
        g.source = format!("{source}:{i}");
    }
    let bytes = groups.iter().fold(0usize, |total, g| {
        let labels = g.labels.iter().fold(0usize, |n, (k, v)| n.saturating_add(k.len()).saturating_add(v.len()));
        let targets = g.targets.iter().fold(0usize, |n, t| n.saturating_add(t.len()));
        let group = size_of::<TargetGroup>() + g.source.len();
        total.saturating_add(group).saturating_add(targets).saturating_add(labels.saturating_mul(g.targets.len()))
    });
    if bytes > MAX_TARGET_LABEL_BYTES {
        return Err(format!(
            "the targets with their groups' labels would take more than {MAX_TARGET_LABEL_BYTES} bytes"
        ));
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_parse_in_both_formats_and_bad_groups_are_refused() {
        let yaml = "- targets: ['a:1', 'b:2']\n  labels: {env: prod}\n- targets: ['c:3']\n";
        let g = parse_groups(yaml, false, "f.yml").unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].labels["env"], "prod");
        assert_eq!(g[1].source, "f.yml:1");
        let json = r#"[{"targets": ["a:1"], "labels": {"zone": "eu"}}]"#;
        assert_eq!(parse_groups(json, true, "f.json").unwrap()[0].targets, vec!["a:1"]);
        // Names as upstream 3.x's `model.LabelSet` takes them: any but the empty one.
        assert_eq!(
            parse_groups("- targets: [a]\n  labels: {'service.name': y}\n", false, "f").unwrap()[0].labels.len(),
            1
        );
        assert!(parse_groups("- targets: [a]\n  labels: {'': y}\n", false, "f")
            .unwrap_err()
            .contains("invalid label name"));
        assert!(parse_groups("- target: [a]\n", false, "f").is_err());
        assert!(parse_groups("", false, "f").unwrap().is_empty());
    }

    #[test]
    fn long_group_labels_on_many_targets_are_refused() {
        let group = |targets: usize| {
            let targets: Vec<String> = (0..targets).map(|i| format!("\"h:{i}\"")).collect();
            format!("[{{\"targets\": [{}], \"labels\": {{\"x\": \"{}\"}}}}]", targets.join(","), "v".repeat(1 << 20))
        };
        assert_eq!(parse_groups(&group(10), true, "sd").unwrap()[0].targets.len(), 10);
        let e = parse_groups(&group(100), true, "sd").unwrap_err();
        assert_eq!(e, "the targets with their groups' labels would take more than 67108864 bytes");
        // Sixteen megabytes of empty groups are a million groups.
        let empty = format!("[{}{{}}]", "{},".repeat(1 << 20));
        assert!(parse_groups(&empty, true, "sd").is_err());
        assert_eq!(parse_groups("[{}, {}]", true, "sd").unwrap().len(), 2);
    }
}
