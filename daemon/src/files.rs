//! Reading the text files an operator names: the configuration, rule files, file_sd files,
//! and the glob patterns that name them.
//!
//! Such a file can be anything a path can point at. Only regular files are read, and at most
//! [`MAX_FILE_BYTES`] of one: a file_sd path that is a symlink to `/dev/zero` would otherwise be
//! read until memory ran out, and a FIFO would block the reading thread for ever.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use pyrite_core::discovery::glob_match;

/// Largest file read; far beyond any configuration or target list (250,000 targets in a file_sd
/// JSON file take about 20 MiB).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// The text of the regular file at `path` (symlinks followed). Errors name what is wrong, not
/// the path: callers add it.
pub fn read_text(path: &Path) -> io::Result<String> {
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut text = String::new();
    let read = std::fs::File::open(path)?.take(MAX_FILE_BYTES + 1).read_to_string(&mut text)?;
    if read as u64 > MAX_FILE_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    Ok(text)
}

/// The files a pattern names now: a literal path, or the matches of a glob in its last element.
pub fn expand_glob(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !name.contains(['*', '?']) {
        return vec![path.to_path_buf()];
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| glob_match(name, n)))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_directories_are_refused_and_files_read() {
        assert_eq!(read_text(Path::new("/dev/zero")).unwrap_err().to_string(), "not a regular file");
        assert_eq!(read_text(Path::new("/")).unwrap_err().to_string(), "not a regular file");
        let dir = std::env::temp_dir().join(format!("pyrite-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("zero.yml");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert_eq!(read_text(&link).unwrap_err().to_string(), "not a regular file");
        let plain = dir.join("targets.yml");
        std::fs::write(&plain, "- targets: ['a:1']\n").unwrap();
        assert_eq!(read_text(&plain).unwrap(), "- targets: ['a:1']\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
