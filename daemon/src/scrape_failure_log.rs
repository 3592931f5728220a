//! `scrape_failure_log_file` (upstream 3.x; in `global`, the scrape configs' default, and in each
//! scrape config): every scrape that failed to fetch its target (refused connection, time-out,
//! HTTP status, body over its limit) is logged to its job's file as one JSON line in
//! upstream's form: `time`, `level` (`ERROR`), `msg` (the error), `job_name` and `target` (the
//! URL). A body that does not parse is not logged, as upstream logs only the fetch's errors.
//!
//! The files are opened again at each configuration load, so that a rotated log is followed
//! after a reload, as upstream's; one that cannot be opened refuses the configuration. Lines
//! are written under one lock with one `write(2)` each (`O_APPEND`), on the shard of the
//! scrape, as the query log is written ([`crate::query_log`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pyrite_core::config::Config;
use serde_json::json;

/// The open failure logs, by path.
static LOGS: Mutex<BTreeMap<PathBuf, File>> = Mutex::new(BTreeMap::new());

/// Every failure log `config`'s scrape configs name, opened, to [`install`] once the rest of the
/// configuration is taken: a configuration refused later keeps the logs in use.
pub fn open(config: &Config) -> Result<BTreeMap<PathBuf, File>, String> {
    let mut files = BTreeMap::new();
    for path in config.scrape_configs.iter().filter_map(|sc| sc.scrape_failure_log_file.as_ref()) {
        if files.contains_key(path) {
            continue;
        }
        let file = crate::files::open_append(path)
            .map_err(|e| format!("cannot open the scrape failure log file {}: {e}", path.display()))?;
        files.insert(path.clone(), file);
    }
    Ok(files)
}

/// Makes `files` the failure logs (closing those in use).
pub fn install(files: BTreeMap<PathBuf, File>) {
    *LOGS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = files;
}

/// Logs that the scrape of `target` (its URL) of `job` failed with `error` to `path`, if that
/// log is open; a failed write is reported, and the failure is not.
pub fn log(path: &Path, job: &str, target: &str, error: &str) {
    let mut logs = LOGS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(file) = logs.get_mut(path) else { return };
    let mut line = line(crate::clock::now_ms(), job, target, error).to_string();
    line.push('\n');
    if let Err(e) = file.write_all(line.as_bytes()) {
        tracing::warn!(file = %path.display(), error = %e, "cannot write to the scrape failure log file");
    }
}

/// The JSON object logged at `now` (Unix ms).
fn line(now: i64, job: &str, target: &str, error: &str) -> serde_json::Value {
    json!({
        "time": pyrite_core::calendar::rfc3339(now),
        "level": "ERROR",
        "msg": error,
        "job_name": job,
        "target": target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_one_json_line_in_the_file_its_job_names() {
        let dir = std::env::temp_dir().join(format!("pyrite-failure-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = "global: {scrape_failure_log_file: all.log}\nscrape_configs: [{job_name: a}, {job_name: b, scrape_failure_log_file: b.log}, {job_name: c}]\n";
        let config = Config::parse(text, &dir.join("p.yml").display().to_string()).unwrap();
        let files = open(&config).unwrap();
        assert_eq!(files.keys().collect::<Vec<_>>(), [&dir.join("all.log"), &dir.join("b.log")]);
        install(files);
        log(&dir.join("b.log"), "b", "http://h:1/metrics", "connection refused");
        log(&dir.join("unknown.log"), "x", "http://h:1/metrics", "not logged");
        let written = std::fs::read_to_string(dir.join("b.log")).unwrap();
        let logged: serde_json::Value = serde_json::from_str(written.trim_end()).unwrap();
        assert_eq!((logged["msg"].as_str(), logged["job_name"].as_str()), (Some("connection refused"), Some("b")));
        assert_eq!((logged["level"].as_str(), logged["target"].as_str()), (Some("ERROR"), Some("http://h:1/metrics")));
        assert!(written.ends_with("}\n") && written.lines().count() == 1, "{written}");
        install(BTreeMap::new());
        std::fs::remove_dir_all(&dir).unwrap();
        let e = open(&config).unwrap_err();
        assert!(e.starts_with("cannot open the scrape failure log file"), "{e}");
    }
}
