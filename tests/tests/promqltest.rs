//! Upstream's PromQL conformance scripts (`../shared/conformance/promqltest/*.test`, v3.14.0)
//! against Pyrite's engine on 1 and on 3 shards (where batched aggregations fold their series one
//! at a time, `pyrite_core::promql::Fragment::batched`).
//!
//! `promqltest/expected-passes.txt` lists every eval (`file:line`) known to pass. The test fails
//! if any of them fails now; evals that newly pass are reported, and
//! `PROMQLTEST_BLESS=1 cargo test --release -p pyrite-tests --test promqltest` records them.
//! Totals per file and per category go to `target/promqltest-report.txt`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use pyrite_tests::promqltest::{categories, run_script, Outcome};

const SHARD_COUNTS: [usize; 2] = [1, 3];

fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/promqltest")
}

fn expected_passes_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("promqltest/expected-passes.txt")
}

#[test]
fn upstream_promqltest_scripts() {
    let dir = conformance_dir();
    let tsv = std::fs::read_to_string(dir.join("EVALS.tsv"))
        .unwrap_or_else(|e| panic!("{}: {e} (the shared conformance data must sit beside the repo)", dir.display()));
    let categories = categories(&tsv);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("conformance directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();

    let mut report = String::new();
    let mut passed: BTreeSet<String> = BTreeSet::new();
    let mut failures: BTreeMap<String, String> = BTreeMap::new();
    let mut by_category: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    let mut totals = [0usize; 3];
    for path in &files {
        let name = path.file_name().expect("file name").to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).expect("read script");
        let mut counts = [0usize; 3];
        for (line, outcome) in run_script(&name, &text, &SHARD_COUNTS, &categories) {
            let key = format!("{name}:{line}");
            let category =
                categories.get(&(name.clone(), line)).map_or_else(|| "unknown".into(), |c| c.category.clone());
            let slot = match outcome {
                Outcome::Passed => {
                    passed.insert(key);
                    0
                }
                Outcome::Failed(why) => {
                    failures.insert(key, why);
                    1
                }
                Outcome::Skipped(_) => 2,
            };
            counts[slot] += 1;
            totals[slot] += 1;
            by_category.entry(category).or_default()[slot] += 1;
        }
        report.push_str(&format!("{name}: pass {}, fail {}, skip {}\n", counts[0], counts[1], counts[2]));
    }
    for (category, c) in &by_category {
        report.push_str(&format!("category {category}: pass {}, fail {}, skip {}\n", c[0], c[1], c[2]));
    }
    report.push_str(&format!("all evals: pass {}, fail {}, skip {}\n", totals[0], totals[1], totals[2]));
    let mut details = String::new();
    for (key, why) in &failures {
        details.push_str(&format!("FAIL {key}: {why}\n"));
    }
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
    let _ = std::fs::write(target.join("promqltest-report.txt"), &report);
    let _ = std::fs::write(target.join("promqltest-failures.txt"), &details);
    eprint!("{report}");

    let listed = std::fs::read_to_string(expected_passes_path()).unwrap_or_default();
    let expected: BTreeSet<String> =
        listed.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect();
    if std::env::var_os("PROMQLTEST_BLESS").is_some() {
        let mut text =
            String::from("# promqltest evals (file:line) that pass on 1 and 3 shards; see tests/tests/promqltest.rs\n");
        passed.iter().for_each(|k| text.push_str(&format!("{k}\n")));
        std::fs::write(expected_passes_path(), text).expect("write expected passes");
        return;
    }
    let regressions: Vec<String> = expected
        .difference(&passed)
        .map(|k| format!("{k}: {}", failures.get(k).map(String::as_str).unwrap_or("not run")))
        .collect();
    let new_passes = passed.difference(&expected).count();
    if new_passes > 0 {
        eprintln!("{new_passes} evals pass that are not in expected-passes.txt; record them with PROMQLTEST_BLESS=1");
    }
    assert!(
        regressions.is_empty(),
        "{} evals that passed before fail now:\n{}",
        regressions.len(),
        regressions.join("\n")
    );
}
