//! `--web.config.file`: the web configuration in force, re-read when it changes.
//!
//! Upstream re-reads the file for every connection (TLS) and request (users, headers) so that
//! edits and rotated certificates apply without a restart. Pyrite does the same at the cost of
//! a few `stat` calls: each new connection and each request asks for
//! [`WebConfigFile::current`], which reloads only when the file, or a certificate, key or CA
//! file it names, has a new modification time, size or inode.
//! A file that cannot be used at start-up stops the server with an error naming the file and
//! the key; later, the last good configuration stays in force and the problem is logged once
//! per change. TLS cannot be switched on or off while running (the port's scheme would change
//! under its clients); such an edit is refused the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::http::{HeaderName, HeaderValue};
use pyrite_core::config::{ConfigError, WebConfig};
use thiserror::Error;

use super::tls::{self, TlsError};

/// Why the web configuration cannot be used. Each message is whole (the file, the key, the
/// cause), so no error is chained as a source.
#[derive(Debug, Error)]
pub enum WebConfigError {
    #[error("unable to read web config file {file}: {error}")]
    Read { file: String, error: std::io::Error },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{file}: tls_server_config.{error}")]
    Tls { file: String, error: TlsError },
    #[error("{file}: http_server_config.headers.{name}: invalid header value")]
    Header { file: String, name: String },
    #[error("{file}: TLS cannot be switched on or off while running; restart to apply")]
    TlsToggled { file: String },
}

/// The web configuration in force, ready for connections.
pub struct ActiveWebConfig {
    /// The TLS server configuration; None: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Set on every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// User -> bcrypt hash; empty: no authentication.
    pub users: BTreeMap<String, String>,
}

/// What identifies a version of a file: modification time, size and inode (None: missing).
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

struct State {
    active: Arc<ActiveWebConfig>,
    /// The files the active configuration came from: the web config file first.
    files: Arc<[PathBuf]>,
    /// Their stamps when last read (successfully or not).
    stamps: Vec<Stamp>,
}

/// The web configuration file, and the configuration last read from it.
pub struct WebConfigFile {
    path: PathBuf,
    state: Mutex<State>,
}

impl WebConfigFile {
    /// Reads the file at start-up.
    pub fn load(path: &Path) -> Result<WebConfigFile, WebConfigError> {
        let (active, files) = read(path)?;
        let stamps = files.iter().map(|f| stamp(f)).collect();
        Ok(WebConfigFile {
            path: path.to_path_buf(),
            state: Mutex::new(State { active: Arc::new(active), files: files.into(), stamps }),
        })
    }

    /// Whether connections are served over TLS (fixed at start-up).
    pub fn tls(&self) -> bool {
        self.current().tls.is_some()
    }

    /// The configuration for a new connection or request: the file is read again if it, or a
    /// file it names, has changed since it was last read.
    pub fn current(&self) -> Arc<ActiveWebConfig> {
        // The `stat` calls run outside the lock, which every shard takes for every request.
        let files = self.state.lock().unwrap_or_else(|e| e.into_inner()).files.clone();
        let stamps: Vec<Stamp> = files.iter().map(|f| stamp(f)).collect();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if stamps == state.stamps || !Arc::ptr_eq(&files, &state.files) {
            // Unchanged, or another thread has just reloaded.
            return state.active.clone();
        }
        let reloaded = read(&self.path).and_then(|(active, files)| {
            if active.tls.is_some() != state.active.tls.is_some() {
                return Err(WebConfigError::TlsToggled { file: self.path.display().to_string() });
            }
            Ok((active, files))
        });
        match reloaded {
            Ok((active, files)) => {
                tracing::info!(file = %self.path.display(), "web config file reloaded");
                state.stamps = files.iter().map(|f| stamp(f)).collect();
                state.files = files.into();
                state.active = Arc::new(active);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot use the changed web config file; the last good one stays in force");
                state.stamps = stamps;
            }
        }
        state.active.clone()
    }
}

/// Reads and checks the configuration at `path`, its certificates included; also returns the
/// files it came from.
fn read(path: &Path) -> Result<(ActiveWebConfig, Vec<PathBuf>), WebConfigError> {
    let file = path.display().to_string();
    let text = crate::files::read_text(path).map_err(|error| WebConfigError::Read { file: file.clone(), error })?;
    let config = WebConfig::parse(&text, &file)?;
    let mut files = vec![path.to_path_buf()];
    let tls = match &config.tls {
        Some(t) => {
            files.extend(t.files().map(Path::to_path_buf));
            Some(tls::server_config(t).map_err(|error| WebConfigError::Tls { file: file.clone(), error })?)
        }
        None => None,
    };
    let headers = config
        .headers
        .iter()
        .map(|(name, value)| {
            let invalid = || WebConfigError::Header { file: file.clone(), name: name.clone() };
            Ok((
                HeaderName::try_from(name.as_str()).map_err(|_| invalid())?,
                HeaderValue::try_from(value).map_err(|_| invalid())?,
            ))
        })
        .collect::<Result<_, WebConfigError>>()?;
    Ok((ActiveWebConfig { tls, headers, users: config.basic_auth_users }, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

    #[test]
    fn edits_apply_and_a_broken_edit_keeps_the_last_good_configuration() {
        let dir = std::env::temp_dir().join(format!("pyrite-web-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("web.yml");
        std::fs::write(&path, format!("basic_auth_users:\n  alice: {HASH}\n")).unwrap();
        let file = WebConfigFile::load(&path).unwrap();
        assert!(!file.tls());
        assert_eq!(file.current().users.len(), 1);
        std::fs::write(&path, format!("basic_auth_users:\n  alice: {HASH}\n  bob: {HASH}\n")).unwrap();
        assert_eq!(file.current().users.len(), 2, "a longer file is a change");
        std::fs::write(&path, "basic_auth_users:\n  carol: plain\n").unwrap();
        assert_eq!(file.current().users.len(), 2, "the last good configuration stays");
        std::fs::write(&path, "http_server_config:\n  headers:\n    X-Frame-Options: deny\n").unwrap();
        let active = file.current();
        assert_eq!((active.users.len(), active.headers.len()), (0, 1));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(file.current().headers.len(), 1, "a vanished file keeps the last good configuration");
        let missing = WebConfigFile::load(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(missing.starts_with("unable to read web config file"), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
