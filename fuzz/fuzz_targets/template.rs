//! An alert template parsed and expanded with fixed labels, value and query answers.
#![no_main]

use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use pyrite_core::labels::Labels;
use pyrite_core::rules::template::{Compiled, QueryFn, TemplateData};

fuzz_target!(|text: &str| {
    let Ok(template) = Compiled::new("fuzz", text) else { return };
    let labels = Labels::from_pairs([("__name__", "up"), ("instance", "localhost:9090"), ("job", "node")]);
    let external_labels = Labels::from_pairs([("cluster", "eu-1")]);
    let data = TemplateData {
        labels: &labels,
        external_labels: &external_labels,
        external_url: "http://pyrite:9090",
        value: 0.25,
    };
    let answer = labels.clone();
    let query: QueryFn = Rc::new(move |_| Ok(vec![(answer.clone(), 1.5)]));
    let _ = template.expand(&data, 1_700_000_000_000, &query);
});
