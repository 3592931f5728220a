//! Messages to a shard, and the loop that applies them to its storage.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use pyrite_core::labels::{Labels, Matcher};
use pyrite_core::promql::{
    evaluate_fragment, Cancelled, EvalError, EvalParams, Expr, FragmentOutput, Plan, QueryResult,
};
use pyrite_core::remote::WriteSeries;
use pyrite_core::scrape::ShardBatch;
use pyrite_core::value::{is_stale_nan, Sample};
use pyrite_tsdb::head::{Head, HeadStats};

use crate::context::Context;
use crate::metrics::{shard_label, MetricLabels};
use pyrite_tsdb::db::{AppendReply, Db};

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
    /// Coordinate a whole query from this shard (the one whose HTTP handler received it, or
    /// the next in turn for the rules thread).
    Query {
        expr: Expr,
        params: EvalParams,
        /// The query's own timeout, if it asked for one (the server's applies anyway).
        timeout: Option<std::time::Duration>,
        cancelled: Cancelled,
        reply: flume::Sender<Result<QueryResult, EvalError>>,
    },
    Series {
        matchers: Vec<Vec<Matcher>>,
        mint: i64,
        maxt: i64,
        reply: flume::Sender<Result<Vec<Labels>, String>>,
    },
    LabelNames {
        matchers: Vec<Vec<Matcher>>,
        mint: i64,
        maxt: i64,
        reply: flume::Sender<Result<Vec<String>, String>>,
    },
    LabelValues {
        name: String,
        matchers: Vec<Vec<Matcher>>,
        mint: i64,
        maxt: i64,
        reply: flume::Sender<Result<Vec<String>, String>>,
    },
    /// The newest sample in `[mint, maxt]` of each matching series, unless it is a staleness
    /// marker (`/federate`).
    Latest {
        matchers: Vec<Vec<Matcher>>,
        mint: i64,
        maxt: i64,
        reply: flume::Sender<Result<Vec<(Labels, Sample)>, String>>,
    },
    /// Delete the matching series' samples in `[mint, maxt]` (admin API).
    Delete {
        matchers: Vec<Vec<Matcher>>,
        mint: i64,
        maxt: i64,
        reply: flume::Sender<Result<(), String>>,
    },
    /// Copy the shard's blocks, and the head as a block, into `dir` (admin API).
    Snapshot {
        dir: std::path::PathBuf,
        skip_head: bool,
        reply: flume::Sender<Result<(), String>>,
    },
    /// Rewrite blocks without their deleted samples (admin API).
    CleanTombstones {
        reply: flume::Sender<Result<(), String>>,
    },
    /// Counts for `/api/v1/status/tsdb`.
    TsdbStats {
        reply: flume::Sender<HeadStats>,
    },
    /// Start scraping a target on this shard (its loop runs here until the target is removed).
    Scrape {
        target: Arc<crate::scrape::ActiveTarget>,
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
        self.tell(i, make(tx));
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

    /// Sends shard `i` a request that needs no answer.
    pub fn tell(&self, i: usize, request: Request) {
        let _ = self.mailboxes[i].send(request);
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
}

/// A shard stopped without answering (it panicked); the process is going down.
#[derive(Debug, thiserror::Error)]
#[error("a shard stopped answering")]
pub struct ShardGone;

/// `f` applied to each `match[]` selector (or to none), results concatenated.
fn union_matching<T, E: ToString>(
    matchers: &[Vec<Matcher>],
    f: impl Fn(&[Matcher]) -> Result<Vec<T>, E>,
) -> Result<Vec<T>, String> {
    // Reads only: a panic fails this request, not the process (see `crate::panic`).
    let union = || {
        if matchers.is_empty() {
            return f(&[]).map_err(|e| e.to_string());
        }
        let mut out = Vec::new();
        for m in matchers {
            out.extend(f(m).map_err(|e| e.to_string())?);
        }
        Ok(out)
    };
    crate::panic::catch(union).unwrap_or_else(|panic| Err(format!("internal error: {panic}")))
}

/// Applies requests to the storage until every sender is gone or the process shuts down.
pub async fn serve(index: usize, mailbox: flume::Receiver<Request>, storage: Rc<RefCell<Db>>, ctx: Arc<Context>) {
    let shard = shard_label(index);
    while let Ok(request) = mailbox.recv_async().await {
        match request {
            Request::Append { batch, reply } => {
                let mut s = storage.borrow_mut();
                s.head.set_max_valid(crate::clock::now_ms().saturating_add(ctx.future_window));
                let r = s.append(batch);
                record_append(&ctx, &shard, &s.head, &r);
                let _ = reply.send(r);
            }
            Request::Write { series, reply } => {
                let mut s = storage.borrow_mut();
                s.head.set_max_valid(crate::clock::now_ms().saturating_add(ctx.future_window));
                let r = s.write(series);
                record_append(&ctx, &shard, &s.head, &r);
                let _ = reply.send(r);
            }
            Request::Scrape { target } => {
                monoio::spawn(crate::scrape::run_target(target, ctx.clone()));
            }
            Request::Shutdown { reply } => {
                let started = std::time::Instant::now();
                let mut s = storage.borrow_mut();
                match s.snapshot() {
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
                let querier = s.querier();
                let evaluate =
                    || (0..plan.fragments.len()).map(|i| evaluate_fragment(&plan, i, &params, &querier)).collect();
                let out = crate::panic::catch(evaluate).unwrap_or_else(|e| Err(EvalError::Internal(e)));
                drop(s);
                if let Err(EvalError::DamagedBlock { block, reason }) = &out {
                    set_aside(index, &ctx, &mut storage.borrow_mut(), block, reason);
                }
                let _ = reply.send(out);
            }
            Request::Query { expr, params, timeout, cancelled, reply } => {
                monoio::spawn(crate::query::coordinate(ctx.clone(), expr, params, timeout, cancelled, reply));
            }
            Request::Latest { matchers, mint, maxt, reply } => {
                let s = storage.borrow();
                let q = s.querier();
                let latest = union_matching(&matchers, |m| {
                    q.select(m, mint, maxt).map(|all| {
                        all.into_iter()
                            .filter_map(|s| {
                                let last = *s.samples.last()?;
                                (!is_stale_nan(last.v)).then_some((s.labels, last))
                            })
                            .collect()
                    })
                });
                let _ = reply.send(latest);
            }
            Request::TsdbStats { reply } => {
                let _ = reply.send(storage.borrow().head.stats());
            }
            Request::Series { matchers, mint, maxt, reply } => {
                let s = storage.borrow();
                let q = s.querier();
                let _ = reply.send(union_matching(&matchers, |m| q.series(m, mint, maxt)));
            }
            Request::LabelNames { matchers, mint, maxt, reply } => {
                let s = storage.borrow();
                let q = s.querier();
                let _ = reply.send(union_matching(&matchers, |m| Ok::<_, String>(q.label_names(m, mint, maxt))));
            }
            Request::LabelValues { name, matchers, mint, maxt, reply } => {
                let s = storage.borrow();
                let q = s.querier();
                let _ =
                    reply.send(union_matching(&matchers, |m| Ok::<_, String>(q.label_values(&name, m, mint, maxt))));
            }
            Request::Delete { matchers, mint, maxt, reply } => {
                let storage = storage.clone();
                monoio::spawn(async move {
                    blocks_idle(&storage).await;
                    let mut s = storage.borrow_mut();
                    let _ = reply.send(matchers.iter().try_for_each(|m| s.delete(m, mint, maxt)));
                });
            }
            Request::Snapshot { dir, skip_head, reply } => {
                let s = storage.borrow();
                let _ =
                    reply.send(s.snapshot_blocks(&dir, skip_head, crate::clock::now_ms()).map_err(|e| e.to_string()));
            }
            Request::CleanTombstones { reply } => {
                let storage = storage.clone();
                monoio::spawn(async move {
                    blocks_idle(&storage).await;
                    let mut s = storage.borrow_mut();
                    let cleaned = s.blocks.clean_tombstones(crate::clock::now_ms());
                    let _ = reply.send(
                        cleaned
                            .map(|n| tracing::info!(shard = index, blocks = n, "tombstones cleaned"))
                            .map_err(|e| e.to_string()),
                    );
                });
            }
        }
    }
}

/// Stops serving a block a query found damaged: this query failed on it, later ones answer
/// from the other blocks and the head.
fn set_aside(index: usize, ctx: &Context, storage: &mut Db, block: &str, reason: &str) {
    match storage.blocks.set_aside(block) {
        Ok(true) => {
            ctx.metrics.blocks_refused.get_or_create(&shard_label(index)).inc();
            tracing::error!(shard = index, block, reason, "damaged block set aside; its data is no longer served");
        }
        Ok(false) => {}
        Err(e) => tracing::error!(shard = index, block, error = %e, "cannot set a damaged block aside"),
    }
}

/// Waits until no compaction is reading the blocks (a deletion made meanwhile would be lost
/// in its output).
async fn blocks_idle(storage: &RefCell<Db>) {
    while storage.borrow().blocks.compacting() {
        monoio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn record_append(ctx: &Context, shard: &MetricLabels, head: &Head, r: &AppendReply) {
    ctx.metrics.samples_appended.get_or_create(shard).inc_by(r.appended as u64);
    ctx.metrics.out_of_order.get_or_create(shard).inc_by(r.out_of_order as u64);
    ctx.metrics.duplicates.get_or_create(shard).inc_by(r.duplicates as u64);
    ctx.metrics.out_of_bounds.get_or_create(shard).inc_by(r.out_of_bounds as u64);
    ctx.metrics.too_far_in_future.get_or_create(shard).inc_by(r.too_far_in_future as u64);
    ctx.metrics.head_series.get_or_create(shard).set(head.num_series() as i64);
    if let Some(e) = &r.storage_error {
        ctx.metrics.wal_write_failures.get_or_create(shard).inc();
        tracing::error!(error = e.as_str(), "appended samples are not durable");
    }
}

/// Fsyncs the write-ahead log every `interval` (`--storage.tsdb.wal-fsync-interval`).
pub async fn sync_loop(storage: Rc<RefCell<Db>>, interval: std::time::Duration) {
    loop {
        monoio::time::sleep(interval).await;
        if let Err(e) = storage.borrow_mut().sync() {
            tracing::error!(error = %e, "cannot sync the write-ahead log");
        }
    }
}
