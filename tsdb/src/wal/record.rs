//! Write-ahead log records: what a shard writes before it acknowledges samples, and how a
//! replay reads them back. Encoding only; the segment files are the parent module's.
//!
//! A log is a sequence of frames, each `[kind: u8][length: u32 LE][crc32c: u32 LE][payload]`.
//! The CRC (Castagnoli) covers the kind byte and the payload, so a flipped bit anywhere is
//! caught. Kinds are [`SERIES`], [`SAMPLES`], [`CHUNKS`] and the others below, with [`SNAPPY`]
//! or-ed in when the payload is snappy-compressed (when that makes it smaller).
//!
//! * A series record lists `(id, labels)` for series created since the last record: the ids are
//!   the writer's head ids, which a replay maps onto its own.
//! * A samples record lists `(id, t, v)`: ids and timestamps as zig-zag varint deltas from the
//!   previous sample, values as the 8 bytes of the float, so staleness markers survive bit for
//!   bit.
//! * A chunks record (only in head snapshots) holds whole series: id, labels, the last sample's
//!   time and value bits, the sealed (packed) chunks with their time ranges, and the open
//!   chunk's encoder state and bytes, so that a restart loads chunks instead of re-appending
//!   samples.
//!
//! * A tombstones record lists `(id, mint, maxt)`: samples deleted through the admin API, so
//!   that a replay deletes them again at the same point.
//! * A forgotten record lists the ids the head's garbage collection let go: every sample of
//!   theirs precedes it in the log, so a reader following the log (the remote-write sender)
//!   can drop their labels there.
//! * An out-of-order samples record is a samples record of samples the head accepted out of
//!   order (`storage.tsdb.out_of_order_time_window`): a replay keeps them apart again, whatever
//!   the window is then (in head snapshots, after every series).
//! * An out-of-order written record holds one time: the head's out-of-order samples before it
//!   were written to blocks here, so a replay lets them go again instead of writing them twice
//!   (and bringing back what was deleted from those blocks since).
//! * A histograms record lists `(id, t, histogram)` as a samples record does, each histogram
//!   in the histogram chunk codec's stand-alone form ([`crate::chunk::histogram::encode_one`]).
//! * An out-of-order histograms record is a histograms record of histograms the head accepted
//!   out of order, replayed as an out-of-order samples record is.
//! * A histogram chunks record (only in head snapshots, after the chunks records of the same
//!   series) holds a series' histogram chunks: the sealed ones with their time ranges and the
//!   open one's bytes.
//! * An exemplars record lists `(id, t, value, whether t is the exemplar's own, labels)`:
//!   exemplars the head kept, logged after the samples of their batch (and in checkpoints and
//!   snapshots after their series).
//!
//! [`scan_frames`] fails only if its file cannot be read: it returns every intact record, and
//! where it met damage it skips to the next frame that checks out, reporting what it skipped. A
//! torn tail (the last frame cut short by a crash) is the common case and loses nothing that
//! was acknowledged. It reads through a window of [`WINDOW`] bytes, so a file of any size (a
//! segment grown to gigabytes of zeros after a torn write) takes no more memory than that.

use std::io::{self, Read};

use crate::chunk::histogram::{decode_one, encode_one};
use crate::chunk::XorState;
use crate::encoding::{put_bytes, put_labels, put_varint, unzigzag, zigzag, Cursor};
use crate::head::{SealedChunk, SeriesSnapshot};
use crate::histogram_series::HistogramSnapshot;
use pyrite_core::histogram::FloatHistogram;
use pyrite_core::labels::Labels;
use pyrite_core::value::Exemplar;

/// Frame kind of a series record.
pub const SERIES: u8 = 1;
/// Frame kind of a samples record.
pub const SAMPLES: u8 = 2;
/// Frame kind of a chunks record (head snapshots).
pub const CHUNKS: u8 = 3;
/// Frame kind of a deletion record.
pub const TOMBSTONES: u8 = 4;
/// Frame kind of a forgotten-series record.
pub const FORGOTTEN: u8 = 5;
/// Frame kind of an exemplars record.
pub const EXEMPLARS: u8 = 6;
/// Frame kind of an out-of-order samples record.
pub const OUT_OF_ORDER: u8 = 7;
/// Frame kind of an out-of-order written record.
pub const OUT_OF_ORDER_WRITTEN: u8 = 8;
/// Frame kind of a native-histogram samples record.
pub const HISTOGRAMS: u8 = 9;
/// Frame kind of a histogram chunks record (head snapshots).
pub const HISTOGRAM_CHUNKS: u8 = 10;
/// Frame kind of an out-of-order native-histogram samples record.
pub const OUT_OF_ORDER_HISTOGRAMS: u8 = 11;
/// Flag or-ed into the kind when the payload is snappy-compressed.
pub const SNAPPY: u8 = 0x80;

