//! Smoke test of the benchmark instruments: `pyrite-bench compare` at its tiny size runs
//! loadgen's mixed profile against Pyrite, Prometheus and VictoriaMetrics and writes a table in
//! which every server ingested samples and answered every dashboard query.

use std::process::Command;

use pyrite_loadgen::drive::DASHBOARD;
use pyrite_tests::{bin, TempDir};

/// The three server cells of the table row whose name starts with `figure`.
fn cells<'a>(table: &'a str, figure: &str) -> Vec<&'a str> {
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("| {figure}")))
        .unwrap_or_else(|| panic!("no row {figure:?} in:\n{table}"));
    row.split('|').map(str::trim).skip(2).take(3).collect()
}

#[test]
fn compare_runs_all_three_servers_on_loadgen_targets() {
    let dir = TempDir::new("compare-smoke");
    let results = dir.0.join("RESULTS.md");
    let out = Command::new(bin("pyrite-bench"))
        .args(["compare", "--size", "tiny", "--duration", "3", "--results"])
        .arg(&results)
        .output()
        .expect("run pyrite-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pyrite-bench compare failed:\n{stderr}");
    let table = std::fs::read_to_string(&results).expect("results written");
    for cell in cells(&table, "samples ingested") {
        let n: f64 = cell.replace(',', "").parse().unwrap_or_else(|_| panic!("{cell:?} in:\n{table}"));
        assert!(n > 0.0, "a server ingested nothing:\n{table}");
    }
    for (name, _, _) in DASHBOARD {
        let medians = cells(&table, &format!("query {name}, median"));
        assert!(medians.iter().all(|c| c.ends_with(" ms")), "{name} not answered by every server:\n{table}");
    }
    for row in ["bytes per sample on disk, with WAL", "bytes per sample after flush"] {
        assert!(cells(&table, row).iter().all(|c| c.parse::<f64>().is_ok_and(|b| b > 0.0)), "{row}:\n{table}");
    }
}
