//! A query through the PromQL parser, every optional syntax on; whatever parses must print
//! (single-line and pretty) as text that parses back to an expression printing the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrite_core::promql::{parse_with, ParseOptions};

fuzz_target!(|query: &str| {
    let parse = |text: &str| parse_with(text, ParseOptions::all());
    let Ok(expr) = parse(query) else { return };
    let shown = expr.to_string();
    // A pretty form past its size limit is refused, not printed.
    for text in std::iter::once(shown.clone()).chain(expr.pretty(0)) {
        let again = parse(&text).unwrap_or_else(|e| panic!("{query:?} printed as {text:?}, which does not parse: {e}"));
        assert_eq!(again.to_string(), shown, "{query:?} printed as {text:?}");
    }
});