const HEADER: usize = 9;
/// Writers start a new frame once a payload passes this size.
const TARGET_PAYLOAD: usize = 1 << 20;
/// Frames larger than this are damage, not data. Small, so that skipping over damage, which
/// checks candidate frames at every offset, stays fast. A writer ends a frame past
/// [`TARGET_PAYLOAD`], and a series' entry is rarely large: scrapes and remote write bound a
/// series' labels (`pyrite_core::labels::MAX_SERIES_LABEL_BYTES`). What is not bounded — a
/// recording rule's or an alert's labels, a snapshot of a series with very many chunks — goes
/// in a frame of its own once past this size: replay reports that frame as damage and loses
/// that entry, not the other series written with it.
const MAX_PAYLOAD: usize = 4 << 20;

/// One decoded record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Series(Vec<(u32, Labels)>),
    Samples(Vec<(u32, i64, f64)>),
    /// Samples the head accepted out of order.
    OutOfOrder(Vec<(u32, i64, f64)>),
    /// The head's out-of-order samples before this time went to blocks.
    OutOfOrderWritten(i64),
    Chunks(Vec<(u32, SeriesSnapshot)>),
    /// Native-histogram samples the head accepted.
    Histograms(Vec<(u32, i64, FloatHistogram)>),
    /// Native-histogram samples the head accepted out of order.
    OutOfOrderHistograms(Vec<(u32, i64, FloatHistogram)>),
    /// Series' histogram chunks (snapshots).
    HistogramChunks(Vec<(u32, HistogramSnapshot)>),
    /// Samples of series `id` in `[mint, maxt]` were deleted (the admin API).
    Tombstones(Vec<(u32, i64, i64)>),
    /// The head forgot these series; their ids are never used again.
    Forgotten(Vec<u32>),
    /// Exemplars the head kept, by series id.
    Exemplars(Vec<(u32, Exemplar)>),
}

/// Where a log was damaged and how many bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Offset of the first unreadable byte.
    pub offset: usize,
    /// Bytes skipped there before the next intact frame (or the end).
    pub skipped: usize,
    /// Whether the damage reaches the end: a torn tail rather than corruption in the middle.
    pub at_end: bool,
}

/// What [`scan_frames`] found in one log file besides its records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scan {
    /// Every damaged stretch, in order.
    pub damage: Vec<Damage>,
    /// Length of the prefix that ends with the last intact frame: where a writer may continue.
    pub valid_len: usize,
}

/// Appends one frame of `kind` holding `payload` (compressed if `compress` and it pays).
fn put_frame(out: &mut Vec<u8>, kind: u8, payload: &[u8], compress: bool) {
    let compressed = compress.then(|| snap::raw::Encoder::new().compress_vec(payload).ok()).flatten();
    let (kind, body) = match &compressed {
        Some(c) if c.len() < payload.len() => (kind | SNAPPY, c.as_slice()),
        _ => (kind, payload),
    };
    let crc = crc32c::crc32c_append(crc32c::crc32c(&[kind]), body);
    out.push(kind);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(body);
}

/// Collects the payload of one kind of record and cuts it into frames of about
/// [`TARGET_PAYLOAD`] bytes.
struct FrameWriter<'a> {
    out: &'a mut Vec<u8>,
    kind: u8,
    compress: bool,
    payload: Vec<u8>,
}

impl<'a> FrameWriter<'a> {
    fn new(out: &'a mut Vec<u8>, kind: u8, compress: bool) -> Self {
        FrameWriter { out, kind, compress, payload: Vec::new() }
    }

    /// Ends the current frame if it is big enough; returns whether it did (a new frame starts
    /// its deltas afresh).
    fn cut(&mut self) -> bool {
        let full = self.payload.len() >= TARGET_PAYLOAD;
        if full {
            put_frame(self.out, self.kind, &self.payload, self.compress);
            self.payload.clear();
        }
        full
    }

    /// [`FrameWriter::cut`] after an entry that began at `start` in the payload: an entry that
    /// took the frame past [`MAX_PAYLOAD`] is moved to a frame of its own, the entries before
    /// it written as one.
    fn end_entry(&mut self, start: usize) -> bool {
        if start > 0 && self.payload.len() > MAX_PAYLOAD {
            put_frame(self.out, self.kind, &self.payload[..start], self.compress);
            self.payload.drain(..start);
        }
        self.cut()
    }

    fn finish(self) {
        if !self.payload.is_empty() {
            put_frame(self.out, self.kind, &self.payload, self.compress);
        }
    }
}

/// Appends series records for `series` to `out` (several frames if they are many).
pub fn encode_series<'a>(out: &mut Vec<u8>, series: impl IntoIterator<Item = (u32, &'a Labels)>, compress: bool) {
    let mut w = FrameWriter::new(out, SERIES, compress);
    for (id, labels) in series {
        let start = w.payload.len();
        put_varint(&mut w.payload, u64::from(id));
        put_labels(&mut w.payload, labels);
        w.end_entry(start);
    }
    w.finish();
}

