//! `pyrite check rules` against `promtool check rules` (Debian's 2.42) on every YAML file of
//! upstream's promtool test data in `../shared/conformance/promtool-rules/`: rule files,
//! broken rule files, and unit-test files (which are not rule files): the same verdict for each.

use std::path::PathBuf;
use std::process::Command;

use pyrite_tests::bin;

fn exit_code(program: &std::path::Path, file: &std::path::Path) -> Option<i32> {
    Command::new(program).args(["check", "rules"]).arg(file).output().expect("run a rule checker").status.code()
}

#[test]
fn check_rules_gives_promtools_verdict_on_upstreams_test_data() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/promtool-rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the shared conformance data must sit beside the repo)", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "{files:?}");
    let mut valid = 0;
    for file in &files {
        let ours = exit_code(&bin("pyrite"), file);
        assert_eq!(ours, exit_code(std::path::Path::new("promtool"), file), "{}", file.display());
        valid += usize::from(ours == Some(0));
    }
    assert!(valid >= 3 && valid < files.len(), "{valid} of {} valid", files.len());
    let out = Command::new(bin("pyrite")).args(["check", "rules"]).arg(dir.join("rules.yml")).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("  SUCCESS: "), "{out:?}");
}

/// promtool's `duplicate-rules` lint, byte for byte: reported and passed by default, exit 3
/// under `--lint-fatal`, silent under `--lint=none`.
#[test]
fn duplicate_rules_are_linted_as_promtool_lints_them() {
    let dir = pyrite_tests::TempDir::new("duplicate-rules");
    let file = dir.0.join("rules.yml");
    let text = "groups:\n  - name: g\n    rules:\n      - {record: r, expr: up}\n      - {record: r, expr: up * 2}\n      - {alert: A, expr: up > 1, labels: {severity: warn, z: b}}\n  - name: h\n    rules:\n      - {record: r, expr: up}\n      - {alert: A, expr: up > 1, labels: {z: b, severity: warn}}\n      - {alert: A, expr: up > 1, labels: {severity: page}}\n";
    std::fs::write(&file, text).unwrap();
    for flags in [&[][..], &["--lint-fatal"], &["--lint=none"]] {
        let run = |program: &std::path::Path| {
            let out = Command::new(program).args(["check", "rules"]).args(flags).arg(&file).output().unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let ours = run(&bin("pyrite"));
        assert_eq!(ours, run(std::path::Path::new("promtool")), "{flags:?}");
        let expected = match flags.first() {
            None => Some(0),
            Some(&"--lint-fatal") => Some(3),
            Some(_) => Some(0),
        };
        assert_eq!(ours.0, expected, "{flags:?}: {ours:?}");
    }
    let stderr = Command::new(bin("pyrite")).args(["check", "rules"]).arg(&file).output().unwrap().stderr;
    assert!(String::from_utf8_lossy(&stderr)
        .contains("2 duplicate rule(s) found.\nMetric: A\nLabel(s):\n\tseverity: warn\n\tz: b\n"));
}
