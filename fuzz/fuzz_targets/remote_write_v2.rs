//! A remote-write 2.0 body through the decoder: as sent (snappy framing and all), and snappy-
//! compressed here so that the fuzzer reaches the symbols table, the label refs and the series
//! checks directly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrite_core::remote::v2::decode_write_request_v2;

/// Smaller than the daemon's cap, so that the size limit is exercised too.
const MAX_DECODED: usize = 1 << 16;

fuzz_target!(|body: &[u8]| {
    let _ = decode_write_request_v2(body, MAX_DECODED);
    let compressed = snap::raw::Encoder::new().compress_vec(body).expect("snappy compresses any input");
    if let Ok(decoded) = decode_write_request_v2(&compressed, MAX_DECODED) {
        let _ = decoded.error_text();
    }
});
