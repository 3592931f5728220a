//! A sealed native-histogram chunk, as read from a block or a head snapshot, through the
//! decoder and the open-chunk rebuild; whatever decodes must re-encode to a chunk that decodes
//! to the same histograms, and a rebuilt chunk must take one more sample and still decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrite_tsdb::chunk::histogram::{self, HistogramChunk, MAX_SAMPLES};

fuzz_target!(|bytes: &[u8]| {
    let mut decoded = Vec::new();
    if histogram::decode(bytes, &mut decoded).is_err() {
        return;
    }
    let mut again = HistogramChunk::new();
    for (t, h) in &decoded {
        again.append(*t, h);
    }
    let mut back = Vec::new();
    histogram::decode(again.bytes(), &mut back).expect("a chunk just encoded decodes");
    let bits = |s: &[(i64, pyrite_core::histogram::FloatHistogram)]| format!("{s:?}");
    assert_eq!(bits(&back), bits(&decoded));
    let mut rebuilt = HistogramChunk::from_bytes(bytes).expect("a chunk that decodes can be rebuilt");
    if let Some((t, h)) = decoded.last().filter(|_| decoded.len() < MAX_SAMPLES) {
        if let Some(next) = t.checked_add(1) {
            let h = h.clone();
            rebuilt.append(next, &h);
            histogram::decode(rebuilt.bytes(), &mut Vec::new()).expect("a rebuilt chunk takes another sample");
        }
    }
});
