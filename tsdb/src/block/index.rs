//! The `index` file of a block: symbols, series and postings (see `docs/format/index.md`).
//!
//! ```text
//! magic "PYRIDX" 0x00 0x02
//! base:     zig-zag varint, the time a series' first chunk's min time counts from
//! symbols:  count varint, then each: length varint, UTF-8 bytes (sorted, unique)
//! series:   count varint, then each: entry length varint, entry
//!   entry:  label count varint, the labels as numbers of their postings pairs (the first as
//!           is, each later one as its difference from the one before, minus one),
//!           chunk count varint, per chunk: min time zig-zag varint (the first from `base`,
//!           later ones from the previous chunk's max time), max − min varint, offset varint
//!           (in `chunks`), length varint
//! postings: pair count varint, then each: name symbol varint, value symbol varint, length
//!           varint, then runs of series numbers: (gap << 1 | longer) varint, where gap is
//!           the run's first number minus the previous run's last, minus one (the first
//!           run's from −1), followed, for a run longer than one, by its length − 2 varint.
//!           Sorted by (name, value); a pair's number is its position
//! crc32c of everything before, u32 little-endian
//! ```
//!
//! Series are numbered by their position, which is their label order. Version 1 (magic ending
//! 0x01), still read, named labels by symbol numbers, wrote the first chunk's min time as is and
//! postings as portable roaring bitmaps.

use roaring::RoaringBitmap;

use crate::encoding::{put_bytes, put_varint, unzigzag, zigzag, Cursor};

const MAGIC_PREFIX: &[u8; 7] = b"PYRIDX\x00";
/// The version this code writes.
const VERSION: u8 = 2;

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

pub(super) fn put_header(out: &mut Vec<u8>, base: i64) {
    out.extend_from_slice(MAGIC_PREFIX);
    out.push(VERSION);
    put_varint(out, zigzag(base));
}

pub(super) fn put_symbols(out: &mut Vec<u8>, symbols: &[String]) {
    put_varint(out, symbols.len() as u64);
    for s in symbols {
        put_bytes(out, s.as_bytes());
    }
}

/// Writes a series entry: `pairs` are the numbers of its labels' postings pairs, ascending
/// (a series' labels are in name order, as pairs are), and `base` the header's.
pub(super) fn put_series_entry(out: &mut Vec<u8>, pairs: &[u32], chunks: &[ChunkRef], base: i64) {
    let mut e = Vec::new();
    put_varint(&mut e, pairs.len() as u64);
    let mut next = 0;
    for &p in pairs {
        put_varint(&mut e, u64::from(p - next));
        next = p + 1;
    }
    put_varint(&mut e, chunks.len() as u64);
    let mut prev = base;
    for c in chunks {
        put_varint(&mut e, zigzag(c.min_t.wrapping_sub(prev)));
        put_varint(&mut e, (c.max_t - c.min_t) as u64);
        put_varint(&mut e, c.offset);
        put_varint(&mut e, u64::from(c.len));
        prev = c.max_t;
    }
    put_bytes(out, &e);
}

/// Writes the postings pairs, sorted by (name, value), with their series as runs.
pub(super) fn put_postings(out: &mut Vec<u8>, postings: &[(u32, u32, RoaringBitmap)]) {
    put_varint(out, postings.len() as u64);
    let mut runs = Vec::new();
    for (n, v, set) in postings {
        put_varint(out, u64::from(*n));
        put_varint(out, u64::from(*v));
        runs.clear();
        put_runs(&mut runs, set);
        put_bytes(out, &runs);
    }
}

fn put_runs(out: &mut Vec<u8>, set: &RoaringBitmap) {
    let mut ids = set.iter().peekable();
    let mut next = 0u64;
    while let Some(first) = ids.next() {
        let mut last = first;
        while ids.next_if_eq(&(last + 1)).is_some() {
            last += 1;
        }
        let gap = u64::from(first) - next;
        if last == first {
            put_varint(out, gap << 1);
        } else {
            put_varint(out, gap << 1 | 1);
            put_varint(out, u64::from(last - first - 1));
        }
        next = u64::from(last) + 1;
    }
}

