//! `pyrite test rules` on upstream's rule unit tests in `../shared/conformance/promtool-rules/`:
//! every file gets the verdict listed in `../shared/conformance/promqltest/INVENTORY.md` ("Rule
//! unit tests", v3.14.0 command line), `--run` and `--ignore-unknown-fields` included, and
//! `unittest.yml` whole, native histograms and all.

use std::path::PathBuf;
use std::process::{Command, Output};

use pyrite_tests::bin;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/promtool-rules")
}

fn test_rules(file: &str, extra: &[&str]) -> Output {
    Command::new(bin("pyrite")).args(["test", "rules"]).arg(dir().join(file)).args(extra).output().expect("run pyrite")
}

#[test]
fn verdicts_match_upstreams_inventory() {
    let cases: [(&str, &[&str], bool); 19] = [
        ("long-period.yml", &[], true),
        ("no-test-group-interval.yml", &[], true),
        ("start-time-test.yml", &[], true),
        ("at-modifier-test.yml", &[], true),
        ("negative-offset-test.yml", &[], true),
        ("rules_run.yml", &[], false),
        ("rules_run.yml", &["--run", "correct"], true),
        ("rules_run.yml", &["--run", "wrong"], false),
        ("rules_run_extrafields.yml", &[], false),
        ("rules_run_extrafields.yml", &["--ignore-unknown-fields"], true),
        ("rules_run_fuzzy.yml", &["--run", "correct"], true),
        ("rules_run_fuzzy.yml", &["--run", "wrong"], false),
        ("rules_run_no_fuzzy.yml", &[], false),
        ("failing.yml", &[], false),
        ("bad-input-series.yml", &[], false),
        ("bad-promql.yml", &[], false),
        ("bad-rules-syntax-test.yml", &[], false),
        ("bad-rules-error-test.yml", &[], false),
        ("rules_run.yml", &["--run", "correct", "--run", "wrong"], false),
    ];
    for (file, extra, pass) in cases {
        let out = test_rules(file, extra);
        let code = out.status.code();
        assert_eq!(code, Some(if pass { 0 } else { 1 }), "{file} {extra:?}: {out:?}");
    }
}

#[test]
fn failures_say_what_differed() {
    let failing = String::from_utf8_lossy(&test_rules("failing.yml", &[]).stderr).to_string();
    for expected in [
        "name: Failing test",
        "alertname: Test",
        "exp: [{__name__=\"test\"} 1]",
        "got: [{__name__=\"test\"} 0]",
        "alertname: AlwaysFiring, time: 5m",
    ] {
        assert!(failing.contains(expected), "{expected:?} missing from {failing}");
    }
    let error = String::from_utf8_lossy(&test_rules("bad-rules-error-test.yml", &[]).stderr).to_string();
    assert!(
        error.contains("rule: joined, time: 0s, err: ") && error.contains("many-to-many matching not allowed"),
        "{error}"
    );
    let syntax = String::from_utf8_lossy(&test_rules("bad-rules-syntax-test.yml", &[]).stderr).to_string();
    assert!(syntax.contains("group \"bad-syntax\", rule 1, \"x\": could not parse expression"), "{syntax}");
}

/// Upstream's own unit-test file passes whole, its native-histogram series (loaded from the
/// notation, read back with the counter-reset hints upstream's chunks give) included.
#[test]
fn unittest_yml_passes_with_its_native_histograms() {
    let out = test_rules("unittest.yml", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// Alert templates (`$value` printing, every `humanize*`, `printf`, `title`, `reReplaceAll`,
/// `stripPort`, `match`, a missing label, external labels, `query` with `first`/`value` and
/// `sortByLabel`, comparisons with NaN) over twelve values, with the expansions upstream's
/// promtool gives: both promtool and Pyrite must pass the file.
#[test]
fn templates_expand_as_upstream_expands_them() {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates/unittest.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.matches("exp_annotations").count(), 12, "the file checks twelve alerts");
    for program in [std::path::Path::new("promtool"), &bin("pyrite")] {
        let out = Command::new(program).args(["test", "rules"]).arg(&file).output().expect("run a rule tester");
        assert_eq!(out.status.code(), Some(0), "{}: {out:?}", program.display());
    }
}
