//! Command-line flags as an operator coming from Prometheus writes them:
//!
//! * `--web.listen-address=:PORT` and `0.0.0.0:PORT` listen on IPv6 and IPv4, as upstream's Go
//!   listener does; `127.0.0.1:PORT` on that address only;
//! * `/api/v1/status/flags` shows the route prefix derived from `--web.external-url`;
//! * a typical Compose file's command line starts Pyrite: the flags that change nothing are
//!   named in a warning, the ones Pyrite honours take effect (the page title, no lock file),
//!   and every one shows in `/api/v1/status/flags`;
//! * a `--log.level` that does not parse stops the start, naming the flag.

use std::net::TcpListener;
use std::time::Duration;

use pyrite_tests::{free_port, http_get, json, Pyrite, PyriteOpts};
use serde_json::Value;

const NO_TARGETS: &str = "global:\n  scrape_interval: 1h\n";

fn healthy(url: &str) -> bool {
    http_get(&format!("{url}/-/healthy")).is_ok_and(|(status, _)| status == 200)
}

fn start_listening_on(address: impl Fn(u16) -> String) -> (Pyrite, u16) {
    let port = free_port();
    let p = Pyrite::start(PyriteOpts {
        config: Some(NO_TARGETS.into()),
        port: Some(port),
        extra_args: vec![format!("--web.listen-address={}", address(port))],
        ..PyriteOpts::default()
    });
    (p, port)
}

#[test]
fn every_address_takes_ipv6_and_ipv4_and_a_given_one_only_itself() {
    let ipv6 = TcpListener::bind("[::1]:0").is_ok();
    for any in [":", "0.0.0.0:"] {
        let (_both, port) = start_listening_on(|port| format!("{any}{port}"));
        assert!(healthy(&format!("http://127.0.0.1:{port}")), "IPv4 on {any}{port}");
        if ipv6 {
            assert!(healthy(&format!("http://[::1]:{port}")), "IPv6 on {any}{port}");
        } else {
            eprintln!("no IPv6 on this host's loopback: only IPv4 checked");
        }
    }
    let (_v4, port) = start_listening_on(|port| format!("127.0.0.1:{port}"));
    assert!(healthy(&format!("http://127.0.0.1:{port}")), "IPv4 on 127.0.0.1:{port}");
    assert!(http_get(&format!("http://[::1]:{port}/-/healthy")).is_err(), "127.0.0.1 takes no IPv6");
}

fn flags(p: &Pyrite) -> Value {
    json(&p.get("/api/v1/status/flags").1)["data"].clone()
}

#[test]
fn status_flags_shows_the_route_prefix_derived_from_the_external_url() {
    let derived = Pyrite::start(PyriteOpts {
        config: Some(NO_TARGETS.into()),
        extra_args: vec!["--web.external-url=http://lb.example.com/pyrite/".into()],
        ..PyriteOpts::default()
    });
    let f = flags(&derived);
    assert_eq!(
        (&f["web.external-url"], &f["web.route-prefix"]),
        (&"http://lb.example.com/pyrite/".into(), &"/pyrite".into())
    );
    let given = Pyrite::start(PyriteOpts {
        config: Some(NO_TARGETS.into()),
        extra_args: vec![
            "--web.external-url=http://lb.example.com/pyrite/".into(),
            "--web.route-prefix=/inside/".into(),
        ],
        ..PyriteOpts::default()
    });
    assert_eq!(flags(&given)["web.route-prefix"], "/inside");
    let default = Pyrite::start(PyriteOpts { config: Some(NO_TARGETS.into()), ..PyriteOpts::default() });
    assert_eq!(flags(&default)["web.route-prefix"], "/");
}

/// The command of a typical Compose file for Prometheus (its config file and data directory
/// are the harness's).
const COMPOSE_COMMAND: [&str; 15] = [
    "--web.console.libraries=/usr/share/prometheus/console_libraries",
    "--web.console.templates=/usr/share/prometheus/consoles",
    "--web.user-assets=/srv/assets",
    "--web.page-title=Lab <Prometheus>",
    "--web.enable-lifecycle",
    "--web.enable-admin-api",
    "--web.cors.origin=https://grafana\\.example\\.com",
    "--web.max-connections=64",
    "--web.read-timeout=1m",
    "--storage.tsdb.retention.time=200h",
    "--storage.tsdb.wal-compression",
    "--storage.tsdb.no-lockfile",
    "--storage.tsdb.allow-overlapping-blocks",
    "--query.max-concurrency=8",
    "--log.format=logfmt",
];

#[test]
fn a_compose_files_command_line_starts_and_names_the_flags_that_change_nothing() {
    let mut p = Pyrite::start(PyriteOpts {
        config: Some(NO_TARGETS.into()),
        extra_args: COMPOSE_COMMAND.iter().map(|a| a.to_string()).collect(),
        ..PyriteOpts::default()
    });
    let f = flags(&p);
    for arg in COMPOSE_COMMAND {
        let (name, value) = arg.trim_start_matches("--").split_once('=').unwrap_or((&arg[2..], "true"));
        assert_eq!(f[name], value, "{name} in status/flags");
    }
    // Honoured: the UI's title (escaped), and no lock file in the data directory.
    let (_, page) = p.get("/query");
    assert!(page.contains("<title>Lab &lt;Prometheus&gt;</title>"), "{page}");
    assert!(!p.data_dir.join("lock").exists(), "--storage.tsdb.no-lockfile leaves no lock file");
    p.process.signal(libc::SIGTERM);
    let (status, stderr) = p.process.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{stderr}");
    let warned: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("it changes nothing in Pyrite"))
        .filter_map(|l| l.split("flag=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        warned,
        ["web.console.templates", "web.console.libraries", "web.user-assets", "storage.tsdb.allow-overlapping-blocks"],
        "{stderr}"
    );
}

#[test]
fn without_no_lockfile_the_data_directory_is_locked() {
    let p = Pyrite::start(PyriteOpts { config: Some(NO_TARGETS.into()), ..PyriteOpts::default() });
    assert!(p.data_dir.join("lock").exists());
}

#[test]
fn a_log_level_that_does_not_parse_is_refused_naming_the_flag() {
    let mut p = Pyrite::spawn(PyriteOpts {
        config: Some(NO_TARGETS.into()),
        extra_args: vec!["--log.level=pyrite=loud".into()],
        ..PyriteOpts::default()
    });
    let (status, stderr) = p.process.wait_exit(Duration::from_secs(20));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("invalid --log.level \"pyrite=loud\""), "{stderr}");
    // EnvFilter's span filters would never match a target filter's targets: refused too.
    let mut p = Pyrite::spawn(PyriteOpts {
        config: Some(NO_TARGETS.into()),
        extra_args: vec!["--log.level=warn, pyrite[scrape]=debug".into()],
        ..PyriteOpts::default()
    });
    let (status, stderr) = p.process.wait_exit(Duration::from_secs(20));
    assert!(!status.success() && stderr.contains("span and field filters are not supported"), "{stderr}");
}