/// Reads runs as [`put_runs`] wrote them; every number below `series`, and no more numbers
/// than `allowance` (which is decreased), or None.
fn runs(bytes: &[u8], series: usize, allowance: &mut u64) -> Option<RoaringBitmap> {
    let mut c = Cursor { buf: bytes, pos: 0 };
    let mut set = RoaringBitmap::new();
    let mut next = 0u64;
    while !c.done() {
        let head = c.varint()?;
        let first = next.checked_add(head >> 1)?;
        let last = if head & 1 == 1 { first.checked_add(c.varint()?)?.checked_add(1)? } else { first };
        if last >= series as u64 {
            return None;
        }
        *allowance = allowance.checked_sub(last - first + 1)?;
        if first == last {
            set.push(first as u32);
        } else {
            set.insert_range(first as u32..=last as u32);
        }
        next = last + 1;
    }
    Some(set)
}

/// An index parsed at open: symbols, where each series entry starts, the postings, and what
/// its series entries refer to.
pub struct Parsed {
    pub symbols: Vec<String>,
    pub series: Vec<u32>,
    pub postings: Vec<(u32, u32, RoaringBitmap)>,
    pub entries: Entries,
}

/// What a series entry's numbers count from, to read entries after [`parse`].
pub struct Entries {
    labels: LabelRefs,
    /// The time a series' first chunk's min time counts from.
    base: i64,
}

enum LabelRefs {
    /// Version 1: (name, value) symbol numbers, below this count.
    Symbols(usize),
    /// Version 2: numbers of these postings pairs.
    Pairs(Vec<(u32, u32)>),
}

/// Checks the CRC and parses the sections; the error says what is wrong. Public (with
/// [`Entries::read`]) for the fuzz targets, which feed it bytes without a file.
pub fn parse(bytes: &[u8]) -> Result<Parsed, &'static str> {
    let version = match bytes.get(..MAGIC_PREFIX.len() + 1) {
        Some([prefix @ .., v]) if prefix == MAGIC_PREFIX && (*v == 1 || *v == VERSION) && bytes.len() >= 12 => *v,
        _ => return Err("index: not a Pyrite block index (bad magic, unknown version or too short)"),
    };
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err("index: checksum mismatch");
    }
    let mut c = Cursor { buf: body, pos: MAGIC_PREFIX.len() + 1 };
    let truncated = "index: truncated or malformed section";
    let base = if version == 1 { 0 } else { c.i64().ok_or(truncated)? };
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
    let series_start = c.pos;
    for _ in 0..n {
        series.push(u32::try_from(c.pos).map_err(|_| "index: larger than 4 GiB")?);
        c.bytes().ok_or(truncated)?;
    }
    // Each label of a series entry takes a byte or more and puts the series in one postings
    // list, so the lists together hold no more numbers than the entries have bytes. Checked
    // as they are read: a run of a few bytes can stand for millions of series.
    let mut allowance = (c.pos - series_start) as u64;
    let n = c.varint().ok_or(truncated)?;
    let mut postings = Vec::new();
    let bad = "index: postings refer to unknown symbols or series";
    for _ in 0..n {
        let (name, value) = (c.varint().ok_or(truncated)?, c.varint().ok_or(truncated)?);
        let bytes = c.bytes().ok_or(truncated)?;
        let set = match version {
            1 => RoaringBitmap::deserialize_from(bytes)
                .ok()
                .filter(|set| set.max().is_none_or(|m| (m as usize) < series.len()))
                .filter(|set| allowance.checked_sub(set.len()).map(|left| allowance = left).is_some())
                .ok_or(bad)?,
            _ => runs(bytes, series.len(), &mut allowance).ok_or(bad)?,
        };
        let known = |s: u64| s < symbols.len() as u64;
        if !known(name) || !known(value) {
            return Err(bad);
        }
        postings.push((name as u32, value as u32, set));
    }
    if !c.done() {
        return Err("index: trailing bytes");
    }
    // Series entries name pairs by their position, which must be their (name, value) order.
    if !postings.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)) {
        return Err("index: postings not sorted");
    }
    let labels = match version {
        1 => LabelRefs::Symbols(symbols.len()),
        _ => LabelRefs::Pairs(postings.iter().map(|&(n, v, _)| (n, v)).collect()),
    };
    Ok(Parsed { symbols, series, postings, entries: Entries { labels, base } })
}

