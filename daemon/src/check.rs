//! `pyrite check config|rules|web-config FILE...`: validate configuration, rule and web
//! configuration files as `promtool check` does, printing its lines and exiting 1 if any file is
//! invalid.

use std::path::PathBuf;

use pyrite_core::config::Config;
use pyrite_core::promql::ParseOptions;
use pyrite_core::rules::RuleFile;

/// Checks each file with `check` (text, name → the success line, or the failure); prints
/// promtool's report and returns whether every file is valid.
fn check_files(files: &[PathBuf], check: impl Fn(&str, &str) -> Result<String, String>) -> bool {
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

pub fn config_files(files: &[PathBuf]) -> bool {
    check_files(files, |text, name| match Config::parse(text, name) {
        Ok(config) => {
            let jobs = config.scrape_configs.len();
            Ok(format!(" SUCCESS: {name} is valid prometheus config file syntax ({jobs} scrape configs)"))
        }
        Err(e) => Err(format!("  FAILED: {e}")),
    })
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
