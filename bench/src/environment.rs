//! What the side-by-side benchmarks run on: the peers' Debian packages (installed when missing)
//! and their versions, and the machine and date a report names, so that every report states
//! the same facts the same way.

use std::process::{Command, Stdio};

use crate::servers::Kind;

/// The Debian package and binary of a peer server; None for Pyrite, built here.
fn package(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Pyrite => None,
        Kind::Prometheus => Some("prometheus"),
        Kind::VictoriaMetrics => Some("victoria-metrics"),
    }
}

/// Installs the peers among `servers` from Debian packages if they are missing (needs root, as
/// the test script runs).
pub fn ensure_packages(servers: &[Kind]) -> Result<(), String> {
    for package in servers.iter().filter_map(|&k| package(k)) {
        let present = Command::new("sh").args(["-c", &format!("command -v {package}")]).output();
        if present.is_ok_and(|o| o.status.success()) {
            continue;
        }
        eprintln!("installing the Debian package {package}");
        let ok = Command::new("apt-get")
            .args(["install", "-y", "-q", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("{package} is missing and `apt-get install {package}` failed (run as root)"));
        }
    }
    Ok(())
}

/// The servers' names and versions (Debian's package versions for the peers, whose binaries do
/// not all report theirs), joined with "; ".
pub fn versions(servers: &[Kind]) -> String {
    let cpus = cpus();
    let each = servers.iter().map(|&k| match package(k) {
        None => format!("pyrite {} ({cpus} shards)", env!("CARGO_PKG_VERSION")),
        Some(package) => {
            let out = Command::new("dpkg-query").args(["-W", "-f=${Version}", package]).output();
            let version = out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
            format!("{package} {}", if version.is_empty() { "(version unknown)" } else { &version })
        }
    });
    each.collect::<Vec<_>>().join("; ")
}

fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// "N CPUs, M GiB RAM, Linux x.y".
pub fn machine() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next()?.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kib| format!("{:.0} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_default();
    format!("{} CPUs, {memory} RAM, Linux {}", cpus(), kernel.trim())
}

/// Today's date, `YYYY-MM-DD`.
pub fn today() -> String {
    let out = Command::new("date").arg("+%Y-%m-%d").output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}