/// Appends samples records for `samples` to `out` (several frames if they are many).
pub fn encode_samples(out: &mut Vec<u8>, samples: &[(u32, i64, f64)], compress: bool) {
    encode_samples_as(out, SAMPLES, samples, compress)
}

/// The same, for samples the head accepted out of order.
pub fn encode_out_of_order(out: &mut Vec<u8>, samples: &[(u32, i64, f64)], compress: bool) {
    encode_samples_as(out, OUT_OF_ORDER, samples, compress)
}

fn encode_samples_as(out: &mut Vec<u8>, kind: u8, samples: &[(u32, i64, f64)], compress: bool) {
    let mut w = FrameWriter::new(out, kind, compress);
    let (mut prev_id, mut prev_t) = (0i64, 0i64);
    for &(id, t, v) in samples {
        put_varint(&mut w.payload, zigzag(i64::from(id) - prev_id));
        put_varint(&mut w.payload, zigzag(t.wrapping_sub(prev_t)));
        w.payload.extend_from_slice(&v.to_bits().to_le_bytes());
        (prev_id, prev_t) = (i64::from(id), t);
        if w.cut() {
            (prev_id, prev_t) = (0, 0);
        }
    }
    w.finish();
}

/// Appends chunks records for `series` to `out` (several frames if they are many).
pub fn encode_chunks(out: &mut Vec<u8>, series: impl IntoIterator<Item = (u32, SeriesSnapshot)>, compress: bool) {
    let mut w = FrameWriter::new(out, CHUNKS, compress);
    for (id, s) in series {
        let start = w.payload.len();
        let payload = &mut w.payload;
        put_varint(payload, u64::from(id));
        put_labels(payload, &s.labels);
        put_varint(payload, zigzag(s.last_t));
        payload.extend_from_slice(&s.last_v.to_le_bytes());
        put_sealed(payload, &s.sealed);
        let o = &s.open;
        put_varint(payload, u64::from(o.count));
        for t in [o.first_t, o.last_t, o.last_delta] {
            put_varint(payload, zigzag(t));
        }
        payload.extend_from_slice(&o.last_v.to_bits().to_le_bytes());
        payload.extend_from_slice(&[o.leading, o.trailing, o.free]);
        put_bytes(payload, &o.bytes);
        w.end_entry(start);
    }
    w.finish();
}

pub fn encode_histograms(out: &mut Vec<u8>, samples: &[(u32, i64, &FloatHistogram)], compress: bool) {
    encode_histograms_as(out, HISTOGRAMS, samples, compress)
}

/// The same, for histograms the head accepted out of order.
pub fn encode_out_of_order_histograms(out: &mut Vec<u8>, samples: &[(u32, i64, &FloatHistogram)], compress: bool) {
    encode_histograms_as(out, OUT_OF_ORDER_HISTOGRAMS, samples, compress)
}

fn encode_histograms_as(out: &mut Vec<u8>, kind: u8, samples: &[(u32, i64, &FloatHistogram)], compress: bool) {
    let mut w = FrameWriter::new(out, kind, compress);
    let (mut prev_id, mut prev_t) = (0i64, 0i64);
    for &(id, t, h) in samples {
        put_varint(&mut w.payload, zigzag(i64::from(id) - prev_id));
        put_varint(&mut w.payload, zigzag(t.wrapping_sub(prev_t)));
        encode_one(&mut w.payload, h);
        (prev_id, prev_t) = (i64::from(id), t);
        if w.cut() {
            (prev_id, prev_t) = (0, 0);
        }
    }
    w.finish();
}

fn decode_histograms(payload: &[u8]) -> Option<Vec<(u32, i64, FloatHistogram)>> {
    let mut c = Cursor { buf: payload, pos: 0 };
    let mut out = Vec::new();
    let (mut id, mut t) = (0i64, 0i64);
    while !c.done() {
        id = id.checked_add(unzigzag(c.varint()?))?;
        t = t.wrapping_add(unzigzag(c.varint()?));
        out.push((u32::try_from(id).ok()?, t, decode_one(&mut c)?));
    }
    Some(out)
}

pub fn encode_histogram_chunks<'a>(
    out: &mut Vec<u8>,
    series: impl IntoIterator<Item = (u32, &'a HistogramSnapshot)>,
    compress: bool,
) {
    let mut w = FrameWriter::new(out, HISTOGRAM_CHUNKS, compress);
    for (id, s) in series {
        let start = w.payload.len();
        put_varint(&mut w.payload, u64::from(id));
        put_sealed(&mut w.payload, &s.sealed);
        put_bytes(&mut w.payload, &s.open);
        w.end_entry(start);
    }
    w.finish();
}

fn decode_histogram_chunks(payload: &[u8]) -> Option<Record> {
    let mut c = Cursor { buf: payload, pos: 0 };
    let mut out = Vec::new();
    while !c.done() {
        let id = u32::try_from(c.varint()?).ok()?;
        let sealed = take_sealed(&mut c)?;
        out.push((id, HistogramSnapshot { sealed, open: c.bytes()?.to_vec() }));
    }
    Some(Record::HistogramChunks(out))
}

