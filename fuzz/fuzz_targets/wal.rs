//! A write-ahead log segment (or checkpoint, or head snapshot) replayed into a head as a
//! restart does, then read back; and the same bytes as the payload of one well-framed record of
//! each kind, so that the fuzzer reaches the record decoders without forging CRCs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrite_core::labels::Projection;
use pyrite_tsdb::head::Head;
use pyrite_tsdb::out_of_order::Value;
use pyrite_tsdb::wal::record::{
    scan_frames, Record, CHUNKS, EXEMPLARS, FORGOTTEN, HISTOGRAMS, HISTOGRAM_CHUNKS, OUT_OF_ORDER,
    OUT_OF_ORDER_HISTOGRAMS, OUT_OF_ORDER_WRITTEN, SAMPLES, SERIES, SNAPPY, TOMBSTONES,
};

/// One frame as a writer lays it out: kind, length, CRC-32C of kind and payload, payload.
fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let crc = crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload);
    [&[kind][..], &(payload.len() as u32).to_le_bytes(), &crc.to_le_bytes(), payload].concat()
}

/// Applies a record to `head` as the daemon's replay does (ids as written, not remapped).
fn replay(head: &mut Head, record: Record) {
    match record {
        Record::Series(series) => {
            for (id, labels) in &series {
                head.get_or_create_as(labels, Some(*id));
            }
        }
        Record::Chunks(series) => {
            for (id, snapshot) in series {
                head.restore_series(id, snapshot);
            }
        }
        Record::Samples(samples) => {
            for (id, t, v) in samples {
                let _ = head.append(id, t, v);
            }
        }
        Record::OutOfOrder(samples) => {
            for (id, t, v) in samples {
                head.insert_out_of_order(id, t, Value::Float(v));
            }
        }
        Record::OutOfOrderHistograms(histograms) => {
            for (id, t, h) in histograms {
                head.insert_out_of_order(id, t, Value::Histogram(Box::new(h)));
            }
        }
        Record::OutOfOrderWritten(before) => {
            head.drop_out_of_order_before(before);
        }
        Record::Tombstones(deleted) => {
            for (id, mint, maxt) in deleted {
                head.delete_series(id, mint, maxt);
            }
        }
        Record::Forgotten(ids) => {
            head.forget(&ids);
        }
        Record::Exemplars(exemplars) => {
            for (id, e) in exemplars {
                let _ = head.add_exemplar(id, &e);
            }
        }
        Record::Histograms(histograms) => {
            for (id, t, h) in histograms {
                let _ = head.append_histogram(id, t, h);
            }
        }
        Record::HistogramChunks(series) => {
            for (id, snapshot) in series {
                head.restore_histograms(id, &snapshot);
            }
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    let mut log = bytes.to_vec();
    let kinds = [
        SERIES,
        SAMPLES,
        CHUNKS,
        TOMBSTONES,
        FORGOTTEN,
        EXEMPLARS,
        OUT_OF_ORDER,
        OUT_OF_ORDER_WRITTEN,
        HISTOGRAMS,
        HISTOGRAM_CHUNKS,
        OUT_OF_ORDER_HISTOGRAMS,
    ];
    for kind in kinds {
        log.extend(frame(kind, bytes));
        log.extend(frame(kind | SNAPPY, &snap::raw::Encoder::new().compress_vec(bytes).expect("compresses")));
    }
    let mut head = Head::new();
    head.set_exemplar_capacity(16);
    head.set_out_of_order_window(3_600_000);
    scan_frames(&log[..], log.len(), |record| replay(&mut head, record)).expect("a slice reads");
    head.select(&[], i64::MIN, i64::MAX, &Projection::All);
});
