//! A `prometheus.yml` through the configuration parser and its validation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrite_core::config::Config;

fuzz_target!(|text: &str| {
    let _ = Config::parse(text, "prometheus.yml");
});
