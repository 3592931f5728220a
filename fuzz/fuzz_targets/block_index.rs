//! A block's `index` file through the parser a block open runs, then every series entry it
//! points at. The input is the file without its trailing CRC-32C, which is appended here so that
//! the fuzzer reaches the sections rather than the checksum. (Opening a block reads files; this
//! fuzzes the in-memory parsing that follows, on the same bytes.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrite_tsdb::block::index;

fuzz_target!(|body: &[u8]| {
    let file = [body, &crc32c::crc32c(body).to_le_bytes()].concat();
    let Ok(parsed) = index::parse(&file) else { return };
    for &offset in &parsed.series {
        parsed.entries.read(&file, offset);
    }
});