/// Sealed chunks: their count, then each one's first and last time and its bytes.
fn put_sealed(payload: &mut Vec<u8>, sealed: &[SealedChunk]) {
    put_varint(payload, sealed.len() as u64);
    for c in sealed {
        put_varint(payload, zigzag(c.min_t));
        put_varint(payload, zigzag(c.max_t));
        put_bytes(payload, &c.bytes);
    }
}

fn take_sealed(c: &mut Cursor) -> Option<Vec<SealedChunk>> {
    let n = c.varint()?;
    let mut sealed = Vec::new();
    for _ in 0..n {
        let (min_t, max_t) = (c.i64()?, c.i64()?);
        sealed.push(SealedChunk { min_t, max_t, bytes: c.bytes()?.into() });
    }
    Some(sealed)
}

fn decode_series(payload: &[u8]) -> Option<Record> {
    let mut c = Cursor { buf: payload, pos: 0 };
    let mut out = Vec::new();
    while !c.done() {
        let id = u32::try_from(c.varint()?).ok()?;
        out.push((id, c.labels()?));
    }
    Some(Record::Series(out))
}

fn decode_chunks(payload: &[u8]) -> Option<Record> {
    let mut c = Cursor { buf: payload, pos: 0 };
    let mut out = Vec::new();
    while !c.done() {
        let id = u32::try_from(c.varint()?).ok()?;
        let labels = c.labels()?;
        let (last_t, last_v) = (c.i64()?, c.u64()?);
        let sealed = take_sealed(&mut c)?;
        let count = u16::try_from(c.varint()?).ok()?;
        let (first_t, open_last_t, last_delta) = (c.i64()?, c.i64()?, c.i64()?);
        let open_last_v = c.f64()?;
        let (leading, trailing, free) = (c.u8()?, c.u8()?, c.u8()?);
        let bytes = c.bytes()?.to_vec();
        let open = XorState {
            bytes,
            free,
            count,
            first_t,
            last_t: open_last_t,
            last_delta,
            last_v: open_last_v,
            leading,
            trailing,
        };
        out.push((id, SeriesSnapshot { labels, sealed, open, last_t, last_v }));
    }
    Some(Record::Chunks(out))
}

fn decode_samples(payload: &[u8]) -> Option<Vec<(u32, i64, f64)>> {
    let mut c = Cursor { buf: payload, pos: 0 };
    let mut out = Vec::new();
    let (mut id, mut t) = (0i64, 0i64);
    while !c.done() {
        id = id.checked_add(unzigzag(c.varint()?))?;
        t = t.wrapping_add(unzigzag(c.varint()?));
        out.push((u32::try_from(id).ok()?, t, c.f64()?));
    }
    Some(out)
}

/// Appends deletion records: series `id` lost its samples in `[mint, maxt]`.
pub fn encode_tombstones(out: &mut Vec<u8>, deleted: &[(u32, i64, i64)], compress: bool) {
    let mut w = FrameWriter::new(out, TOMBSTONES, compress);
    for &(id, mint, maxt) in deleted {
        put_varint(&mut w.payload, u64::from(id));
        put_varint(&mut w.payload, zigzag(mint));
        put_varint(&mut w.payload, zigzag(maxt));
        w.cut();
    }
    w.finish();
}

/// Appends forgotten-series records for `ids`.
pub fn encode_forgotten(out: &mut Vec<u8>, ids: &[u32], compress: bool) {
    let mut w = FrameWriter::new(out, FORGOTTEN, compress);
    for &id in ids {
        put_varint(&mut w.payload, u64::from(id));
        w.cut();
    }
    w.finish();
}

/// Appends an out-of-order written record for `before`.
pub fn encode_out_of_order_written(out: &mut Vec<u8>, before: i64) {
    let mut payload = Vec::new();
    put_varint(&mut payload, zigzag(before));
    put_frame(out, OUT_OF_ORDER_WRITTEN, &payload, false);
}

/// Appends exemplars records for `exemplars` (series id and exemplar).
pub fn encode_exemplars<'a>(
    out: &mut Vec<u8>,
    exemplars: impl IntoIterator<Item = (u32, &'a Exemplar)>,
    compress: bool,
) {
    let mut w = FrameWriter::new(out, EXEMPLARS, compress);
    for (id, e) in exemplars {
        put_varint(&mut w.payload, u64::from(id));
        put_varint(&mut w.payload, zigzag(e.t));
        w.payload.extend_from_slice(&e.value.to_bits().to_le_bytes());
        w.payload.push(u8::from(e.has_ts));
        put_labels(&mut w.payload, &e.labels);
        w.cut();
    }
    w.finish();
}

