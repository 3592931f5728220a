//! `scrape_failure_log_file` (upstream 3.x; in `global`, the scrape configs' default, and in each
//! scrape config): every scrape that failed to fetch its target (refused connection, time-out,
//! HTTP status, body over its limit) is logged to its job's file as one JSON line in
//! upstream's form: `time`, `level` (`ERROR`), `msg` (the error), `job_name` and `target` (the
//! URL). A body that does not parse is not logged, as upstream logs only the fetch's errors.
//!
//! The files are opened again at each configuration load, so that a rotated log is followed
//! after a reload, as upstream's; one that cannot be opened refuses the configuration. Each is
//! a [`LineLog`], whose thread writes the lines, as the query log's ([`crate::query_log`]): a
//! scrape on a shard's thread never waits for the disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pyrite_core::config::Config;
use serde_json::json;

use crate::line_log::LineLog;

/// The open failure logs, by path.
static LOGS: Mutex<BTreeMap<PathBuf, LineLog>> = Mutex::new(BTreeMap::new());

/// Every failure log `config`'s scrape configs name, opened, to [`install`] once the rest of the
/// configuration is taken: a configuration refused later keeps the logs in use.
pub fn open(config: &Config) -> Result<BTreeMap<PathBuf, LineLog>, String> {
    let mut files = BTreeMap::new();
    for path in config.scrape_configs.iter().filter_map(|sc| sc.scrape_failure_log_file.as_ref()) {
        if files.contains_key(path) {
            continue;
        }
        let file = LineLog::open(path)
            .map_err(|e| format!("cannot open the scrape failure log file {}: {e}", path.display()))?;
        files.insert(path.clone(), file);
    }
    Ok(files)
}

/// Makes `files` the failure logs; those in use are let go (their lines written) outside the
/// lock, which scrapes take.
pub fn install(files: BTreeMap<PathBuf, LineLog>) {
    let old = std::mem::replace(&mut *LOGS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()), files);
    drop(old);
}

/// Logs that the scrape of `target` (its URL) of `job` failed with `error` to `path`, if that
/// log is open; a failed write is reported by the log's thread.
pub fn log(path: &Path, job: &str, target: &str, error: &str) {
    let logs = LOGS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(file) = logs.get(path) else { return };
    let mut line = line(crate::clock::now_ms(), job, target, error).to_string();
    line.push('\n');
    file.append(line);
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
        // Installing none lets the logs go once their threads have written what they hold.
        install(BTreeMap::new());
        let written = std::fs::read_to_string(dir.join("b.log")).unwrap();
        let logged: serde_json::Value = serde_json::from_str(written.trim_end()).unwrap();
        assert_eq!((logged["msg"].as_str(), logged["job_name"].as_str()), (Some("connection refused"), Some("b")));
        assert_eq!((logged["level"].as_str(), logged["target"].as_str()), (Some("ERROR"), Some("http://h:1/metrics")));
        assert!(written.ends_with("}\n") && written.lines().count() == 1, "{written}");
        std::fs::remove_dir_all(&dir).unwrap();
        let Err(e) = open(&config) else { panic!("a log in a missing directory is refused") };
        assert!(e.starts_with("cannot open the scrape failure log file"), "{e}");
    }
}
