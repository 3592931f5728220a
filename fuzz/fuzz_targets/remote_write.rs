//! A remote-write 1.0 body through the decoder: as sent (snappy framing and all), and snappy-
//! compressed here so that the fuzzer reaches the protobuf and validation layers directly.
//! (2.0 bodies: `remote_write_v2`.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrite_core::remote::decode_write_request;

/// Smaller than the daemon's cap, so that the size limit is exercised too.
const MAX_DECODED: usize = 1 << 16;

fuzz_target!(|body: &[u8]| {
    let _ = decode_write_request(body, MAX_DECODED);
    let compressed = snap::raw::Encoder::new().compress_vec(body).expect("snappy compresses any input");
    let _ = decode_write_request(&compressed, MAX_DECODED);
});
