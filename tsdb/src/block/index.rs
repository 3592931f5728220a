//! The `index` file of a block: symbols, series and postings (see `docs/format/index.md`).
//!
//! ```text
//! magic "PYRIDX" 0x00 0x01
//! symbols:  count varint, then each: length varint, UTF-8 bytes (sorted, unique)
//! series:   count varint, then each: entry length varint, entry
//!   entry:  label count varint, (name symbol varint, value symbol varint)*,
//!           chunk count varint, per chunk: min time zig-zag varint (the first absolute, later
//!           ones from the previous chunk's max time), max − min varint, offset varint (in
//!           `chunks`), length varint
//! postings: pair count varint, then each: name symbol varint, value symbol varint,
//!           length varint, a roaring bitmap of series numbers (portable serialization)
//! crc32c of everything before, u32 little-endian
//! ```
//!
//! Series are numbered by their position, which is their label order.

use roaring::RoaringBitmap;

use crate::encoding::{put_bytes, put_varint, unzigzag, zigzag, Cursor};

pub(super) const MAGIC: &[u8; 8] = b"PYRIDX\x00\x01";

/// A chunk as the index records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    pub min_t: i64,
    pub max_t: i64,
    pub offset: u64,
    pub len: u32,
}

/// One series entry: label pairs as symbol numbers, and chunks in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesEntry {
    pub labels: Vec<(u32, u32)>,
    pub chunks: Vec<ChunkRef>,
}

pub(super) fn put_symbols(out: &mut Vec<u8>, symbols: &[String]) {
    put_varint(out, symbols.len() as u64);
    for s in symbols {
        put_bytes(out, s.as_bytes());
    }
}

pub(super) fn put_series_entry(out: &mut Vec<u8>, entry: &SeriesEntry) {
    let mut e = Vec::new();
    put_varint(&mut e, entry.labels.len() as u64);
    for &(n, v) in &entry.labels {
        put_varint(&mut e, u64::from(n));
        put_varint(&mut e, u64::from(v));
    }
    put_varint(&mut e, entry.chunks.len() as u64);
    let mut prev = 0;
    for (i, c) in entry.chunks.iter().enumerate() {
        put_varint(&mut e, zigzag(if i == 0 { c.min_t } else { c.min_t - prev }));
        put_varint(&mut e, (c.max_t - c.min_t) as u64);
        put_varint(&mut e, c.offset);
        put_varint(&mut e, u64::from(c.len));
        prev = c.max_t;
    }
    put_bytes(out, &e);
}

pub(super) fn put_postings(out: &mut Vec<u8>, postings: &[(u32, u32, RoaringBitmap)]) {
    put_varint(out, postings.len() as u64);
    let mut buf = Vec::new();
    for (n, v, set) in postings {
        put_varint(out, u64::from(*n));
        put_varint(out, u64::from(*v));
        buf.clear();
        set.serialize_into(&mut buf).expect("writing to a Vec cannot fail");
        put_bytes(out, &buf);
    }
}

/// An index parsed at open: symbols, where each series entry starts, and the postings.
pub struct Parsed {
    pub symbols: Vec<String>,
    pub series: Vec<u32>,
    pub postings: Vec<(u32, u32, RoaringBitmap)>,
}

/// Checks the CRC and parses the sections; the error says what is wrong. Public (with
/// [`series_entry`]) for the fuzz targets, which feed it bytes without a file.
pub fn parse(bytes: &[u8]) -> Result<Parsed, &'static str> {
    if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("index: not a Pyrite block index (bad magic or too short)");
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err("index: checksum mismatch");
    }
    let mut c = Cursor { buf: body, pos: MAGIC.len() };
    let truncated = "index: truncated or malformed section";
    let n = c.varint().ok_or(truncated)?;
    let mut symbols = Vec::new();
    for _ in 0..n {
        symbols.push(c.string().ok_or(truncated)?);
    }
    if !symbols.windows(2).all(|w| w[0] < w[1]) {
        return Err("index: symbols not sorted");
    }
    let n = c.varint().ok_or(truncated)?;
    let mut series = Vec::new();
    for _ in 0..n {
        series.push(u32::try_from(c.pos).map_err(|_| "index: larger than 4 GiB")?);
        c.bytes().ok_or(truncated)?;
    }
    let n = c.varint().ok_or(truncated)?;
    let mut postings = Vec::new();
    for _ in 0..n {
        let (name, value) = (c.varint().ok_or(truncated)?, c.varint().ok_or(truncated)?);
        let set = RoaringBitmap::deserialize_from(c.bytes().ok_or(truncated)?).map_err(|_| "index: bad postings")?;
        let known = |s: u64| s < symbols.len() as u64;
        if !known(name) || !known(value) || set.max().is_some_and(|m| m as usize >= series.len()) {
            return Err("index: postings refer to unknown symbols or series");
        }
        postings.push((name as u32, value as u32, set));
    }
    if !c.done() {
        return Err("index: trailing bytes");
    }
    Ok(Parsed { symbols, series, postings })
}

/// Reads the series entry at `offset` (from [`Parsed::series`]); checked against the symbol
/// count.
pub fn series_entry(index: &[u8], offset: u32, symbols: usize) -> Option<SeriesEntry> {
    let mut c = Cursor { buf: index, pos: offset as usize };
    let mut e = Cursor { buf: c.bytes()?, pos: 0 };
    let sym = |v: u64| (v < symbols as u64).then_some(v as u32);
    let mut entry = SeriesEntry::default();
    for _ in 0..e.varint()? {
        entry.labels.push((sym(e.varint()?)?, sym(e.varint()?)?));
    }
    let mut prev = 0i64;
    for i in 0..e.varint()? {
        let d = unzigzag(e.varint()?);
        let min_t = if i == 0 { d } else { prev.checked_add(d)? };
        let max_t = min_t.checked_add(i64::try_from(e.varint()?).ok()?)?;
        let (offset, len) = (e.varint()?, u32::try_from(e.varint()?).ok()?);
        entry.chunks.push(ChunkRef { min_t, max_t, offset, len });
        prev = max_t;
    }
    Some(entry)
}
