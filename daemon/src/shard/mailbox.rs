//! Messages to a shard, and the loop that applies them to its storage.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use pyrite_core::labels::{Labels, Matcher};
use pyrite_core::promql::{evaluate_fragment, EvalError, EvalParams, FragmentOutput, Plan, QueryResult};
use pyrite_core::remote::WriteSeries;
use pyrite_core::scrape::ShardBatch;
use pyrite_core::tsdb::head::{Head, HeadStats};

use super::storage::{AppendReply, Storage};
use crate::context::Context;
use crate::metrics::{shard_label, MetricLabels};

/// A message to a shard. Replies travel on the enclosed channels.
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
    /// Evaluate every fragment of a plan on this shard's series.
    Fragments {
        plan: Arc<Plan>,
        params: EvalParams,
        reply: flume::Sender<Result<Vec<FragmentOutput>, EvalError>>,
    },
    /// Coordinate a whole query from this shard (the one whose HTTP handler received it).
    Query {
        plan: Arc<Plan>,
        params: EvalParams,
        reply: flume::Sender<Result<QueryResult, EvalError>>,
    },
    Series {
        matchers: Vec<Vec<Matcher>>,
        mint: i64,
        maxt: i64,
        reply: flume::Sender<Vec<Labels>>,
    },
    LabelNames {
        matchers: Vec<Vec<Matcher>>,
        mint: i64,
        maxt: i64,
        reply: flume::Sender<Vec<String>>,
    },
    LabelValues {
        name: String,
        matchers: Vec<Vec<Matcher>>,
        mint: i64,
        maxt: i64,
        reply: flume::Sender<Vec<String>>,
    },
    /// Counts for `/api/v1/status/tsdb`.
    TsdbStats {
        reply: flume::Sender<HeadStats>,
    },
    /// Snapshot the head (or at least sync the log) and stop taking appends: the process is
    /// exiting.
    Shutdown {
        reply: flume::Sender<()>,
    },
}

/// `Send` handles to every shard's mailbox.
#[derive(Clone)]
pub struct Shards {
    mailboxes: Arc<[flume::Sender<Request>]>,
}

impl Shards {
    pub fn new(mailboxes: Vec<flume::Sender<Request>>) -> Self {
        Shards { mailboxes: mailboxes.into() }
    }

    pub fn len(&self) -> usize {
        self.mailboxes.len()
    }

    /// Sends a request built by `make` with a fresh reply channel to shard `i`; returns the
    /// receiving end. A shard that has stopped answers nothing: its receiver reports disconnect.
    pub fn ask<T>(&self, i: usize, make: impl FnOnce(flume::Sender<T>) -> Request) -> flume::Receiver<T> {
        let (tx, rx) = flume::bounded(1);
        let _ = self.mailboxes[i].send(make(tx));
        rx
    }

    /// Asks every shard and collects the answers in shard order.
    pub async fn ask_all<T>(&self, make: impl Fn(flume::Sender<T>) -> Request) -> Result<Vec<T>, ShardGone> {
        let receivers: Vec<_> = (0..self.len()).map(|i| self.ask(i, &make)).collect();
        let mut out = Vec::with_capacity(receivers.len());
        for rx in receivers {
            out.push(rx.recv_async().await.map_err(|_| ShardGone)?);
        }
        Ok(out)
    }
}

/// A shard stopped without answering (it panicked); the process is going down.
#[derive(Debug, thiserror::Error)]
#[error("a shard stopped answering")]
pub struct ShardGone;

fn union_matching<T>(head: &Head, matchers: &[Vec<Matcher>], f: impl Fn(&Head, &[Matcher]) -> Vec<T>) -> Vec<T> {
    if matchers.is_empty() {
        return f(head, &[]);
    }
    matchers.iter().flat_map(|m| f(head, m)).collect()
}

