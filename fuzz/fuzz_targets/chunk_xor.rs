//! An open chunk as a head snapshot restores it (the streaming XOR encoder's state and bytes,
//! from a WAL chunks record): restored into a head, read, scraped into until it seals (the XOR
//! samples transcoded into a packed chunk), and read again.
//!
//! Input: the state's fixed fields, little-endian, in [`XorState`]'s order (free u8, count u16,
//! first_t, last_t, last_delta i64, last_v f64 bits, leading u8, trailing u8), then its bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrite_core::labels::{Labels, Projection};
use pyrite_tsdb::chunk::XorState;
use pyrite_tsdb::head::{Head, SeriesSnapshot, CHUNK_SAMPLES};

fuzz_target!(|input: &[u8]| {
    let Some((header, bytes)) = input.split_first_chunk::<37>() else { return };
    let int = |at: usize| i64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    let open = XorState {
        free: header[0],
        count: u16::from_le_bytes([header[1], header[2]]),
        first_t: int(3),
        last_t: int(11),
        last_delta: int(19),
        last_v: f64::from_bits(int(27) as u64),
        leading: header[35],
        trailing: header[36],
        bytes: bytes.to_vec(),
    };
    let (last_t, last_v) = (open.last_t, open.last_v.to_bits());
    let labels = Labels::from_pairs([("__name__", "fuzz")]);
    let mut head = Head::new();
    let Some(id) = head.restore_series(0, SeriesSnapshot { labels, sealed: Vec::new(), open, last_t, last_v }) else {
        return;
    };
    head.select(&[], i64::MIN, i64::MAX, &Projection::All);
    for i in 1..=CHUNK_SAMPLES as i64 + 1 {
        let _ = head.append(id, last_t.saturating_add(i * 15_000), i as f64);
    }
    head.select(&[], i64::MIN, i64::MAX, &Projection::All);
});
