//! A rule file through the rule-file parser and its checks (expressions, templates, names).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrite_core::labels::NameValidation;
use pyrite_core::promql::ParseOptions;
use pyrite_core::rules::RuleFile;

fuzz_target!(|text: &str| {
    let _ = RuleFile::parse(text, "rules.yml", ParseOptions::default(), NameValidation::Utf8);
});
