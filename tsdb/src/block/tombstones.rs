//! Tombstones: deleted time ranges per series of a block, applied when the block is read and
//! made permanent by rewriting the block (`clean_tombstones`, compaction).
//!
//! The `tombstones` file is JSON, `{"<series number>": [[min, max], ...], ...}` with inclusive
//! millisecond bounds as upstream's intervals; it is replaced atomically (written to `.tmp`,
//! fsynced, renamed).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use super::writer::write_synced;
use super::TOMBSTONES_FILE;

/// A deleted time range, both ends inclusive.
pub type Interval = (i64, i64);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tombstones(BTreeMap<u32, Vec<Interval>>);

impl Tombstones {
    /// Marks `interval` of series `series` deleted, merging it with overlapping intervals.
    pub fn add(&mut self, series: u32, (lo, hi): Interval) {
        let list = self.0.entry(series).or_default();
        list.push((lo, hi));
        list.sort_unstable();
        let mut merged: Vec<Interval> = Vec::with_capacity(list.len());
        for &(a, b) in list.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *list = merged;
    }

    /// The deleted intervals of `series`, sorted and disjoint.
    pub fn get(&self, series: u32) -> &[Interval] {
        self.0.get(&series).map_or(&[], Vec::as_slice)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of intervals.
    pub fn len(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    /// Whether `t` is deleted, given the series' intervals.
    pub fn covers(intervals: &[Interval], t: i64) -> bool {
        intervals.iter().any(|&(a, b)| a <= t && t <= b)
    }

    /// Reads a block's tombstones; none if the file does not exist.
    pub fn read(dir: &Path) -> Result<Tombstones, String> {
        let bytes = match fs::read(dir.join(TOMBSTONES_FILE)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Tombstones::default()),
            Err(e) => return Err(format!("cannot read tombstones: {e}")),
        };
        let map: BTreeMap<u32, Vec<Interval>> =
            serde_json::from_slice(&bytes).map_err(|e| format!("tombstones: {e}"))?;
        Ok(Tombstones(map))
    }

    /// Replaces a block's tombstones file (removes it when there are none).
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let path = dir.join(TOMBSTONES_FILE);
        if self.is_empty() {
            return match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let tmp = dir.join(format!("{TOMBSTONES_FILE}.tmp"));
        write_synced(&tmp, &serde_json::to_vec(&self.0).expect("tombstones serialize"))?;
        fs::rename(&tmp, &path)?;
        fs::File::open(dir)?.sync_all()
    }
}
