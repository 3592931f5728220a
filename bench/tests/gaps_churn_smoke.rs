//! Smoke tests of `pyrite-bench gaps` and `pyrite-bench churn` at a tiny scale (4 targets ×
//! 50 series every second, blocks of seconds): the targets see both servers' scrapes in every
//! phase, about a second apart; both servers answer the dashboard queries and cut blocks; under
//! churn both heads hold more series than the targets expose now.

use std::process::Command;

use pyrite_tests::bin;

/// Runs `pyrite-bench` with `args` and returns the markdown table it prints.
fn run(args: &[&str]) -> String {
    let out = Command::new(bin("pyrite-bench")).args(args).output().expect("run pyrite-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pyrite-bench {args:?} failed:\n{stderr}");
    String::from_utf8(out.stdout).expect("UTF-8 report")
}

/// The two server cells (pyrite, prometheus) of the row whose name starts with `figure`, as
/// numbers (units and thousands separators dropped).
fn cells(table: &str, figure: &str) -> [f64; 2] {
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("| {figure}")))
        .unwrap_or_else(|| panic!("no row {figure:?} in:\n{table}"));
    let numbers: Vec<f64> = row
        .split('|')
        .map(str::trim)
        .skip(2)
        .take(2)
        .map(|c| {
            let number = c.split(' ').next().unwrap_or_default().replace(',', "");
            number.parse().unwrap_or_else(|_| panic!("{c:?} in {row:?} is not a figure:\n{table}"))
        })
        .collect();
    [numbers[0], numbers[1]]
}

#[test]
fn gaps_are_measured_for_both_servers_in_every_phase() {
    let table = run(&[
        "gaps",
        "--interval",
        "1",
        "--series",
        "200",
        "--per-target",
        "50",
        "--phase",
        "5",
        "--block-duration",
        "20",
        "--cut-timeout",
        "90",
    ]);
    let mut compactions = [0.0; 2];
    for phase in ["quiet", "queries", "cuts"] {
        for scrapes in cells(&table, &format!("{phase} (")) {
            assert!(scrapes >= 4.0, "{phase}: too few scrapes recorded:\n{table}");
        }
        for p50 in cells(&table, &format!("{phase}: gap p50")) {
            assert!((0.8..1.5).contains(&p50), "{phase}: scrapes not a second apart:\n{table}");
        }
        for (total, counted) in compactions.iter_mut().zip(cells(&table, &format!("{phase}: compactions counted"))) {
            *total += counted;
        }
    }
    assert!(cells(&table, "queries: dashboard queries answered").iter().all(|&n| n > 0.0), "{table}");
    assert!(compactions.iter().all(|&n| n > 0.0), "a server cut no block:\n{table}");
}

#[test]
fn churn_shows_head_series_and_memory_cycle_by_cycle() {
    let table = run(&[
        "churn",
        "--interval",
        "1",
        "--series",
        "200",
        "--per-target",
        "50",
        "--block-duration",
        "15",
        "--cycles",
        "3",
        "--churn",
        "0.25",
    ]);
    for cycle in 1..=3 {
        assert!(cells(&table, &format!("cycle {cycle} (")).iter().all(|&n| n >= 220.0), "{table}");
    }
    let rss_rows: Vec<&str> = table.lines().filter(|l| l.contains(" min): RSS |")).collect();
    assert_eq!(rss_rows.len(), 3, "{table}");
    assert!(rss_rows.iter().all(|r| r.matches(" MiB |").count() == 2), "{table}");
    let over_live = cells(&table, "head series / live series");
    assert!(over_live.iter().all(|&r| r > 1.0), "the churned series did not reach both heads:\n{table}");
    assert!(cells(&table, "RSS, last cycle / first cycle").iter().all(|&r| r > 0.0), "{table}");
}
