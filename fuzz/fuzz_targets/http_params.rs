//! HTTP API parameters: times (`time`, `start`, `end`), durations (`step`, `lookback_delta`) and
//! series selectors (`match[]`, parsed by the PromQL parser as the API does).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrite_core::calendar::parse_timestamp;
use pyrite_core::config::Duration;
use pyrite_core::promql::{parse, Expr};

fuzz_target!(|param: &str| {
    let _ = parse_timestamp(param);
    if let Ok(d) = Duration::parse(param) {
        assert_eq!(Duration::parse(&d.to_string()), Ok(d), "{param:?} printed as {d}");
    }
    if let Ok(Expr::VectorSelector(selector)) = parse(param) {
        for m in &selector.matchers {
            m.matches(param);
        }
    }
});
