//! `Send` handles to the shard threads, and the messages they take.
//!
//! A shard's storage is owned by its thread; everyone else — HTTP handlers, scrape loops on
//! other shards, the rules thread, the coordinator of a query — reaches it only through a
//! [`Message`]: a [`Request`] on its storage (every read names a [`Selection`]), a task to run
//! on its runtime, or the order to shut down. Replies travel on channels inside the messages.
//! This module knows nothing of what the tasks are, so that every subsystem can depend on it
//! and the shard thread, which runs them all, depends on the subsystems.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyrite_core::config::Config;
use pyrite_core::labels::{Labels, Matcher, Projection};
use pyrite_core::promql::{EvalError, EvalParams, FragmentOutput, Interrupt, Plan};
use pyrite_core::remote::WriteSeries;
use pyrite_core::scrape::ShardBatch;
use pyrite_core::value::{Exemplar, SeriesSamples};
use pyrite_tsdb::db::{AppendReply, StorageError};
use pyrite_tsdb::head::HeadStats;
use pyrite_tsdb::querier::merge_parts;

/// What the configuration file sets in each shard's head, at start and at every reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadSettings {
    /// Exemplars kept ([`Config::exemplars_per_shard`]).
    pub max_exemplars: usize,
    /// `storage.tsdb.out_of_order_time_window` in ms.
    pub out_of_order_window: i64,
}

impl HeadSettings {
    /// The settings of `config` for one of `shards`, with exemplar storage `exemplars` on or
    /// off (`--enable-feature=exemplar-storage`).
    pub fn of(config: &Config, exemplars: bool, shards: usize) -> HeadSettings {
        HeadSettings {
            max_exemplars: config.exemplars_per_shard(exemplars, shards),
            out_of_order_window: config.out_of_order_window.millis(),
        }
    }
}

/// A message to a shard.
pub enum Message {
    Storage(Request),
    /// Runs a task on the shard's runtime (a target's scrape loop, a query's coordination).
    /// The task is made on the shard's thread, so it need not be `Send`.
    Spawn(Box<dyn FnOnce() -> LocalTask + Send>),
    /// Snapshot the head (or at least sync the log) and stop taking appends: the process is
    /// exiting.
    Shutdown {
        reply: flume::Sender<()>,
    },
}

/// A task that runs on one shard's runtime.
pub type LocalTask = Pin<Box<dyn Future<Output = ()>>>;

/// Which series a read is about: the union of the `match[]` selectors (every series if there
/// are none), with data in `[mint, maxt]`.
#[derive(Debug, Clone)]
pub struct Selection {
    pub matchers: Vec<Vec<Matcher>>,
    pub mint: i64,
    pub maxt: i64,
}

/// A request on a shard's storage.
pub enum Request {
    Append {
        batch: ShardBatch,
        reply: flume::Sender<AppendReply>,
    },
    /// Remote-written series owned by this shard.
    Write {
        series: Vec<WriteSeries>,
        reply: flume::Sender<AppendReply>,
    },
    /// The series matching `matchers` with their samples in `[mint, maxt]`, for a query
    /// evaluated on a query worker, as [`SelectAnswer`]s: in batches of `batch` series when
    /// only the head is read, else whole. The shard reads in slices, serving its other work in
    /// between, and gives up once `interrupt` fires or the asker stops waiting. With `newest`,
    /// a series holds only its newest sample in the range; with a projection, it may hold only
    /// its labels (see `shard::select::Select::labels`). A read of more than `max_samples`
    /// samples stops with `EvalError::TooManySamples`.
    Select {
        matchers: Vec<Matcher>,
        mint: i64,
        maxt: i64,
        newest: bool,
        labels: Projection,
        max_samples: usize,
        batch: usize,
        interrupt: Interrupt,
        reply: flume::Sender<Result<SelectAnswer, EvalError>>,
    },
    /// A query's fragments, evaluated on the shard if they are light, else handed to a query
    /// worker (see `shard::light`).
    Evaluate {
        plan: Arc<Plan>,
        params: EvalParams,
        reply: flume::Sender<Result<Vec<FragmentOutput>, EvalError>>,
        /// Queues the evaluation on a query worker.
        to_worker: Box<dyn FnOnce() + Send>,
    },
    Series {
        selection: Selection,
        reply: flume::Sender<Result<Vec<Labels>, ShardError>>,
    },
    LabelNames {
        selection: Selection,
        reply: flume::Sender<Result<Vec<String>, ShardError>>,
    },
    LabelValues {
        name: String,
        selection: Selection,
        reply: flume::Sender<Result<Vec<String>, ShardError>>,
    },
    /// Delete the selected series' samples in the selection's range (admin API).
    Delete {
        selection: Selection,
        reply: flume::Sender<Result<(), ShardError>>,
    },
    /// Copy the shard's blocks, and the head as a block, into `dir` (admin API).
    Snapshot {
        dir: PathBuf,
        skip_head: bool,
        reply: flume::Sender<Result<(), ShardError>>,
    },
    /// Rewrite blocks without their deleted samples (admin API).
    CleanTombstones {
        reply: flume::Sender<Result<(), ShardError>>,
    },
    /// The start of the shard's oldest block (`Db::oldest_block_start`), for remote read.
    OldestBlock {
        reply: flume::Sender<Option<i64>>,
    },
    /// Counts for `/api/v1/status/tsdb`.
    TsdbStats {
        reply: flume::Sender<HeadStats>,
    },
    /// The series matching any of `selectors` with their exemplars in `[mint, maxt]`
    /// (`/api/v1/query_exemplars`).
    Exemplars {
        selectors: Vec<Vec<Matcher>>,
        mint: i64,
        maxt: i64,
        reply: flume::Sender<Result<Vec<SeriesExemplars>, ShardError>>,
    },
    /// Apply these head settings from now on (a reload); no answer.
    HeadSettings(HeadSettings),
    /// The labels of head series by id (None: no such series), for the remote-write sender,
    /// which meets ids in the log whose series record it did not read.
    SeriesLabels {
        ids: Vec<u32>,
        reply: flume::Sender<Vec<Option<Labels>>>,
    },
}

