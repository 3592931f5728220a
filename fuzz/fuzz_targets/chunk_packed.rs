//! A sealed (packed) chunk, as read from a block or the head's chunk file, through the decoder;
//! whatever decodes must re-encode to a chunk that decodes to the same samples bit for bit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrite_tsdb::chunk::packed;

fuzz_target!(|bytes: &[u8]| {
    let mut samples = Vec::new();
    if packed::decode(bytes, &mut samples).is_err() || !samples.windows(2).all(|w| w[0].0 < w[1].0) {
        return;
    }
    let mut again = Vec::new();
    packed::encode(&samples, &mut again);
    let mut back = Vec::new();
    packed::decode(&again, &mut back).expect("a chunk just encoded decodes");
    let bits = |s: &[(i64, f64)]| s.iter().map(|&(t, v)| (t, v.to_bits())).collect::<Vec<_>>();
    assert_eq!(bits(&back), bits(&samples));
});
