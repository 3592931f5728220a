//! The data directory, its lock, and its shard layout.
//!
//! Two servers writing one directory would corrupt it, so the directory is locked with an
//! advisory `flock` on `<dir>/lock` for the life of the process; a second Pyrite on the same
//! directory is refused at start with the holder's pid.
//!
//! Each shard owns the series whose label hash falls to it, and logs them in `wal/<shard>/`;
//! `wal/shards` records how many shards wrote the log. Replaying it with another shard count
//! would put series on shards that do not own them, so that is refused with the count to use.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::{bail, Context};

/// Holds the lock until dropped (i.e. until the process exits).
pub struct DataDirLock {
    _file: File,
}

pub fn lock(dir: &Path) -> anyhow::Result<DataDirLock> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let path = dir.join("lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            // A Pyrite holding the lock wrote its pid in it; another program may not have.
            let pid = match holder.trim() {
                "" => String::new(),
                pid => format!(" (pid {pid})"),
            };
            bail!("data directory {} is in use by another process{pid}: {} is locked", dir.display(), path.display());
        }
        Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    Ok(DataDirLock { _file: file })
}

/// Checks that the write-ahead log under `dir` was written by `shards` shards, and records
/// the count for a new log.
pub fn check_shard_layout(dir: &Path, shards: usize) -> anyhow::Result<()> {
    let wal = dir.join("wal");
    fs::create_dir_all(&wal).with_context(|| format!("cannot create {}", wal.display()))?;
    let record = wal.join("shards");
    let recorded = match fs::read_to_string(&record) {
        // Empty: a crash came between creating the record and writing it.
        Ok(text) if text.trim().is_empty() => None,
        Ok(text) => Some(
            text.trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .with_context(|| format!("{} does not hold a shard count: {:?}", record.display(), text.trim()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", record.display())),
    };
    match recorded {
        Some(written) if written != shards => bail!(
            "the data in {} was written by {written} shards; start with --shards={written} \
             (changing the shard count of existing data is not supported yet)",
            dir.display()
        ),
        Some(_) => Ok(()),
        None => {
            // Without the record (lost, or deleted by hand), the shards' directories tell.
            if let Some(found) = shard_dirs(dir).filter(|&found| found != shards) {
                bail!(
                    "the data in {} holds the directories of {found} shards, and {} is missing; \
                     start with --shards={found}, which writes it again",
                    dir.display(),
                    record.display()
                );
            }
            // Written beside and renamed, so that a crash leaves the record whole or absent.
            let written = wal.join("shards.tmp");
            fs::write(&written, format!("{shards}\n"))
                .and_then(|()| fs::rename(&written, &record))
                .with_context(|| format!("cannot write {}", record.display()))
        }
    }
}

/// How many shards wrote the data under `dir`, from the highest numbered directory in `wal/`
/// or `blocks/`; None if there is none.
fn shard_dirs(dir: &Path) -> Option<usize> {
    let numbered = |sub: &str| -> Vec<usize> {
        let Ok(entries) = fs::read_dir(dir.join(sub)) else { return Vec::new() };
        let dirs = entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir()));
        dirs.filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
    };
    numbered("wal").into_iter().chain(numbered("blocks")).max().map(|highest| highest.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_shard_record_is_written_again_and_a_wrong_one_refused() {
        let dir = std::env::temp_dir().join(format!("pyrite-datadir-{}", std::process::id()));
        let record = dir.join("wal/shards");
        check_shard_layout(&dir, 2).unwrap();
        assert_eq!(fs::read_to_string(&record).unwrap(), "2\n");
        // A crash between creating the record and writing it.
        fs::write(&record, "").unwrap();
        check_shard_layout(&dir, 2).unwrap();
        assert_eq!(fs::read_to_string(&record).unwrap(), "2\n");
        let refused = check_shard_layout(&dir, 3).unwrap_err().to_string();
        assert!(refused.contains("start with --shards=2"), "{refused}");
        fs::write(&record, "0\n").unwrap();
        let refused = check_shard_layout(&dir, 2).unwrap_err().to_string();
        assert!(refused.contains("does not hold a shard count"), "{refused}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
