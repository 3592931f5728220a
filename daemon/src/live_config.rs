//! The configuration in force: where it comes from (a file, or the embedded default), the
//! rule files it names, how the last (re)load went. Subsystems read the current configuration
//! from here; a reload (`reload.rs`) replaces it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pyrite_core::config::{Config, ConfigError};
use pyrite_core::labels::NameValidation;
use pyrite_core::promql::ParseOptions;
use pyrite_core::rules::{RuleFile, RuleFileError};

use crate::clock::now_ms;
use crate::metrics::Metrics;

/// Where the configuration comes from: the file, or the embedded default pointed at this
/// server's own address and `/metrics` under its route prefix.
pub struct ConfigSource {
    pub file: Option<PathBuf>,
    /// `host:port` at which this server scrapes itself in the default configuration.
    pub self_address: String,
    pub metrics_path: String,
    /// Agent mode: the configuration may not name rules, Alertmanagers or remote reads.
    pub agent: bool,
}

/// A configuration and the rule files it names, both valid.
pub struct Loaded {
    pub config: Config,
    pub rules: Vec<(String, RuleFile)>,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    /// The file is not a valid configuration (the message names the file and the key).
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("error loading rules: {0}")]
    Rules(RuleLoadError),
}

/// Why the rule files could not be loaded: the first that is not valid.
#[derive(Debug, thiserror::Error)]
pub enum RuleLoadError {
    #[error("{}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    #[error(transparent)]
    Invalid(#[from] RuleFileError),
}

impl ConfigSource {
    /// Reads and checks the configuration and its rule files.
    pub fn load(&self, options: ParseOptions) -> Result<Loaded, LoadError> {
        let config = self.load_config()?;
        let rules =
            load_rule_files(&config.rule_files, options, config.global.names.validation).map_err(LoadError::Rules)?;
        Ok(Loaded { config, rules })
    }

    fn load_config(&self) -> Result<Config, LoadError> {
        let (text, name) = match &self.file {
            Some(path) => {
                let text =
                    crate::files::read_text(path).map_err(|error| LoadError::Read { path: path.clone(), error })?;
                (text, path.display().to_string())
            }
            None => (
                include_str!("default_config.yml")
                    .replace("SELF_ADDRESS", &self.self_address)
                    .replace("SELF_METRICS_PATH", &self.metrics_path),
                "the embedded default configuration".into(),
            ),
        };
        let mut config = Config::parse(&text, &name)?;
        if self.agent {
            config.check_agent(&name)?;
        }
        include_scrape_config_files(&mut config)?;
        Ok(config)
    }
}

/// Reads the files `config`'s `scrape_config_files` name, pattern by pattern, and adds their
/// scrape configs to it.
pub fn include_scrape_config_files(config: &mut Config) -> Result<(), LoadError> {
    for pattern in config.scrape_config_files.clone() {
        for path in named_paths(&pattern) {
            let text = crate::files::read_text(&path).map_err(|error| LoadError::Read { path: path.clone(), error })?;
            config.include_scrape_configs(&text, &path.display().to_string())?;
        }
    }
    Ok(())
}

/// The configuration in force and how the last reload went.
pub struct LiveConfig {
    source: ConfigSource,
    /// The rule files read at start, until they are applied.
    initial_rules: Mutex<Vec<(String, RuleFile)>>,
    current: Mutex<Arc<Config>>,
    /// (whether the last load succeeded, Unix ms of the last success).
    last: Mutex<(bool, i64)>,
    /// Serialises reloads (SIGHUP and `/-/reload` may come together).
    reloading: Mutex<()>,
}

impl LiveConfig {
    pub fn new(source: ConfigSource, loaded: Loaded) -> Self {
        let Loaded { config, rules } = loaded;
        LiveConfig {
            source,
            initial_rules: Mutex::new(rules),
            current: Mutex::new(Arc::new(config)),
            last: Mutex::new((true, now_ms())),
            reloading: Mutex::new(()),
        }
    }