/// One message of a shard's answer to [`Request::Select`].
pub enum SelectAnswer {
    /// The whole read: one part per block read, then the head's, to be merged with
    /// [`merge_parts`]. The only message.
    Whole(Vec<Vec<SeriesSamples>>),
    /// A batch of a read of the head alone, streamed so that neither side holds it whole; the
    /// asker takes one while the shard reads the next. The last says so.
    Batch { series: Vec<SeriesSamples>, last: bool },
}

impl SelectAnswer {
    /// The series of a whole read, merged, or of one batch.
    pub fn into_series(self) -> Vec<SeriesSamples> {
        match self {
            SelectAnswer::Whole(parts) => merge_parts(parts),
            SelectAnswer::Batch { series, .. } => series,
        }
    }
}

impl Request {
    /// A read whose asker stopped waiting (a client gone, a query past its deadline): nothing
    /// to do, as the answer would go nowhere. Requests that change storage are always done,
    /// and so is the remote-write sender's cheap look-up of labels.
    pub fn abandoned(&self) -> bool {
        match self {
            Request::Select { reply, .. } => reply.is_disconnected(),
            Request::Evaluate { reply, .. } => reply.is_disconnected(),
            Request::Series { reply, .. } => reply.is_disconnected(),
            Request::LabelNames { reply, .. } | Request::LabelValues { reply, .. } => reply.is_disconnected(),
            Request::TsdbStats { reply } => reply.is_disconnected(),
            Request::Exemplars { reply, .. } => reply.is_disconnected(),
            Request::OldestBlock { reply } => reply.is_disconnected(),
            Request::Append { .. }
            | Request::Write { .. }
            | Request::Delete { .. }
            | Request::Snapshot { .. }
            | Request::CleanTombstones { .. }
            | Request::HeadSettings(_)
            | Request::SeriesLabels { .. } => false,
        }
    }
}

/// A series' labels and exemplars.
pub type SeriesExemplars = (Labels, Vec<Exemplar>);

/// `Send` handles to every shard's mailbox, whether they are all serving, and what their log
/// replays found.
#[derive(Clone)]
pub struct Shards {
    mailboxes: Arc<[flume::Sender<Message>]>,
    ready: Arc<AtomicUsize>,
    replay: Arc<ReplayCounts>,
}

/// What the shards' log replays found, summed (`/api/v1/status/runtimeinfo` and `walreplay`).
#[derive(Default)]
pub struct ReplayCounts {
    pub segments: std::sync::atomic::AtomicU64,
    pub corruptions: std::sync::atomic::AtomicU64,
}

impl Shards {
    pub fn new(mailboxes: Vec<flume::Sender<Message>>) -> Self {
        Shards { mailboxes: mailboxes.into(), ready: Arc::default(), replay: Arc::default() }
    }

    pub fn replay(&self) -> &ReplayCounts {
        &self.replay
    }

    pub fn len(&self) -> usize {
        self.mailboxes.len()
    }

