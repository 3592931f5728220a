//! A scrape body through the exposition parser, as text 0.0.4 and as OpenMetrics: every entry,
//! and the labels of every sample (what a scrape ingests).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrite_core::exposition::{parse_series, Entry, Format, TextParser};

fuzz_target!(|body: &str| {
    for format in [Format::Text, Format::OpenMetrics] {
        for entry in TextParser::with_format(body, format).flatten() {
            if let Entry::Sample { series, .. } = entry {
                let _ = parse_series(series);
            }
        }
    }
});
