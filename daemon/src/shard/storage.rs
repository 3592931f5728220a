//! One shard's storage: its head, and the write-ahead log that makes the head's appends
//! survive a crash. Every append goes through here: the head takes what it accepts, the log
//! records exactly that (and any series it created), and only then is the batch answered.

use std::io;
use std::path::Path;

use pyrite_core::labels::Labels;
use pyrite_core::remote::WriteSeries;
use pyrite_core::scrape::ShardBatch;
use pyrite_core::tsdb::head::{AppendError, Head};

use super::wal::{Replayed, Wal, WalOptions};

/// The outcome of an append batch.
#[derive(Debug, Default)]
pub struct AppendReply {
    /// Ids of the batch's `new` series, in order.
    pub ids: Vec<u32>,
    pub appended: usize,
    pub out_of_order: usize,
    pub duplicates: usize,
    /// The log could not be written: the samples are in memory but not durable.
    pub storage_error: Option<String>,
}

impl AppendReply {
    fn tally(&mut self, result: Result<(), AppendError>) -> bool {
        match result {
            Ok(()) => self.appended += 1,
            Err(AppendError::OutOfOrder) => self.out_of_order += 1,
            Err(AppendError::Duplicate) => self.duplicates += 1,
        }
        result.is_ok()
    }
}

pub struct Storage {
    pub head: Head,
    wal: Wal,
    /// Reused between batches: the samples the head accepted, and the series it created.
    accepted: Vec<(u32, i64, f64)>,
    created: Vec<(u32, Labels)>,
}

impl Storage {
    /// Opens the shard's log in `dir` and replays it into a new head.
    pub fn open(dir: &Path, options: WalOptions) -> io::Result<(Storage, Replayed)> {
        let mut head = Head::new();
        let (wal, replayed) = Wal::open(dir, options, &mut head)?;
        Ok((Storage { head, wal, accepted: Vec::new(), created: Vec::new() }, replayed))
    }

    fn series_id(&mut self, labels: &Labels) -> u32 {
        let (id, created) = self.head.get_or_create(labels);
        if created {
            self.created.push((id, labels.clone()));
        }
        id
    }

    fn append_one(&mut self, reply: &mut AppendReply, id: u32, t: i64, v: f64) {
        if reply.tally(self.head.append(id, t, v)) {
            self.accepted.push((id, t, v));
        }
    }

    /// Logs what the batch created and accepted, and completes the reply.
    fn commit(&mut self, mut reply: AppendReply) -> AppendReply {
        let created: Vec<(u32, &Labels)> = self.created.iter().map(|(id, l)| (*id, l)).collect();
        if let Err(e) = self.wal.log(&created, &self.accepted) {
            reply.storage_error = Some(format!("cannot write the write-ahead log: {e}"));
        }
        self.accepted.clear();
        self.created.clear();
        reply
    }

    /// Appends a scrape batch.
    pub fn append(&mut self, batch: ShardBatch) -> AppendReply {
        let mut reply = AppendReply::default();
        for (id, t, v) in batch.known {
            self.append_one(&mut reply, id, t, v);
        }
        for (labels, t, v) in batch.new {
            let id = self.series_id(&labels);
            self.append_one(&mut reply, id, t, v);
            reply.ids.push(id);
        }
        self.commit(reply)
    }

    /// Appends remote-written series.
    pub fn write(&mut self, series: Vec<WriteSeries>) -> AppendReply {
        let mut reply = AppendReply::default();
        for ws in series {
            let id = self.series_id(&ws.labels);
            for x in ws.samples {
                self.append_one(&mut reply, id, x.t, x.v);
            }
        }
        self.commit(reply)
    }

    /// Makes everything logged so far durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.wal.sync()
    }

    /// Writes the head as a snapshot, so that the next start loads it instead of replaying.
    pub fn snapshot(&mut self) -> io::Result<()> {
        self.wal.snapshot(&self.head)
    }

    /// The cutoff time that would bring the log under `budget` bytes, if it is over.
    pub fn size_cutoff(&self, budget: u64) -> io::Result<Option<i64>> {
        self.wal.size_cutoff(budget)
    }

    /// Drops data older than `cutoff`: chunks from the head, whole segments from the log.
    /// Returns the chunks and segments dropped.
    pub fn truncate_before(&mut self, cutoff: i64) -> (usize, io::Result<usize>) {
        let chunks = self.head.truncate_before(cutoff);
        (chunks, self.wal.drop_before(cutoff, &self.head))
    }
}