    /// Sends a storage request built by `make` with a fresh reply channel to shard `i`;
    /// returns the receiving end. A shard that has stopped answers nothing: its receiver
    /// reports disconnect.
    pub fn ask<T>(&self, i: usize, make: impl FnOnce(flume::Sender<T>) -> Request) -> flume::Receiver<T> {
        let (tx, rx) = flume::bounded(1);
        self.send(i, Message::Storage(make(tx)));
        rx
    }

    /// Sends each series to its owner shard; returns one reply channel per shard written to.
    pub fn write(&self, series: Vec<WriteSeries>) -> Vec<flume::Receiver<AppendReply>> {
        let mut per_shard: Vec<Vec<WriteSeries>> = (0..self.len()).map(|_| Vec::new()).collect();
        for ws in series {
            per_shard[ws.labels.owner(self.len())].push(ws);
        }
        per_shard
            .into_iter()
            .enumerate()
            .filter(|(_, series)| !series.is_empty())
            .map(|(i, series)| self.ask(i, |reply| Request::Write { series, reply }))
            .collect()
    }

    /// Sends `request`, which needs no answer, to every shard.
    pub fn tell_all(&self, request: impl Fn() -> Request) {
        (0..self.len()).for_each(|i| self.send(i, Message::Storage(request())));
    }

    /// Runs the task `make` makes on shard `i`'s runtime.
    pub fn spawn<F: Future<Output = ()> + 'static>(&self, i: usize, make: impl FnOnce() -> F + Send + 'static) {
        self.send(i, Message::Spawn(Box::new(move || Box::pin(make()))));
    }

    /// Tells shard `i` to shut down; the returned channel closes once it has.
    pub fn shut_down(&self, i: usize) -> flume::Receiver<()> {
        let (reply, done) = flume::bounded(1);
        self.send(i, Message::Shutdown { reply });
        done
    }

    fn send(&self, i: usize, message: Message) {
        let _ = self.mailboxes[i].send(message);
    }

    /// Asks every shard and collects the answers in shard order.
    pub async fn ask_all<T>(&self, make: impl Fn(flume::Sender<T>) -> Request) -> Result<Vec<T>, ShardGone> {
        self.ask_all_indexed(|_, reply| make(reply)).await
    }

    /// The same, with a request that depends on the shard's index.
    pub async fn ask_all_indexed<T>(
        &self,
        make: impl Fn(usize, flume::Sender<T>) -> Request,
    ) -> Result<Vec<T>, ShardGone> {
        let receivers: Vec<_> = (0..self.len()).map(|i| self.ask(i, |reply| make(i, reply))).collect();
        let mut out = Vec::with_capacity(receivers.len());
        for rx in receivers {
            out.push(rx.recv_async().await.map_err(|_| ShardGone)?);
        }
        Ok(out)
    }

    /// The series matching `matchers` with their samples in `[mint, maxt]` (with `newest`,
    /// only each one's newest) from every shard, read in slices as a query's are and merged
    /// per shard, stopped after `timeout` (`--query.timeout`) or past `max_samples` on a shard.
    pub async fn select_merged(
        &self,
        matchers: &[Matcher],
        (mint, maxt): (i64, i64),
        newest: bool,
        max_samples: usize,
        timeout: Duration,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        let deadline = Instant::now() + timeout.min(Duration::from_secs(86_400));
        let interrupt = Interrupt::new(move || match Instant::now() > deadline {
            true => Err(EvalError::Timeout("query execution".into())),
            false => Ok(()),
        });
        let answers = self
            .ask_all(|reply| Request::Select {
                matchers: matchers.to_vec(),
                mint,
                maxt,
                newest,
                labels: Projection::All,
                max_samples,
                batch: usize::MAX,
                interrupt: interrupt.clone(),
                reply,
            })
            .await
            .map_err(|e| EvalError::Internal(e.to_string()))?;
        let mut series = Vec::new();
        for answer in answers {
            series.extend(answer?.into_series());
        }
        Ok(series)
    }

    /// Records that one more shard is serving.
    pub fn mark_ready(&self) {
        self.ready.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether every shard is running and can answer queries.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) >= self.len()
    }
}

/// Why a shard could not answer a request.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Serving the request panicked: it failed, the shard serves on (see `crate::panic`).
    #[error("internal error: {0}")]
    Panic(String),
    #[error(transparent)]
    Gone(#[from] ShardGone),
}

/// A shard stopped without answering (it panicked); the process is going down.
#[derive(Debug, thiserror::Error)]
#[error("a shard stopped answering")]
pub struct ShardGone;
