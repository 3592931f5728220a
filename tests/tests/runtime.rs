//! The I/O driver choice under a seccomp filter, refusing a second server, and the threads'
//! priorities.

use std::time::Duration;

use pyrite_tests::seccomp::Block;
use pyrite_tests::{Pyrite, PyriteOpts};

fn driver_of(p: &Pyrite) -> String {
    let metrics = p.get("/metrics").1;
    metrics
        .lines()
        .find(|l| l.starts_with("pyrite_runtime_driver{shard=\"0\""))
        .unwrap_or_else(|| panic!("no driver metric in:\n{metrics}"))
        .to_string()
}

fn assert_serves_queries(p: &Pyrite) {
    let r = p.query("1 + 1", None);
    assert_eq!(r[1], "2");
}

#[test]
fn blocked_io_uring_falls_back_to_epoll() {
    let p = Pyrite::start(PyriteOpts { seccomp: Some(Block::AllIoUring), shards: Some(2), ..Default::default() });
    assert!(driver_of(&p).contains("driver=\"epoll\""), "{}", driver_of(&p));
    assert_serves_queries(&p);
}

#[test]
fn blocked_io_uring_enter_is_caught_by_the_self_test() {
    let p = Pyrite::start(PyriteOpts { seccomp: Some(Block::EnterOnly), shards: Some(2), ..Default::default() });
    assert!(driver_of(&p).contains("driver=\"epoll\""), "{}", driver_of(&p));
    assert_serves_queries(&p);
}

#[test]
fn forcing_io_uring_where_it_is_blocked_is_refused() {
    let mut p =
        Pyrite::spawn(PyriteOpts { seccomp: Some(Block::AllIoUring), driver: Some("io_uring"), ..Default::default() });
    let (status, err) = p.process.wait_exit(Duration::from_secs(20));
    assert!(!status.success());
    assert!(err.contains("--runtime.driver=io_uring, but io_uring does not work here"), "{err}");
}

#[test]
fn unrestricted_auto_picks_io_uring() {
    let p = Pyrite::start(PyriteOpts::default());
    assert!(driver_of(&p).contains("driver=\"io_uring\""), "{}", driver_of(&p));
}

#[test]
fn a_second_server_on_the_same_port_or_data_directory_is_refused() {
    let first = Pyrite::start(PyriteOpts::default());
    let mut same_port = Pyrite::spawn(PyriteOpts { port: Some(first.port), ..Default::default() });
    let (status, err) = same_port.process.wait_exit(Duration::from_secs(20));
    assert!(!status.success());
    assert!(err.contains(&format!("listen tcp 127.0.0.1:{}: bind", first.port)) && err.contains("in use"), "{err}");

    let mut same_dir = Pyrite::spawn(PyriteOpts { data_dir: Some(first.data_dir.clone()), ..Default::default() });
    let (status, err) = same_dir.process.wait_exit(Duration::from_secs(20));
    assert!(!status.success());
    assert!(err.contains("is in use by another process"), "{err}");
    // The first one is unharmed.
    assert_serves_queries(&first);
}

#[test]
fn default_config_scrapes_the_server_itself() {
    let p = Pyrite::start(PyriteOpts { shards: Some(2), ..Default::default() });
    let up = pyrite_tests::eventually(Duration::from_secs(20), || {
        let r = p.query("up{job=\"prometheus\"}", None);
        (r.as_array()?.len() == 1).then(|| r[0].clone())
    })
    .expect("the default config scrapes pyrite itself within one 15 s interval");
    assert_eq!(up["metric"]["instance"], format!("127.0.0.1:{}", p.port));
    assert_eq!(up["value"][1], "1");
}

#[test]
fn explain_shows_what_runs_on_the_shards() {
    let out = std::process::Command::new(pyrite_tests::bin("pyrite"))
        .args(["explain", "sum by (job) (rate(http_requests_total[5m])) / 2"])
        .output()
        .expect("run pyrite explain");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("coordinator: ($fragment0) / (2)\n"), "{text}");
    assert!(text.contains("$fragment0 on every shard, partial sum by (job)"), "{text}");
    let bad = std::process::Command::new(pyrite_tests::bin("pyrite")).args(["explain", "sum("]).output().expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("parse error"));
}

/// The nice value of each of the process's threads whose name starts with `prefix`.
fn nice_of_threads(p: &Pyrite, prefix: &str) -> Vec<i64> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", p.process.id())).expect("the process's threads");
    let stats = tasks.flatten().filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok());
    let ours = stats.filter(|stat| stat.split_once(" (").is_some_and(|(_, rest)| rest.starts_with(prefix)));
    // The fields after the name's closing parenthesis start at the third, the state; nice is the 19th.
    ours.filter_map(|stat| stat.rsplit_once(')')?.1.split_whitespace().nth(16)?.parse().ok()).collect()
}

/// Query threads yield the CPU to the shards, which serve every request and take appends:
/// twenty heavy range queries at a time had `/-/healthy` wait up to 2.7 s at equal priority.
/// Ten nicer than the shards, whatever the nice value the tests run at.
#[test]
fn query_threads_run_below_the_shards_priority() {
    let p = Pyrite::start(PyriteOpts::default());
    let (queries, shards) = (nice_of_threads(&p, "query-"), nice_of_threads(&p, "shard-"));
    let shard = shards.first().copied().expect("shard threads");
    assert!(shards.iter().all(|&n| n == shard), "shard threads' nice values: {shards:?}");
    let want = (shard + 10).min(19);
    assert!(!queries.is_empty() && queries.iter().all(|&n| n == want), "query threads' nice values: {queries:?}");
}