fn decode_exemplars(payload: &[u8]) -> Option<Record> {
    let mut c = Cursor { buf: payload, pos: 0 };
    let mut out = Vec::new();
    while !c.done() {
        let id = u32::try_from(c.varint()?).ok()?;
        let (t, value) = (c.i64()?, c.f64()?);
        let has_ts = c.u8()? != 0;
        out.push((id, Exemplar { labels: c.labels()?, value, t, has_ts }));
    }
    Some(Record::Exemplars(out))
}

fn decode_out_of_order_written(payload: &[u8]) -> Option<Record> {
    let mut c = Cursor { buf: payload, pos: 0 };
    let before = unzigzag(c.varint()?);
    c.done().then_some(Record::OutOfOrderWritten(before))
}

fn decode_forgotten(payload: &[u8]) -> Option<Record> {
    let mut c = Cursor { buf: payload, pos: 0 };
    let mut out = Vec::new();
    while !c.done() {
        out.push(u32::try_from(c.varint()?).ok()?);
    }
    Some(Record::Forgotten(out))
}

fn decode_tombstones(payload: &[u8]) -> Option<Record> {
    let mut c = Cursor { buf: payload, pos: 0 };
    let mut out = Vec::new();
    while !c.done() {
        out.push((u32::try_from(c.varint()?).ok()?, c.i64()?, c.i64()?));
    }
    Some(Record::Tombstones(out))
}

/// What [`read_frame`] found at an offset.
#[derive(Debug)]
pub enum Frame {
    /// An intact frame: its record and its end offset.
    Intact(Record, usize),
    /// The buffer ends inside a frame that may still be being written.
    Partial,
    /// Not a frame: damage, or (at the end of a log being written) one not wholly visible yet.
    Bad,
}

/// The frame starting at `pos`, checked: its record and its end offset.
fn frame_at(buf: &[u8], pos: usize) -> Option<(Record, usize)> {
    match read_frame(buf, pos) {
        Frame::Intact(record, end) => Some((record, end)),
        Frame::Partial | Frame::Bad => None,
    }
}

/// The bytes a check of the frame at `pos` would take the checksum of: its payload, if its
/// header is whole, names a known kind and a length that `buf` holds; else none.
fn checked_len(buf: &[u8], pos: usize) -> usize {
    let Some(header) = buf.get(pos..pos + HEADER) else { return 0 };
    let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let fits = len <= MAX_PAYLOAD && len <= buf.len() - pos - HEADER;
    if known_kind(header[0]) && fits {
        len
    } else {
        0
    }
}

/// Whether a frame header's kind byte names a record kind.
fn known_kind(kind: u8) -> bool {
    matches!(
        kind & !SNAPPY,
        SERIES
            | SAMPLES
            | CHUNKS
            | TOMBSTONES
            | FORGOTTEN
            | EXEMPLARS
            | OUT_OF_ORDER
            | OUT_OF_ORDER_WRITTEN
            | HISTOGRAMS
            | HISTOGRAM_CHUNKS
            | OUT_OF_ORDER_HISTOGRAMS
    )
}

/// Reads the frame starting at `pos`, telling a frame cut short by the end of `buf` from
/// damage (a reader following a log being written waits for the first and skips the second).
pub fn read_frame(buf: &[u8], pos: usize) -> Frame {
    let Some(header) = buf.get(pos..pos + HEADER) else { return Frame::Partial };
    let kind = header[0];
    let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let crc = u32::from_le_bytes([header[5], header[6], header[7], header[8]]);
    if len > MAX_PAYLOAD || !known_kind(kind) {
        return Frame::Bad;
    }
    let Some(body) = buf.get(pos + HEADER..pos + HEADER + len) else { return Frame::Partial };
    if crc32c::crc32c_append(crc32c::crc32c(&[kind]), body) != crc {
        return Frame::Bad;
    }
    match decode_body(kind, body) {
        Some(record) => Frame::Intact(record, pos + HEADER + len),
        None => Frame::Bad,
    }
}

/// Decodes a checked frame's payload.
fn decode_body(kind: u8, body: &[u8]) -> Option<Record> {
    let decompressed;
    let payload = if kind & SNAPPY != 0 {
        // A frame claiming more than snappy can encode in its size is damage.
        pyrite_core::remote::snappy_decoded_len(body).ok()?;
        decompressed = snap::raw::Decoder::new().decompress_vec(body).ok()?;
        decompressed.as_slice()
    } else {
        body
    };
    match kind & !SNAPPY {
        SERIES => decode_series(payload),
        SAMPLES => decode_samples(payload).map(Record::Samples),
        OUT_OF_ORDER => decode_samples(payload).map(Record::OutOfOrder),
        OUT_OF_ORDER_WRITTEN => decode_out_of_order_written(payload),
        TOMBSTONES => decode_tombstones(payload),
        FORGOTTEN => decode_forgotten(payload),
        EXEMPLARS => decode_exemplars(payload),
        HISTOGRAMS => decode_histograms(payload).map(Record::Histograms),
        OUT_OF_ORDER_HISTOGRAMS => decode_histograms(payload).map(Record::OutOfOrderHistograms),
        HISTOGRAM_CHUNKS => decode_histogram_chunks(payload),
        _ => decode_chunks(payload),
    }
}