    pub fn current(&self) -> Arc<Config> {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the last (re)load succeeded, and when the last success was (Unix ms).
    pub fn last_reload(&self) -> (bool, i64) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records how a (re)load went.
    pub fn record(&self, metrics: &Metrics, ok: bool) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.0 = ok;
        if ok {
            last.1 = now_ms();
        }
        metrics.config_reload_successful.set(i64::from(ok));
        metrics.config_reload_success_time.set(last.1 / 1000);
    }

    /// Makes `config` the configuration in force.
    pub fn replace(&self, config: Arc<Config>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = config;
    }

    /// The rule files read at start; empty once taken.
    pub fn take_initial_rules(&self) -> Vec<(String, RuleFile)> {
        std::mem::take(&mut *self.initial_rules.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Holds off other reloads while the guard lives (SIGHUP and `/-/reload` may come together).
    pub fn one_at_a_time(&self) -> std::sync::MutexGuard<'_, ()> {
        self.reloading.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads and checks the configuration file and its rule files again.
    pub fn load(&self, options: ParseOptions) -> Result<Loaded, LoadError> {
        self.source.load(options)
    }
}

/// Reads the files that `patterns` name (a pattern naming no file names none, as upstream's
/// glob), their names judged by `names` (the global scheme); the first file that is not valid
/// fails them all.
pub fn load_rule_files(
    patterns: &[String],
    options: ParseOptions,
    names: NameValidation,
) -> Result<Vec<(String, RuleFile)>, RuleLoadError> {
    let mut out: Vec<(String, RuleFile)> = Vec::new();
    for path in patterns.iter().flat_map(|p| named_paths(p)) {
        let name = path.display().to_string();
        // A file two patterns name is loaded once: upstream keys groups by file and name.
        if out.iter().any(|(loaded, _)| *loaded == name) {
            continue;
        }
        let text = crate::files::read_text(&path).map_err(|error| RuleLoadError::Read { path: path.clone(), error })?;
        out.push((name.clone(), RuleFile::parse(&text, &name, options, names)?));
    }
    Ok(out)
}

/// The files a `rule_files` or `scrape_config_files` pattern names (a path that does not exist
/// names no file, as upstream's glob: the server skips it, `pyrite check config` reports a rule
/// file missing). A symlink is named
/// even if it leads nowhere or in a loop, as Go's `Lstat`-based glob names it, so that reading
/// it fails the load rather than dropping its rules without a word.
pub fn named_paths(pattern: &str) -> Vec<PathBuf> {
    crate::files::expand_glob(pattern).into_iter().filter(|p| Path::new(p).symlink_metadata().is_ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_file_two_patterns_name_is_loaded_once() {
        let dir = std::env::temp_dir().join(format!("pyrite-rule-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.yml"), "groups: [{name: g, rules: [{record: r, expr: '1'}]}]\n").unwrap();
        let patterns = [dir.join("a.yml"), dir.join("*.yml")].map(|p| p.display().to_string());
        let loaded = load_rule_files(&patterns, ParseOptions::default(), NameValidation::Utf8);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(loaded.unwrap().len(), 1);
    }

    #[test]
    fn a_dangling_symlink_a_glob_names_fails_the_load() {
        let dir = std::env::temp_dir().join(format!("pyrite-rule-links-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ok.yml"), "groups: []\n").unwrap();
        std::os::unix::fs::symlink(dir.join("gone"), dir.join("gone.yml")).unwrap();
        let pattern = [dir.join("*.yml").display().to_string()];
        let loaded = load_rule_files(&pattern, ParseOptions::default(), NameValidation::Utf8);
        std::fs::remove_dir_all(&dir).unwrap();
        let error = loaded.map(|files| files.len()).unwrap_err().to_string();
        assert!(error.contains("gone.yml: No such file or directory"), "{error}");
    }
}
