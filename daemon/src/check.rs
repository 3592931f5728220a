//! `pyrite check config|rules|web-config FILE...`: validate configuration, rule and web
//! configuration files as `promtool check` does, printing its lines and exiting 1 if any file is
//! invalid (3 if only lints failed it, under `--lint-fatal`). `check config` checks the files a
//! configuration names too, as promtool does: rule files, since the server refuses to start on an
//! invalid one, credentials and certificates, and discovery files with the targets they hold.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use pyrite_core::config::Config;
use pyrite_core::discovery::TargetGroup;
use pyrite_core::labels::NameValidation;
use pyrite_core::promql::ParseOptions;
use pyrite_core::rules::RuleFile;

/// What a check found, worst last, as promtool's exit code tells it: 0 when valid (lint
/// findings are printed but pass), 3 when lint findings fail it (`--lint-fatal`), 1 when a file
/// is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Valid,
    Linted,
    Invalid,
}

impl From<Verdict> for ExitCode {
    fn from(verdict: Verdict) -> ExitCode {
        ExitCode::from(match verdict {
            Verdict::Valid => 0,
            Verdict::Invalid => 1,
            Verdict::Linted => 3,
        })
    }
}

/// The lints of rule files (promtool's `--lint` and `--lint-fatal`): `duplicate-rules` is the
/// only one, and the default.
#[derive(Debug, Clone, Copy)]
pub struct RuleLint {
    pub duplicate_rules: bool,
    pub fatal: bool,
}

impl RuleLint {
    /// The lints a comma-separated `--lint` names (`all`, `duplicate-rules`, `none`); an
    /// unknown one is warned about and skipped, as promtool does.
    pub fn parse(options: &str, fatal: bool) -> RuleLint {
        let mut lint = RuleLint { duplicate_rules: false, fatal };
        for option in options.split(',').filter(|o| !o.is_empty()) {
            match option {
                "all" | "duplicate-rules" => lint.duplicate_rules = true,
                "none" => {}
                other => println!("WARNING: unknown lint option: {other:?}"),
            }
        }
        lint
    }

    /// What a lint finding makes of a check.
    fn verdict(self) -> Verdict {
        if self.fatal {
            Verdict::Linted
        } else {
            Verdict::Valid
        }
    }
}

/// Checks each file with `check` (text, name → the success line, or what the failure makes of
/// the check and its report); prints promtool's report and returns the worst verdict.
fn check_files(files: &[PathBuf], mut check: impl FnMut(&str, &str) -> Result<String, (Verdict, String)>) -> Verdict {
    let mut worst = Verdict::Valid;
    for file in files {
        let name = file.display().to_string();
        println!("Checking {name}");
        match crate::files::read_text(file)
            .map_err(|e| (Verdict::Invalid, format!("  FAILED: {name}: {e}")))
            .and_then(|text| check(&text, &name))
        {
            Ok(success) => println!("{success}"),
            Err((verdict, failure)) => {
                eprintln!("{failure}");
                worst = worst.max(verdict);
            }
        }
        println!();
    }
    worst
}

/// How `check config` checks, as promtool's flags say.
#[derive(Debug, Clone, Copy)]
pub struct ConfigCheck {
    /// `--agent`: fields agent mode refuses fail the file.
    pub agent: bool,
    /// `--syntax-only`: the file alone, not the files it names.
    pub syntax_only: bool,
    /// `--lint`, `--lint-fatal`: the lints of the rule files it names.
    pub lint: RuleLint,
}

/// As `promtool check config`: each file; then, unless `syntax_only`, the files it names (see
/// [`named_files`]) and the rule files its `rule_files` name (resolved against the file's
/// directory), each as `check rules` checks it with `lint`.
pub fn config_files(files: &[PathBuf], options: ConfigCheck) -> Verdict {
    let invalid = |e: String| (Verdict::Invalid, format!("  FAILED: {e}"));
    let mut worst = Verdict::Valid;
    for file in files {
        let mut rules = Vec::new();
        worst = worst.max(check_files(std::slice::from_ref(file), |text, name| {
            let mut config = Config::parse(text, name).map_err(|e| invalid(e.to_string()))?;
            if options.agent {
                config.check_agent(name).map_err(|e| invalid(e.to_string()))?;
            }
            if !options.syntax_only {
                crate::live_config::include_scrape_config_files(&mut config)
                    .map_err(|e| invalid(format!("error loading scrape configs: {e}")))?;
            }
            let jobs = config.scrape_configs.len();
            let syntax = format!(" SUCCESS: {name} is valid prometheus config file syntax ({jobs} scrape configs)");
            if options.syntax_only {
                // promtool checks static targets even then.
                targets_survive_relabeling(&config, &BTreeMap::new()).map_err(invalid)?;
                return Ok(syntax);
            }
            rules = named_rule_files(&config.rule_files).map_err(invalid)?;
            let warnings = named_files(&config).map_err(invalid)?;
            let found = match rules.len() {
                0 => String::new(),
                n => format!("  SUCCESS: {n} rule files found\n"),
            };
            Ok(format!("{warnings}{found}{syntax}"))
        }));
        // promtool prints each error of these with `Println("    ", error)`.
        worst = worst.max(check_rule_files(&rules, options.lint, "     "));
    }
    worst
}