/// How much checksumming a resync after damage may do: at most until the frames tried have
/// covered this many bytes per byte of the file, and at least [`MIN_RESYNC_BYTES`]. A file
/// where a plausible header starts every few bytes (crafted, or a pattern repeated) would
/// otherwise take a checksum of up to [`MAX_PAYLOAD`] at each offset: days for one segment.
const RESYNC_BYTES_PER_BYTE: usize = 16;
const MIN_RESYNC_BYTES: usize = 256 << 20;

/// Bytes of a file a scan holds at once: several frames of the largest size.
const WINDOW: usize = 4 * (HEADER + MAX_PAYLOAD);

/// A window over what a reader reads: the bytes from `base` on.
struct Window<R> {
    reader: R,
    buf: Vec<u8>,
    base: usize,
    ended: bool,
}

impl<R: Read> Window<R> {
    /// The bytes from `pos` on (not before the window's start): a whole frame's worth at least,
    /// unless the input ends first; empty at its end.
    fn from(&mut self, pos: usize) -> io::Result<&[u8]> {
        let offset = pos - self.base;
        if !self.ended && self.buf.len() < offset + HEADER + MAX_PAYLOAD {
            let kept = offset.min(self.buf.len());
            self.buf.drain(..kept);
            self.base += kept;
            while !self.ended && self.buf.len() < WINDOW {
                let start = self.buf.len();
                self.buf.resize(WINDOW, 0);
                let read = loop {
                    match self.reader.read(&mut self.buf[start..]) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        read => break read,
                    }
                };
                self.buf.truncate(start + *read.as_ref().unwrap_or(&0));
                self.ended = read? == 0;
            }
        }
        Ok(self.buf.get(pos - self.base..).unwrap_or_default())
    }
}

