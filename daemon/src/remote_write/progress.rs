//! Where a remote-write queue stands in each shard's log, kept on disk so that a restart (or a
//! `kill -9`) resumes there: `<storage.tsdb.path>/remote_write/<queue>/progress`.
//!
//! * `acked`: everything before these positions was answered by the receiver (or given up on).
//! * `round` lines: the rounds being sent, in order, each written before its first request:
//!   its end positions and the shard count that split it. After a crash the rounds are read and
//!   split again exactly as they were, so every request is sent again identical. A receiver
//!   that already stored one refuses it whole or takes it as duplicates (Prometheus answers 400
//!   for the out-of-order samples it holds and stores nothing of the request); a request mixing
//!   stored and new samples, which such a receiver would refuse whole and lose the new ones of,
//!   is never made.
//!
//! The file is replaced by a rename, so a crash leaves the old or the new one, never half.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use pyrite_tsdb::wal::follow::Position;

/// A round sent but not yet wholly answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub end: Vec<Position>,
    pub shards: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub acked: Vec<Position>,
    pub rounds: Vec<InFlight>,
}

const HEADER: &str = "pyrite remote-write progress 1";

/// The progress file of one queue.
pub struct ProgressFile {
    path: PathBuf,
}

/// A progress file that cannot be used; the queue starts afresh at the logs' ends.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct ProgressError {
    path: String,
    why: String,
}

fn positions(text: &str) -> Option<Vec<Position>> {
    text.split_whitespace()
        .map(|p| {
            let (segment, offset) = p.split_once(':')?;
            Some(Position { segment: segment.parse().ok()?, offset: offset.parse().ok()? })
        })
        .collect()
}

fn write_positions(out: &mut String, positions: &[Position]) {
    for p in positions {
        out.push_str(&format!(" {}:{}", p.segment, p.offset));
    }
}

impl ProgressFile {
    /// The progress file in `dir` (created if missing).
    pub fn new(dir: &Path) -> io::Result<ProgressFile> {
        fs::create_dir_all(dir)?;
        Ok(ProgressFile { path: dir.join("progress") })
    }

    /// The saved progress for `shards` logs; None if there is none yet.
    pub fn load(&self, shards: usize) -> Result<Option<Progress>, ProgressError> {
        let err = |why: &str| ProgressError { path: self.path.display().to_string(), why: why.to_string() };
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(&e.to_string())),
        };
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(err("not a progress file"));
        }
        let mut progress = Progress { acked: Vec::new(), rounds: Vec::new() };
        for line in lines {
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "acked" => progress.acked = positions(rest).ok_or_else(|| err("bad acked positions"))?,
                "round" => {
                    let (shards, end) = rest.split_once(' ').unwrap_or((rest, ""));
                    let shards = shards.parse().map_err(|_| err("bad round shard count"))?;
                    let end = positions(end).ok_or_else(|| err("bad round positions"))?;
                    progress.rounds.push(InFlight { end, shards });
                }
                _ => return Err(err("unknown line")),
            }
        }
        let counts_match = progress.acked.len() == shards && progress.rounds.iter().all(|r| r.end.len() == shards);
        if !counts_match {
            return Err(err("written for another number of shards"));
        }
        Ok(Some(progress))
    }

    /// Replaces the saved progress.
    pub fn save(&self, progress: &Progress) -> io::Result<()> {
        let mut text = format!("{HEADER}\nacked");
        write_positions(&mut text, &progress.acked);
        for round in &progress.rounds {
            text.push_str(&format!("\nround {}", round.shards));
            write_positions(&mut text, &round.end);
        }
        text.push('\n');
        let tmp = self.path.with_extension("tmp");
        fs::write(&tmp, text)?;
        fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_round_trips_and_bad_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("pyrite-progress-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let file = ProgressFile::new(&dir).unwrap();
        assert_eq!(file.load(2).unwrap(), None);
        let p = |segment, offset| Position { segment, offset };
        let progress = Progress {
            acked: vec![p(3, 10), p(0, 0)],
            rounds: vec![
                InFlight { end: vec![p(4, 7), p(0, 99)], shards: 3 },
                InFlight { end: vec![p(5, 1), p(0, 120)], shards: 3 },
            ],
        };
        file.save(&progress).unwrap();
        assert_eq!(file.load(2).unwrap(), Some(progress));
        assert!(file.load(3).is_err(), "another shard count");
        fs::write(dir.join("progress"), "garbage").unwrap();
        assert!(file.load(2).is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
