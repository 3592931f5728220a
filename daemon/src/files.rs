//! Reading the files an operator names: the configuration, rule files, file_sd files, the web
//! configuration and the certificates and keys they name, and the glob patterns that name them.
//!
//! Such a file can be anything a path can point at, and can be replaced by anything while the
//! server runs. Only regular files are read, and at most [`MAX_FILE_BYTES`] of one: a file_sd
//! path that is a symlink to `/dev/zero` would otherwise be read until memory ran out. A path is
//! checked before it is opened, then opened without blocking and checked again, so a FIFO put
//! in its place between the two is refused rather than waited on for ever (which held every
//! shard when the web configuration was re-read on a request). A `/proc` file passes for a
//! regular one: one whose reads would block (`/proc/kmsg`) fails instead of holding the
//! reading thread, though reading it drains what it holds.

use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Largest file read; far beyond any configuration or target list (250,000 targets in a file_sd
/// JSON file take about 20 MiB).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// The bytes of the regular file at `path` (symlinks followed). Errors name what is wrong, not
/// the path: callers add it.
pub fn read_bytes(path: &Path) -> io::Result<Vec<u8>> {
    let not_regular = || io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
    // Checked before opening too: opening a device can act (a watchdog arms, a tape rewinds).
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let flags = libc::O_NONBLOCK | libc::O_NOCTTY;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    let mut bytes = Vec::new();
    let read = file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if read as u64 > MAX_FILE_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    Ok(bytes)
}

/// The certificates in PEM text.
pub fn certificates_in(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().map_err(|e| e.to_string())
}

/// The certificates in the PEM file at `path`, as [`read_bytes`] reads it.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    certificates_in(&read_bytes(path).map_err(|e| e.to_string())?)
}

/// The private key in PEM text.
pub fn private_key_in(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| e.to_string())
}

/// The private key in the PEM file at `path`, as [`read_bytes`] reads it.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    private_key_in(&read_bytes(path).map_err(|e| e.to_string())?)
}

/// The text of the regular file at `path`, as [`read_bytes`] reads it.
pub fn read_text(path: &Path) -> io::Result<String> {
    String::from_utf8(read_bytes(path)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
}

/// The files a pattern names now, as Go's `filepath.Glob` (upstream's `rule_files` and
/// `file_sd_configs`): a pattern without `*`, `?` or `[` is the path itself (a caller reading
/// it reports it missing), otherwise the existing paths it matches, sorted; `*` and `?` do not
/// match `/`, a class is `[a-z]`, negated `[!a-z]` or `[^a-z]`. A malformed pattern names no
/// file, as one naming none.
///
/// Two of the glob crate's readings differ from Go's and are translated first: it takes `[^`
/// as a class holding `^`, and `**` as an element matching any depth, which would walk a whole
/// tree (`/**/x.yml`: the file system) at every discovery refresh; in Go a run of stars is one
/// star.
pub fn expand_glob(pattern: &str) -> Vec<PathBuf> {
    if !pattern.contains(['*', '?', '[']) {
        return vec![PathBuf::from(pattern)];
    }
    let mut go = pattern.replace("[^", "[!");
    while go.contains("**") {
        go = go.replace("**", "*");
    }
    let options = glob::MatchOptions { case_sensitive: true, require_literal_separator: true, ..Default::default() };
    glob::glob_with(&go, options).map(|paths| paths.flatten().collect()).unwrap_or_default()
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
        let fifo = dir.join("fifo.yml");
        let path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        assert_eq!(read_text(&fifo).unwrap_err().to_string(), "not a regular file", "refused, not waited on");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn globs_match_like_filepath_glob_with_character_classes() {
        let dir = std::env::temp_dir().join(format!("pyrite-glob-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for name in ["node-1.yml", "node-2.yml", "node-x.yml", "targets.json", ".hidden.json", "sub/deep.json"] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        let names = |pattern: &str| -> Vec<String> {
            let found = expand_glob(&format!("{}/{pattern}", dir.display()));
            found.iter().map(|p| p.strip_prefix(&dir).unwrap().display().to_string()).collect()
        };
        assert_eq!(names("node-[0-9].yml"), ["node-1.yml", "node-2.yml"]);
        assert_eq!(names("node-[!0-9].yml"), ["node-x.yml"]);
        assert_eq!(names("node-[^0-9].yml"), ["node-x.yml"]);
        assert_eq!(names("node-?.yml"), ["node-1.yml", "node-2.yml", "node-x.yml"]);
        assert_eq!(names("*.json"), [".hidden.json", "targets.json"]);
        assert_eq!(names("*/*.json"), ["sub/deep.json"]);
        // As in Go, `**` is `*`: one element, not a walk of the tree.
        assert_eq!(names("**/*.json"), ["sub/deep.json"]);
        assert_eq!(names("***.json"), [".hidden.json", "targets.json"]);
        // A pattern naming no file names none; a literal path is itself, existing or not.
        assert!(names("*.yaml").is_empty());
        assert!(names("node-[").is_empty());
        assert_eq!(names("missing.yml"), ["missing.yml"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