impl Entries {
    /// Reads the series entry at `offset` (from [`Parsed::series`]) of `index`; None when it is
    /// malformed or names unknown symbols or pairs.
    pub fn read(&self, index: &[u8], offset: u32) -> Option<SeriesEntry> {
        let mut c = Cursor { buf: index, pos: offset as usize };
        let mut e = Cursor { buf: c.bytes()?, pos: 0 };
        let mut entry = SeriesEntry::default();
        let mut next = 0u64;
        for _ in 0..e.varint()? {
            entry.labels.push(match &self.labels {
                LabelRefs::Symbols(count) => {
                    let sym = |v: u64| (v < *count as u64).then_some(v as u32);
                    (sym(e.varint()?)?, sym(e.varint()?)?)
                }
                LabelRefs::Pairs(pairs) => {
                    let pair = next.checked_add(e.varint()?)?;
                    next = pair.checked_add(1)?;
                    *pairs.get(usize::try_from(pair).ok()?)?
                }
            });
        }
        let mut prev = self.base;
        for i in 0..e.varint()? {
            // The first from the base (any time), later ones from the previous chunk's end.
            let d = unzigzag(e.varint()?);
            let min_t = if i == 0 { prev.wrapping_add(d) } else { prev.checked_add(d)? };
            let max_t = min_t.checked_add(i64::try_from(e.varint()?).ok()?)?;
            let (offset, len) = (e.varint()?, u32::try_from(e.varint()?).ok()?);
            entry.chunks.push(ChunkRef { min_t, max_t, offset, len });
            prev = max_t;
        }
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
        let crc = crc32c::crc32c(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        body
    }

    /// An index of three series over symbols ["a", "b", "job", "x"] with `job` = a, a, b and
    /// the postings `postings` writes.
    fn index(header: impl Fn(&mut Vec<u8>), entries: &[Vec<u8>], postings: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        header(&mut out);
        put_symbols(&mut out, &["a", "b", "job", "x"].map(String::from));
        put_varint(&mut out, entries.len() as u64);
        for e in entries {
            put_bytes(&mut out, e);
        }
        postings(&mut out);
        with_crc(out)
    }

    #[test]
    fn runs_round_trip_singles_runs_and_gaps() {
        for ids in [vec![], vec![0], vec![5], vec![0, 1], vec![0, 2, 3, 4, 9, 11, 12], (3..300).collect::<Vec<u32>>()] {
            let set: RoaringBitmap = ids.iter().copied().collect();
            let mut out = Vec::new();
            put_runs(&mut out, &set);
            assert_eq!(runs(&out, 300, &mut 300), Some(set), "{ids:?}");
        }
        let mut out = Vec::new();
        put_runs(&mut out, &(0..100).collect());
        assert_eq!(out.len(), 2, "a run of 100 is two bytes: {out:?}");
        assert_eq!(runs(&out, 99, &mut 100), None, "a run past the series count is refused");
        assert_eq!(runs(&out, 100, &mut 99), None, "a run past the allowance is refused");
        assert_eq!(runs(&[0x80], 10, &mut 10), None, "a truncated varint is refused");
    }

    #[test]
    fn series_entries_name_pairs_and_count_times_from_the_base() {
        let base = 1_700_000_000_000;
        let chunks = [
            ChunkRef { min_t: base + 15_000, max_t: base + 60_000, offset: 8, len: 20 },
            ChunkRef { min_t: base + 75_000, max_t: base + 90_000, offset: 32, len: 9 },
        ];
        let mut entry = Vec::new();
        put_series_entry(&mut entry, &[0, 2], &chunks, base);
        let bytes = index(
            |out| put_header(out, base),
            &[entry[1..].to_vec()],
            |out| {
                let set: RoaringBitmap = [0].into_iter().collect();
                put_postings(out, &[(2, 0, set.clone()), (2, 1, RoaringBitmap::new()), (3, 1, set)]);
            },
        );
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.postings[2].2.iter().collect::<Vec<_>>(), [0]);
        let read = parsed.entries.read(&bytes, parsed.series[0]).unwrap();
        assert_eq!(read, SeriesEntry { labels: vec![(2, 0), (3, 1)], chunks: chunks.to_vec() });

        let mut past = Vec::new();
        put_series_entry(&mut past, &[0, 3], &chunks, base);
        let bytes = index(|out| put_header(out, base), &[past[1..].to_vec()], |out| put_postings(out, &[]));
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.entries.read(&bytes, parsed.series[0]), None, "a pair past the postings is refused");
    }

    #[test]
    fn hostile_indexes_are_refused_not_expanded() {
        // Two entries of two bytes with their lengths: room for four postings numbers, not six.
        let entries = [vec![0], vec![0]];
        let both: RoaringBitmap = [0, 1].into_iter().collect();
        let header = |out: &mut Vec<u8>| put_header(out, 0);
        let fits = index(header, &entries, |out| put_postings(out, &[(2, 0, both.clone())]));
        assert!(parse(&fits).is_ok());
        let over = index(header, &entries, |out| {
            put_postings(out, &[(2, 0, both.clone()), (2, 1, both.clone()), (3, 0, both.clone())])
        });
        assert!(parse(&over).is_err(), "more postings numbers than entry bytes");
        let unsorted = index(header, &entries, |out| {
            put_postings(out, &[(2, 1, RoaringBitmap::new()), (2, 0, RoaringBitmap::new())])
        });
        assert_eq!(parse(&unsorted).err(), Some("index: postings not sorted"));

        let mut entry = Vec::new();
        put_varint(&mut entry, 2);
        put_varint(&mut entry, u64::MAX);
        put_varint(&mut entry, 0);
        let huge = index(header, &[entry], |out| put_postings(out, &[]));
        let parsed = parse(&huge).unwrap();
        assert_eq!(parsed.entries.read(&huge, parsed.series[0]), None, "a pair number past u64 is refused");
    }

    #[test]
    fn version_1_indexes_are_still_read() {
        // Written by hand as version 1 wrote it: labels as symbol numbers, the first chunk's
        // min time as is, postings as portable roaring bitmaps.
        let mut e = Vec::new();
        for v in [2, 2, 0, 3, 1, 1, zigzag(1_700_000_000_000), 5, 8, 12] {
            put_varint(&mut e, v);
        }
        let bytes = index(
            |out| out.extend_from_slice(b"PYRIDX\x00\x01"),
            &[e],
            |out| {
                put_varint(out, 2);
                for (n, v) in [(2, 0), (3, 1)] {
                    put_varint(out, n);
                    put_varint(out, v);
                    let mut set = Vec::new();
                    RoaringBitmap::from_iter([0u32]).serialize_into(&mut set).unwrap();
                    put_bytes(out, &set);
                }
            },
        );
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.postings.len(), 2);
        let read = parsed.entries.read(&bytes, parsed.series[0]).unwrap();
        let chunk = ChunkRef { min_t: 1_700_000_000_000, max_t: 1_700_000_000_005, offset: 8, len: 12 };
        assert_eq!(read, SeriesEntry { labels: vec![(2, 0), (3, 1)], chunks: vec![chunk] });
        let mut unknown = bytes.clone();
        unknown[7] = 3;
        let unknown = with_crc(unknown[..unknown.len() - 4].to_vec());
        assert!(parse(&unknown).is_err(), "an unknown version is refused");
    }
}
