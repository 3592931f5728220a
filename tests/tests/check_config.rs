//! `pyrite check config` against `promtool check config` (Debian's) on configurations naming
//! rule files: valid ones found by name and by glob, a glob matching nothing, a broken one and
//! a missing one. The same exit code and the same report on stdout for each (Pyrite adds the
//! scrape config count to the syntax line), and the failure names the rule file.

use std::path::Path;
use std::process::Command;

use pyrite_tests::{bin, TempDir};

const GOOD_RULES: &str = "groups:\n  - name: g\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n      - alert: Down\n        expr: up == 0\n";
const BROKEN_RULES: &str =
    "groups:\n  - name: g\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up +\n";
const SCRAPE: &str = "scrape_configs: [{job_name: a, static_configs: [{targets: ['localhost:1']}]}]\n";

/// (exit code, stdout, stderr) of `program check config prometheus.yml`, run in `dir` so that
/// both print the same relative paths.
fn check(program: &Path, dir: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(program)
        .args(["check", "config", "prometheus.yml"])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {} (promtool is installed by scripts/test): {e}", program.display()));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Pyrite's syntax line without the scrape config count promtool does not print.
fn promtool_form(stdout: &str) -> String {
    let count = regex::Regex::new(r" \(\d+ scrape configs\)").unwrap();
    count.replace_all(stdout, "").into_owned()
}

/// Checks the configuration `rule_files` in a directory holding `rules/good.yml`,
/// `rules/also.good.yml` and `rules/broken.bad.yml`; returns Pyrite's (exit code, stdout,
/// stderr) after comparing exit code and stdout with promtool's.
fn compare(rule_files: &str) -> (Option<i32>, String, String) {
    let dir = TempDir::new("check-config");
    std::fs::create_dir_all(dir.0.join("rules")).unwrap();
    std::fs::write(dir.0.join("rules/good.yml"), GOOD_RULES).unwrap();
    std::fs::write(dir.0.join("rules/also.good.yml"), GOOD_RULES).unwrap();
    std::fs::write(dir.0.join("rules/broken.bad.yml"), BROKEN_RULES).unwrap();
    std::fs::write(dir.0.join("prometheus.yml"), format!("rule_files: {rule_files}\n{SCRAPE}")).unwrap();
    let ours = check(&bin("pyrite"), &dir.0);
    let theirs = check(Path::new("promtool"), &dir.0);
    assert_eq!(ours.0, theirs.0, "exit codes for rule_files {rule_files}:\n{ours:?}\n{theirs:?}");
    assert_eq!(promtool_form(&ours.1), theirs.1, "stdout for rule_files {rule_files}");
    ours
}

#[test]
fn check_config_checks_the_rule_files_it_names_as_promtool_does() {
    // Found by name and by glob, relative to the configuration's directory; a glob that
    // matches nothing names no file.
    let (code, stdout, _) = compare("[rules/good.yml, 'rules/*.good.yml', 'nowhere/*.yml']");
    assert_eq!(code, Some(0));
    assert!(stdout.contains("  SUCCESS: 2 rule files found\n"), "{stdout}");
    assert!(stdout.contains("Checking rules/also.good.yml\n  SUCCESS: 2 rules found\n"), "{stdout}");

    // A broken rule file fails the check, naming the file and the rule.
    let (code, stdout, stderr) = compare("['rules/*.yml']");
    assert_eq!(code, Some(1));
    assert!(stdout.contains("Checking rules/broken.bad.yml\n"), "{stdout}");
    assert!(stderr.contains("  FAILED:\nrules/broken.bad.yml: group \"g\", rule 1, \"job:up:sum\""), "{stderr}");

    // A rule file named outright must exist, with promtool's message.
    let (code, _, stderr) = compare("[rules/good.yml, rules/missing.yml]");
    assert_eq!(code, Some(1));
    assert_eq!(stderr, "  FAILED: \"rules/missing.yml\" does not point to an existing file\n");
}
