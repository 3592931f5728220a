//! The data directory and its lock.
//!
//! Two servers writing one directory would corrupt it, so the directory is locked with an
//! advisory `flock` on `<dir>/lock` for the life of the process; a second Pyrite on the same
//! directory is refused at start with the holder's pid.

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
            bail!(
                "data directory {} is in use by another process (pid {}): {} is locked",
                dir.display(),
                holder.trim(),
                path.display()
            );
        }
        Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    Ok(DataDirLock { _file: file })
}