/// The other files a configuration names, checked as promtool checks them: each scrape
/// config's credentials and client certificate files exist; the `file_sd_configs` files of
/// scrape configs and Alertmanagers read as discovery reads them; and every static and file
/// target survives its scrape config's relabeling. A file pattern matching nothing is a
/// warning, returned as the lines to print.
fn named_files(config: &Config) -> Result<String, String> {
    let exists = |what: &str, file: Option<&PathBuf>| match file {
        Some(path) => {
            std::fs::metadata(path).map(drop).map_err(|e| format!("error checking {what} {:?}: {e}", path.display()))
        }
        None => Ok(()),
    };
    let mut warnings = String::new();
    let mut discovered = BTreeMap::new();
    for sc in &config.scrape_configs {
        let credentials = sc.http.authorization.as_ref().and_then(|a| a.credentials_file.as_ref());
        exists("authorization credentials or bearer token file", credentials)?;
        exists("client cert file", sc.http.tls.cert_file.as_ref())?;
        exists("client key file", sc.http.tls.key_file.as_ref())?;
        let whose = format!("scrape job {:?}", sc.job_name);
        let groups = file_sd_groups(sc.file_sd_configs.iter().flat_map(|f| &f.files), &whose, &mut warnings)?;
        discovered.insert(sc.job_name.clone(), groups);
    }
    for am in &config.alerting.alertmanagers {
        file_sd_groups(
            am.discovery.file_sd_configs.iter().flat_map(|f| &f.files),
            "alertmanager config",
            &mut warnings,
        )?;
    }
    targets_survive_relabeling(config, &discovered)?;
    Ok(warnings)
}

/// Every static target of `config`, and every target of the groups `discovered` by job,
/// survives its scrape config's relabeling; else the first that does not, and why.
fn targets_survive_relabeling(config: &Config, discovered: &BTreeMap<String, Vec<TargetGroup>>) -> Result<(), String> {
    match pyrite_core::scrape::targets_from_config(config, discovered).invalid.into_iter().next() {
        Some(target) => Err(target),
        None => Ok(()),
    }
}

/// The target groups of the files `patterns` match; a pattern matching none adds a warning
/// naming `whose` patterns they are.
fn file_sd_groups<'a>(
    patterns: impl Iterator<Item = &'a String>,
    whose: &str,
    warnings: &mut String,
) -> Result<Vec<TargetGroup>, String> {
    let mut groups = Vec::new();
    for pattern in patterns {
        let files: Vec<PathBuf> =
            crate::files::expand_glob(pattern).into_iter().filter(|f| f.symlink_metadata().is_ok()).collect();
        if files.is_empty() {
            warnings.push_str(&format!("  WARNING: file {pattern:?} for file_sd in {whose} does not exist\n"));
        }
        for file in files {
            let found = crate::discovery::read_file(&file, &file.display().to_string())
                .map_err(|e| format!("checking SD file {pattern:?}: {e}"))?;
            groups.extend(found);
        }
    }
    Ok(groups)
}

/// The rule files `patterns` name now, as promtool finds them: a pattern without `*` names a
/// file that must exist; one with `*` may match nothing.
fn named_rule_files(patterns: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for pattern in patterns {
        let found = crate::live_config::named_paths(pattern);
        if found.is_empty() && !pattern.contains('*') {
            return Err(format!("{pattern:?} does not point to an existing file"));
        }
        files.extend(found);
    }
    Ok(files)
}

/// As `promtool check rules`: each file's names judged by `utf8`, as promtool does whatever a
/// server's configuration says, then `lint`.
pub fn rule_files(files: &[PathBuf], lint: RuleLint) -> Verdict {
    check_rule_files(files, lint, "")
}

/// [`rule_files`], each error report starting with `error_prefix`.
fn check_rule_files(files: &[PathBuf], lint: RuleLint, error_prefix: &str) -> Verdict {
    check_files(files, |text, name| {
        let rules = RuleFile::parse(text, name, ParseOptions::default(), NameValidation::Utf8)
            .map_err(|e| (Verdict::Invalid, format!("  FAILED:\n{error_prefix}{e}")))?;
        let duplicates = if lint.duplicate_rules { rules.duplicates() } else { Vec::new() };
        if !duplicates.is_empty() {
            let report = duplicates_report(&duplicates);
            return Err((lint.verdict(), format!("  FAILED:\n{error_prefix}lint error {report}")));
        }
        Ok(format!("  SUCCESS: {} rules found", rules.rule_count()))
    })
}

/// promtool's report of duplicate rules.
fn duplicates_report(duplicates: &[(&str, BTreeMap<&str, &str>)]) -> String {
    let mut report = format!("{} duplicate rule(s) found.\n", duplicates.len());
    for (name, labels) in duplicates {
        report.push_str(&format!("Metric: {name}\nLabel(s):\n"));
        for (label, value) in labels {
            report.push_str(&format!("\t{label}: {value}\n"));
        }
    }
    report + "Might cause inconsistency while recording expressions"
}

/// As `promtool check web-config`: one line per file on stderr; certificates and keys are
/// loaded too.
pub fn web_config_files(files: &[PathBuf]) -> Verdict {
    let mut worst = Verdict::Valid;
    for file in files {
        match crate::http::web_config::WebConfigFile::load(file) {
            Ok(_) => eprintln!("{} SUCCESS", file.display()),
            Err(e) => {
                eprintln!("{} FAILED: {e}", file.display());
                worst = Verdict::Invalid;
            }
        }
    }
    worst
}
