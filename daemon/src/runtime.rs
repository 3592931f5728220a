//! Shard runtimes: choosing the I/O driver and sizing the shard pool.
//!
//! io_uring is used where the kernel and the seccomp profile allow it, epoll elsewhere. monoio
//! falls back by itself only when `io_uring_setup` fails; a profile that blocks
//! `io_uring_enter` alone makes a ring that never completes anything, and the runtime spins.
//! So `auto` first runs a self-test in a child process — a real file read through the ring —
//! and kills it if it does not succeed within [`SELFTEST_TIMEOUT`]. The child inherits this
//! process's seccomp filter, so it sees what the shards would see.

use std::future::Future;
use std::io;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::cli::DriverChoice;

/// How long the io_uring self-test may take.
const SELFTEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The driver every shard runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    IoUring,
    Epoll,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::IoUring => "io_uring",
            Driver::Epoll => "epoll",
        }
    }
}

/// Picks the driver for `choice`; the string says why, for the log.
pub fn select_driver(choice: DriverChoice) -> anyhow::Result<(Driver, String)> {
    match choice {
        DriverChoice::Epoll => Ok((Driver::Epoll, "forced by --runtime.driver=epoll".into())),
        DriverChoice::IoUring => match io_uring_selftest() {
            Ok(()) => Ok((Driver::IoUring, "forced by --runtime.driver=io_uring".into())),
            Err(e) => anyhow::bail!("--runtime.driver=io_uring, but io_uring does not work here: {e}"),
        },
        DriverChoice::Auto => Ok(match io_uring_selftest() {
            Ok(()) => (Driver::IoUring, "io_uring self-test passed".into()),
            Err(e) => (Driver::Epoll, format!("io_uring unavailable ({e}), falling back to epoll")),
        }),
    }
}

/// Runs `pyrite io-uring-selftest` in a child process under a timeout.
fn io_uring_selftest() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let mut child = Command::new(exe)
        .arg("io-uring-selftest")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start self-test: {e}"))?;
    let deadline = Instant::now() + SELFTEST_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(format!("self-test failed ({status}): {}", err.trim()));
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("self-test did not finish within {SELFTEST_TIMEOUT:?} (io_uring_enter blocked?)"));
            }
            Err(e) => return Err(format!("cannot wait for self-test: {e}")),
        }
    }
}

/// The child side of the self-test: opens and reads a file through an io_uring runtime.
pub fn io_uring_selftest_main() -> io::Result<()> {
    let mut rt = RuntimeBuilder::<IoUringDriver>::new().enable_timer().build()?;
    rt.block_on(async {
        let file = monoio::fs::File::open("/proc/self/stat").await?;
        let (res, buf) = file.read_at(vec![0u8; 64], 0).await;
        let n = res?;
        if n == 0 || buf.is_empty() {
            return Err(io::Error::other("read nothing through io_uring"));
        }
        Ok(())
    })
}

/// Runs `fut` to completion on a new runtime of the given driver, on the calling thread.
pub fn block_on<F: Future>(driver: Driver, fut: F) -> io::Result<F::Output> {
    Ok(match driver {
        Driver::IoUring => RuntimeBuilder::<IoUringDriver>::new().enable_timer().build()?.block_on(fut),
        Driver::Epoll => RuntimeBuilder::<LegacyDriver>::new().enable_timer().build()?.block_on(fut),
    })
}

/// The number of shards: `requested`, or the CPUs this process may use. Rust's
/// `available_parallelism` honours both the affinity mask and the cgroup CPU quota, so a
/// 0.25-vCPU Fargate task gets one shard.
pub fn shard_count(requested: Option<usize>) -> usize {
    requested.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1)
}

/// CPUs in this process's affinity mask (from `Cpus_allowed_list` in /proc/self/status), to
/// pin shards to. Empty if it cannot be read.
pub fn allowed_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap_or("");
    parse_cpu_list(list.trim())
}

/// Parses a kernel CPU list such as `0-3,8,10-11`.
fn parse_cpu_list(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let range = match part.split_once('-') {
            Some((a, b)) => a.parse::<usize>().ok().zip(b.parse::<usize>().ok()),
            None => part.parse::<usize>().ok().map(|c| (c, c)),
        };
        match range {
            Some((a, b)) => cpus.extend(a..=b),
            None => return Vec::new(),
        }
    }
    cpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("1"), vec![1]);
        assert!(parse_cpu_list("x").is_empty());
    }
}