/// Hands every intact record of the file `reader` reads (`len` bytes long, as its metadata
/// says) to `on_record`, in order, as it decodes them (a replay never holds a whole file's
/// records at once), skipping over damage (see the module docs): each damaged stretch ends
/// where the next whole frame checks out. Once the resync budget is spent, the rest of the file
/// is skipped as damage that is not a torn tail (it may hold good frames, so it is never
/// truncated). Fails only if the file cannot be read.
pub fn scan_frames(reader: impl Read, len: usize, mut on_record: impl FnMut(Record)) -> io::Result<Scan> {
    let mut window = Window { reader, buf: Vec::new(), base: 0, ended: false };
    let mut scan = Scan::default();
    let mut pos = 0;
    let mut resync_budget = len.saturating_mul(RESYNC_BYTES_PER_BYTE).max(MIN_RESYNC_BYTES);
    loop {
        let here = window.from(pos)?;
        if here.is_empty() {
            break;
        }
        if let Some((record, end)) = frame_at(here, 0) {
            on_record(record);
            pos += end;
            scan.valid_len = pos;
            continue;
        }
        // Damage: find the next offset where a whole frame checks out.
        let (mut resume, mut gave_up, mut p) = (None, false, pos + 1);
        loop {
            let here = window.from(p)?;
            if here.is_empty() {
                break;
            }
            let Some(left) = resync_budget.checked_sub(checked_len(here, 0)) else {
                gave_up = true;
                break;
            };
            resync_budget = left;
            if frame_at(here, 0).is_some() {
                resume = Some(p);
                break;
            }
            p += 1;
        }
        let end = match resume {
            Some(p) => p,
            // The rest of the file, read to its end.
            None => {
                let mut end = p;
                while !window.from(end)?.is_empty() {
                    end = window.base + window.buf.len();
                }
                end
            }
        };
        scan.damage.push(Damage { offset: pos, skipped: end - pos, at_end: resume.is_none() && !gave_up });
        pos = end;
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrite_core::value::stale_nan;

    /// Every record of `buf`, and what the scan found.
    fn read_frames(buf: &[u8]) -> Frames {
        let mut records = Vec::new();
        let scan = scan_frames(buf, buf.len(), |r| records.push(r)).unwrap();
        Frames { records, damage: scan.damage, valid_len: scan.valid_len }
    }

    struct Frames {
        records: Vec<Record>,
        damage: Vec<Damage>,
        valid_len: usize,
    }

    fn lbl(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn log(compress: bool) -> (Vec<u8>, Vec<Record>) {
        let a = lbl(&[("__name__", "up"), ("job", "a")]);
        let b = lbl(&[("__name__", "x"), ("le", "+Inf"), ("ü", "ß")]);
        let samples: Vec<(u32, i64, f64)> =
            (0..500).map(|i| (i % 2, 1_700_000_000_000 + i as i64 * 15_000, i as f64 * 0.5)).collect();
        let mut out = Vec::new();
        encode_series(&mut out, [(0, &a), (1, &b)], compress);
        encode_samples(&mut out, &samples, compress);
        encode_samples(&mut out, &[(1, -5, stale_nan()), (0, i64::MAX, f64::NEG_INFINITY)], compress);
        let records = vec![
            Record::Series(vec![(0, a), (1, b)]),
            Record::Samples(samples),
            Record::Samples(vec![(1, -5, stale_nan()), (0, i64::MAX, f64::NEG_INFINITY)]),
        ];
        (out, records)
    }

    /// Records compared bit for bit (NaN staleness markers included).
    fn bits(records: &[Record]) -> String {
        format!(
            "{:?}",
            records
                .iter()
                .map(|r| match r {
                    Record::Samples(s) =>
                        format!("{:?}", s.iter().map(|&(i, t, v)| (i, t, v.to_bits())).collect::<Vec<_>>()),
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
        )
    }

    #[test]
    fn records_round_trip_with_and_without_compression() {
        for compress in [false, true] {
            let (buf, records) = log(compress);
            let frames = read_frames(&buf);
            assert_eq!(bits(&frames.records), bits(&records));
            assert!(frames.damage.is_empty());
            assert_eq!(frames.valid_len, buf.len());
        }
        assert!(log(true).0.len() < log(false).0.len(), "repetitive samples compress");
    }

    #[test]
    fn an_entry_past_the_largest_frame_goes_alone_and_is_lost_alone() {
        let series = |value: &str| Labels::from_pairs([("__name__", "m"), ("v", value)]);
        let huge = series(&"x".repeat(MAX_PAYLOAD));
        let small: Vec<Labels> = (0..3).map(|i| series(&i.to_string())).collect();
        let mut buf = Vec::new();
        let entries = [(1, &small[0]), (2, &small[1]), (3, &huge), (4, &small[2])];
        encode_series(&mut buf, entries, false);
        let frames = read_frames(&buf);
        let read: Vec<u32> = frames
            .records
            .iter()
            .flat_map(|r| match r {
                Record::Series(s) => s.iter().map(|(id, _)| *id).collect(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(read, [1, 2, 4], "the others are read");
        assert_eq!(frames.damage.len(), 1);
    }

    #[test]
    fn a_torn_tail_loses_only_the_cut_record() {
        let (buf, records) = log(true);
        for cut in [buf.len() - 1, buf.len() - 5] {
            let frames = read_frames(&buf[..cut]);
            assert_eq!(bits(&frames.records), bits(&records[..2]));
            assert_eq!(frames.damage.len(), 1);
            assert!(frames.damage[0].at_end);
            assert_eq!(frames.valid_len + frames.damage[0].skipped, cut);
        }
    }

    /// A reader that hands out at most 100,000 bytes a read, so that frames straddle them.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = out.len().min(self.0.len()).min(100_000);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// A file several windows long, damaged in its second window and torn at its end, scans
    /// as its records say, whatever sizes its reads come in.
    #[test]
    fn a_file_longer_than_the_window_is_scanned_through_it() {
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        while buf.len() < 3 * WINDOW {
            let start = buf.len();
            let samples: Vec<(u32, i64, f64)> = (0..50_000).map(|i| (i % 7, i as i64, i as f64)).collect();
            encode_samples(&mut buf, &samples, false);
            frames.push(start);
        }
        let damaged = *frames.iter().find(|&&f| f > WINDOW + WINDOW / 2).unwrap();
        buf[damaged + HEADER + 100] ^= 0x01;
        let whole = buf.len();
        buf.truncate(whole - 3);
        let mut records = 0;
        let scan = scan_frames(Trickle(&buf), buf.len(), |_| records += 1).unwrap();
        assert_eq!(records, frames.len() - 2, "all but the damaged and the torn one");
        assert_eq!(scan.damage.len(), 2, "{:?}", scan.damage);
        assert_eq!((scan.damage[0].offset, scan.damage[0].at_end), (damaged, false));
        let next = frames[frames.iter().position(|&f| f == damaged).unwrap() + 1];
        assert_eq!(scan.damage[0].skipped, next - damaged);
        assert!(scan.damage[1].at_end);
        assert_eq!(scan.valid_len, *frames.last().unwrap());
        assert_eq!(scan.valid_len + scan.damage[1].skipped, buf.len());
    }

    #[test]
    fn a_flipped_bit_in_the_middle_loses_that_record_and_no_other() {
        let (buf, records) = log(false);
        let first_len = {
            let mut one = Vec::new();
            let a = lbl(&[("__name__", "up"), ("job", "a")]);
            let b = lbl(&[("__name__", "x"), ("le", "+Inf"), ("ü", "ß")]);
            encode_series(&mut one, [(0, &a), (1, &b)], false);
            one.len()
        };
        let mut bad = buf.clone();
        bad[first_len + 40] ^= 0x10; // inside the first samples record
        let frames = read_frames(&bad);
        assert_eq!(bits(&frames.records), bits(&[records[0].clone(), records[2].clone()]));
        assert_eq!(frames.damage.len(), 1);
        assert!(!frames.damage[0].at_end);
        assert_eq!(frames.damage[0].offset, first_len);
        assert_eq!(frames.valid_len, buf.len());
    }

    #[test]
    fn large_batches_split_into_frames_that_read_back_whole() {
        let samples: Vec<(u32, i64, f64)> = (0..300_000).map(|i| (i % 1000, i as i64, i as f64)).collect();
        let mut out = Vec::new();
        encode_samples(&mut out, &samples, false);
        let frames = read_frames(&out);
        assert!(frames.records.len() > 1, "one frame for 300k samples");
        let back: Vec<(u32, i64, f64)> = frames
            .records
            .into_iter()
            .flat_map(|r| match r {
                Record::Samples(s) => s,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(back, samples);
    }

    #[test]
    fn a_head_snapshot_in_chunks_records_restores_the_head_exactly() {
        use crate::head::Head;
        let mut head = Head::new();
        for s in 0..30 {
            let (id, _) = head.get_or_create(&lbl(&[("__name__", "m"), ("s", &s.to_string())]));
            for k in 0..(s * 11) {
                head.append(id, k as i64 * 15_000, (k * s) as f64 / 7.0).unwrap();
            }
        }
        let mut buf = Vec::new();
        encode_chunks(&mut buf, (0..30).map(|id| (id, head.snapshot_series(id).unwrap())), true);
        let mut restored = Head::new();
        for record in read_frames(&buf).records {
            let Record::Chunks(series) = record else { panic!("{record:?}") };
            for (id, s) in series {
                assert_eq!(restored.restore_series(id, s), Some(id), "ids come back as they were");
            }
        }
        for id in 0..30 {
            assert_eq!(restored.snapshot_series(id), head.snapshot_series(id));
        }
        // Appending continues where the snapshot stood, and the same appends are refused.
        assert!(restored.append(29, 0, 0.0).is_err(), "older than the last sample");
        restored.append(29, 10_000_000, 1.0).unwrap();
    }

    #[test]
    fn an_id_delta_past_i64_is_damage_not_an_overflow() {
        // Series 1, then an id delta of i64::MAX: the running id overflowed (a panic in debug
        // builds) before it was checked against u32.
        let mut payload = Vec::new();
        for delta in [1, i64::MAX] {
            put_varint(&mut payload, zigzag(delta));
            put_varint(&mut payload, 0);
            payload.extend_from_slice(&1.0f64.to_bits().to_le_bytes());
        }
        let mut buf = Vec::new();
        put_frame(&mut buf, SAMPLES, &payload, false);
        let frames = read_frames(&buf);
        assert!(frames.records.is_empty());
        assert_eq!(frames.damage, vec![Damage { offset: 0, skipped: buf.len(), at_end: true }]);
    }

    /// Bytes where a plausible header starts every fifth byte, each claiming 4 MiB: the scan
    /// gives up on them in linear time instead of checking 4 MiB at each (red team: days for
    /// a 128 MiB segment, the shard never ready).
    #[test]
    fn a_header_at_every_few_bytes_is_skipped_in_linear_time() {
        let (mut buf, records) = log(false);
        let good = buf.len();
        buf.extend([0x03, 0x03, 0x03, 0x3f, 0x00].repeat((6 << 20) / 5));
        let started = std::time::Instant::now();
        let frames = read_frames(&buf);
        assert_eq!(bits(&frames.records), bits(&records));
        // Given up on, not a torn tail: nothing is truncated.
        assert_eq!(frames.damage, vec![Damage { offset: good, skipped: buf.len() - good, at_end: false }]);
        // Generous for a debug build on a loaded machine; before, this took hours.
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "{:?}", started.elapsed());
    }

    /// A frame whose snappy header claims 4 GiB in a few bytes: damage, refused before the
    /// decoder allocates what it claims.
    #[test]
    fn a_snappy_length_past_what_the_body_can_hold_is_damage() {
        let mut body = Vec::new();
        put_varint(&mut body, u32::MAX as u64);
        body.extend_from_slice(&[0; 8]);
        assert_eq!(decode_body(SAMPLES | SNAPPY, &body), None);
        let (mut buf, _) = log(true);
        let good = buf.len();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&[SAMPLES | SNAPPY]), &body);
        buf.push(SAMPLES | SNAPPY);
        buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
        buf.extend_from_slice(&crc.to_le_bytes());
        buf.extend_from_slice(&body);
        assert_eq!(read_frames(&buf).damage, vec![Damage { offset: good, skipped: buf.len() - good, at_end: true }]);
    }

    #[test]
    fn garbage_is_damage_not_a_panic() {
        let frames = read_frames(&[0xff; 100]);
        assert!(frames.records.is_empty());
        assert_eq!(frames.damage, vec![Damage { offset: 0, skipped: 100, at_end: true }]);
        assert_eq!(read_frames(&[]).valid_len, 0);
    }
}
