//! `pyrite check config FILE...` and `pyrite check rules FILE...`: validate configuration and
//! rule files as `promtool check` does, printing its lines and exiting 1 if any file is invalid.

use std::path::PathBuf;

use pyrite_core::config::Config;
use pyrite_core::promql::ParseOptions;
use pyrite_core::rules::RuleFile;

/// Checks each rule file; returns whether every one is valid.
pub fn rule_files(files: &[PathBuf]) -> bool {
    let mut all_valid = true;
    for file in files {
        let name = file.display().to_string();
        println!("Checking {name}");
        let checked = std::fs::read_to_string(file)
            .map_err(|e| format!("{name}: {e}"))
            .and_then(|text| RuleFile::parse(&text, &name, ParseOptions::default()).map_err(|e| e.to_string()));
        match checked {
            Ok(rules) => println!("  SUCCESS: {} rules found", rules.rule_count()),
            Err(e) => {
                eprintln!("  FAILED:\n{e}");
                all_valid = false;
            }
        }
        println!();
    }
    all_valid
}

/// Checks each file; the report goes to stdout (successes) and stderr (failures). Returns
/// whether every file is valid.
pub fn config_files(files: &[PathBuf]) -> bool {
    let mut all_valid = true;
    for file in files {
        let name = file.display().to_string();
        println!("Checking {name}");
        let checked = std::fs::read_to_string(file)
            .map_err(|e| format!("{name}: {e}"))
            .and_then(|text| Config::parse(&text, &name).map_err(|e| e.to_string()));
        match checked {
            Ok(config) => {
                let jobs = config.scrape_configs.len();
                println!(" SUCCESS: {name} is valid prometheus config file syntax ({jobs} scrape configs)");
            }
            Err(e) => {
                eprintln!("  FAILED: {e}");
                all_valid = false;
            }
        }
        println!();
    }
    all_valid
}
