//! `pyrite check config|rules|web-config FILE...`: validate configuration, rule and web
//! configuration files as `promtool check` does, printing its lines and exiting 1 if any file is
//! invalid. `check config` checks the rule files a configuration names too, as promtool does,
//! since the server refuses to start on an invalid one.

use std::path::PathBuf;

use pyrite_core::config::Config;
use pyrite_core::promql::ParseOptions;
use pyrite_core::rules::RuleFile;

/// Checks each file with `check` (text, name → the success line, or the failure); prints
/// promtool's report and returns whether every file is valid.
fn check_files(files: &[PathBuf], mut check: impl FnMut(&str, &str) -> Result<String, String>) -> bool {
    let mut all_valid = true;
    for file in files {
        let name = file.display().to_string();
        println!("Checking {name}");
        match crate::files::read_text(file)
            .map_err(|e| format!("  FAILED: {name}: {e}"))
            .and_then(|text| check(&text, &name))
        {
            Ok(success) => println!("{success}"),
            Err(failure) => {
                eprintln!("{failure}");
                all_valid = false;
            }
        }
        println!();
    }
    all_valid
}

/// As `promtool check config`: each file, then the rule files its `rule_files` name (resolved
/// against the file's directory), each as `check rules` checks it. With `agent`, as
/// `promtool check config --agent`: fields agent mode refuses fail the file.
pub fn config_files(files: &[PathBuf], agent: bool) -> bool {
    let mut all_valid = true;
    for file in files {
        let mut rules = Vec::new();
        all_valid &= check_files(std::slice::from_ref(file), |text, name| {
            let config = Config::parse(text, name).map_err(|e| format!("  FAILED: {e}"))?;
            if agent {
                config.check_agent(name).map_err(|e| format!("  FAILED: {e}"))?;
            }
            rules = named_rule_files(&config.rule_files).map_err(|e| format!("  FAILED: {e}"))?;
            let found = match rules.len() {
                0 => String::new(),
                n => format!("  SUCCESS: {n} rule files found\n"),
            };
            let jobs = config.scrape_configs.len();
            Ok(format!("{found} SUCCESS: {name} is valid prometheus config file syntax ({jobs} scrape configs)"))
        });
        all_valid &= rule_files(&rules);
    }
    all_valid
}

/// The rule files `patterns` name now, as promtool finds them: a pattern without `*` names a
/// file that must exist; one with `*` may match nothing.
fn named_rule_files(patterns: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for pattern in patterns {
        let found = crate::live_config::rule_file_paths(pattern);
        if found.is_empty() && !pattern.contains('*') {
            return Err(format!("{pattern:?} does not point to an existing file"));
        }
        files.extend(found);
    }
    Ok(files)
}

pub fn rule_files(files: &[PathBuf]) -> bool {
    check_files(files, |text, name| match RuleFile::parse(text, name, ParseOptions::default()) {
        Ok(rules) => Ok(format!("  SUCCESS: {} rules found", rules.rule_count())),
        Err(e) => Err(format!("  FAILED:\n{e}")),
    })
}

/// As `promtool check web-config`: one line per file on stderr; certificates and keys are
/// loaded too.
pub fn web_config_files(files: &[PathBuf]) -> bool {
    let mut all_valid = true;
    for file in files {
        match crate::http::web_config::WebConfigFile::load(file) {
            Ok(_) => eprintln!("{} SUCCESS", file.display()),
            Err(e) => {
                eprintln!("{} FAILED: {e}", file.display());
                all_valid = false;
            }
        }
    }
    all_valid
}
