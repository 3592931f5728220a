//! The retention in force, shared by the shards' housekeeping and changed by reloads.
//!
//! As upstream 3.x: `--storage.tsdb.retention.time` and `--storage.tsdb.retention.size` (neither
//! given: 15 days; a size alone: no time limit), unless the configuration's
//! `storage.tsdb.retention` replaces both (a limit it leaves out is none); its `percentage`, of
//! the data directory's file system, replaces its `size`.

use std::path::Path;
use std::sync::Mutex;

use pyrite_core::config::{ByteSize, Config, Duration};

/// Upstream's retention time when no flag sets one.
const DEFAULT_TIME_MS: i64 = 15 * 24 * 3600 * 1000;

/// Retention limits; 0 is no limit of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub time_ms: i64,
    pub bytes: u64,
}

impl Limits {
    /// The flags' retention.
    pub fn of_flags(time: Duration, size: ByteSize) -> Limits {
        let time_ms = match (time.millis(), size.0) {
            (0, 0) => DEFAULT_TIME_MS,
            (t, _) => t.max(0),
        };
        Limits { time_ms, bytes: size.0 }
    }

    /// The retention `config` sets, else `flags`; a percentage is taken of the file system
    /// holding `storage_path` now.
    pub fn in_force(config: &Config, flags: Limits, storage_path: &Path) -> Result<Limits, String> {
        let Some(r) = config.retention else { return Ok(flags) };
        let bytes = match r.percentage {
            p if p > 0.0 => {
                let total = file_system_bytes(storage_path).map_err(|e| {
                    format!(
                        "unable to detect total capacity of metric storage at {}, please disable retention percentage ({p}%): {e}",
                        storage_path.display()
                    )
                })?;
                (total as f64 * p / 100.0) as u64
            }
            _ => r.size.0,
        };
        Ok(Limits { time_ms: r.time.millis().max(0), bytes })
    }

    /// The oldest sample time kept at `now_ms`.
    pub fn cutoff(&self, now_ms: i64) -> i64 {
        match self.time_ms {
            0 => i64::MIN,
            t => now_ms.saturating_sub(t),
        }
    }

    /// The bytes each of `shards` may keep (each keeps its own log and blocks).
    pub fn bytes_per_shard(&self, shards: usize) -> Option<u64> {
        (self.bytes > 0).then(|| self.bytes / shards.max(1) as u64)
    }

    /// As `/api/v1/status/runtimeinfo` shows it, as upstream: `15d`, `10GiB`, `30d or 512MiB`.
    pub fn describe(&self) -> String {
        let time = (self.time_ms > 0).then(|| Duration(self.time_ms).to_string());
        let size = (self.bytes > 0).then(|| {
            let size = ByteSize(self.bytes).to_string();
            match size.strip_suffix('B') {
                Some(n) if n.ends_with(char::is_alphabetic) => format!("{n}iB"),
                _ => size,
            }
        });
        time.into_iter().chain(size).collect::<Vec<_>>().join(" or ")
    }
}

/// The size of the file system holding `path`.
fn file_system_bytes(path: &Path) -> std::io::Result<u64> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: statvfs is plain data, valid zeroed; the call fills it in from a valid
    // NUL-terminated path.
    let (stat, status) = unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        let status = libc::statvfs(c_path.as_ptr(), &mut stat);
        (stat, status)
    };
    if status != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let total = stat.f_blocks.saturating_mul(stat.f_frsize);
    match total {
        0 => Err(std::io::Error::other("the file system reports no size")),
        n => Ok(n),
    }
}

/// The retention in force, read by every shard's housekeeping pass.
#[derive(Debug)]
pub struct LiveRetention(Mutex<Limits>);

impl LiveRetention {
    /// `r` in force.
    pub fn new(r: Limits) -> LiveRetention {
        LiveRetention(Mutex::new(r))
    }

    /// The limits in force now.
    pub fn get(&self) -> Limits {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts `r` in force from the next housekeeping pass; whether it changed anything.
    pub fn set(&self, r: Limits) -> bool {
        let mut limits = self.0.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *limits, r) != r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_configuration_give_the_retention_as_upstream() {
        let day = 24 * 3600 * 1000;
        let flags = |t: i64, b: u64| Limits::of_flags(Duration(t), ByteSize(b));
        assert_eq!(flags(0, 0), Limits { time_ms: 15 * day, bytes: 0 }, "neither: 15 days");
        assert_eq!(flags(0, 1 << 30), Limits { time_ms: 0, bytes: 1 << 30 }, "a size alone: no time limit");
        assert_eq!(flags(30 * day, 0), Limits { time_ms: 30 * day, bytes: 0 });
        let most = pyrite_core::config::duration::MAX_MILLIS;
        assert_eq!(flags(most, 0).time_ms, most, "the longest duration parsed, as upstream keeps it");

        let dir = std::env::temp_dir();
        let in_force = |text: &str| {
            let config = Config::parse(text, "p.yml").unwrap();
            Limits::in_force(&config, flags(30 * day, 0), &dir)
        };
        assert_eq!(in_force("global: {}\n"), Ok(flags(30 * day, 0)), "no section: the flags");
        assert_eq!(in_force("storage: {tsdb: {retention: {size: 1GB}}}\n"), Ok(Limits { time_ms: 0, bytes: 1 << 30 }));
        let half = in_force("storage: {tsdb: {retention: {size: 1GB, percentage: 50}}}\n").unwrap();
        let total = file_system_bytes(&dir).unwrap();
        assert_eq!(half.bytes, total / 2, "a percentage replaces the size");
        let missing = Config::parse("storage: {tsdb: {retention: {percentage: 1}}}\n", "p.yml").unwrap();
        let e = Limits::in_force(&missing, flags(0, 0), Path::new("/nonexistent/data")).unwrap_err();
        assert!(e.starts_with("unable to detect total capacity of metric storage at /nonexistent/data"), "{e}");
    }

    #[test]
    fn no_time_limit_keeps_everything_and_shards_split_the_size() {
        let r = Limits { time_ms: 0, bytes: 10 << 30 };
        assert_eq!(r.cutoff(1_000_000), i64::MIN);
        assert_eq!(r.bytes_per_shard(4), Some(10 << 28));
        assert_eq!(r.describe(), "10GiB");
        assert_eq!(Limits { time_ms: 2 * 24 * 3600 * 1000, bytes: 1000 }.describe(), "2d or 1000B");
        let r = Limits { time_ms: 3600 * 1000, bytes: 0 };
        assert_eq!((r.cutoff(7_200_000), r.bytes_per_shard(2), r.describe()), (3_600_000, None, "1h".to_string()));
    }
}
