//! A scrape body through the protobuf exposition parser: with native histograms, and with
//! classic histograms kept and converted to custom buckets. Every series it yields must parse
//! back to labels (it is the scrape cache's key, and a new series' labels come from it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrite_core::exposition::{parse_series, Entry, HistogramOptions, ProtobufParser};

fuzz_target!(|body: &[u8]| {
    let native = HistogramOptions { native: true, keep_classic: false, convert_to_nhcb: false };
    let classic = HistogramOptions { native: false, keep_classic: true, convert_to_nhcb: true };
    for options in [native, classic] {
        let mut parser = ProtobufParser::new(body, options);
        while let Some(entry) = parser.next() {
            if let Ok(Entry::Sample { series, .. } | Entry::Histogram { series, .. }) = entry {
                parse_series(series).expect("a series the parser yields parses");
            }
        }
    }
});