/// Applies requests to the storage until every sender is gone or the process shuts down.
pub async fn serve(index: usize, mailbox: flume::Receiver<Request>, storage: Rc<RefCell<Storage>>, ctx: Arc<Context>) {
    let shard = shard_label(index);
    while let Ok(request) = mailbox.recv_async().await {
        match request {
            Request::Append { batch, reply } => {
                let mut s = storage.borrow_mut();
                let r = s.append(batch);
                record_append(&ctx, &shard, &s.head, &r);
                let _ = reply.send(r);
            }
            Request::Write { series, reply } => {
                let mut s = storage.borrow_mut();
                let r = s.write(series);
                record_append(&ctx, &shard, &s.head, &r);
                let _ = reply.send(r);
            }
            Request::Shutdown { reply } => {
                let started = std::time::Instant::now();
                let mut s = storage.borrow_mut();
                match s.sync().and_then(|()| s.snapshot()) {
                    Ok(()) => tracing::info!(
                        shard = index,
                        seconds = started.elapsed().as_secs_f64(),
                        "head snapshot written"
                    ),
                    // The log is still complete; the next start replays it.
                    Err(e) => tracing::error!(shard = index, error = %e, "cannot write the head snapshot at shutdown"),
                }
                let _ = reply.send(());
                return;
            }
            Request::Fragments { plan, params, reply } => {
                let s = storage.borrow();
                let out = (0..plan.fragments.len()).map(|i| evaluate_fragment(&plan, i, &params, &s.head)).collect();
                let _ = reply.send(out);
            }
            Request::Query { plan, params, reply } => {
                monoio::spawn(crate::query::coordinate(ctx.clone(), plan, params, reply));
            }
            Request::TsdbStats { reply } => {
                let _ = reply.send(storage.borrow().head.stats());
            }
            Request::Series { matchers, mint, maxt, reply } => {
                let _ = reply.send(union_matching(&storage.borrow().head, &matchers, |h, m| h.series(m, mint, maxt)));
            }
            Request::LabelNames { matchers, mint, maxt, reply } => {
                let head = &storage.borrow().head;
                let _ = reply.send(union_matching(head, &matchers, |h, m| h.label_names(m, mint, maxt)));
            }
            Request::LabelValues { name, matchers, mint, maxt, reply } => {
                let head = &storage.borrow().head;
                let _ = reply.send(union_matching(head, &matchers, |h, m| h.label_values(&name, m, mint, maxt)));
            }
        }
    }
}

fn record_append(ctx: &Context, shard: &MetricLabels, head: &Head, r: &AppendReply) {
    ctx.metrics.samples_appended.get_or_create(shard).inc_by(r.appended as u64);
    ctx.metrics.out_of_order.get_or_create(shard).inc_by(r.out_of_order as u64);
    ctx.metrics.duplicates.get_or_create(shard).inc_by(r.duplicates as u64);
    ctx.metrics.head_series.get_or_create(shard).set(head.num_series() as i64);
    if let Some(e) = &r.storage_error {
        ctx.metrics.wal_write_failures.get_or_create(shard).inc();
        tracing::error!(error = e.as_str(), "appended samples are not durable");
    }
}

/// Once a minute drops data older than the retention period, and the oldest data beyond the
/// size budget, and updates the chunk gauge.
pub async fn retention_loop(index: usize, storage: Rc<RefCell<Storage>>, ctx: Arc<Context>) {
    let shard = shard_label(index);
    loop {
        monoio::time::sleep(std::time::Duration::from_secs(60)).await;
        let mut cutoff = crate::clock::now_ms() - ctx.retention.millis();
        if let Some(budget) = ctx.retention_size_per_shard {
            match storage.borrow().size_cutoff(budget) {
                Ok(Some(by_size)) if by_size > cutoff => {
                    tracing::info!(shard = index, budget, cutoff = by_size, "size retention drops the oldest data");
                    cutoff = by_size;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(shard = index, error = %e, "cannot measure the write-ahead log"),
            }
        }
        let (chunks, segments) = storage.borrow_mut().truncate_before(cutoff);
        ctx.metrics.head_chunks.get_or_create(&shard).set(storage.borrow().head.num_chunks() as i64);
        match segments {
            Ok(segments) if chunks + segments > 0 => tracing::debug!(chunks, segments, "retention dropped old data"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot drop old write-ahead log segments"),
        }
    }
}

/// Fsyncs the write-ahead log every `interval` (`--storage.tsdb.wal-fsync-interval`).
pub async fn sync_loop(storage: Rc<RefCell<Storage>>, interval: std::time::Duration) {
    loop {
        monoio::time::sleep(interval).await;
        if let Err(e) = storage.borrow_mut().sync() {
            tracing::error!(error = %e, "cannot sync the write-ahead log");
        }
    }
}
