//! Messages to a shard, and the loop that applies them to its head.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use pyrite_core::labels::{Labels, Matcher};
use pyrite_core::promql::{evaluate_fragment, EvalError, EvalParams, FragmentOutput, Plan, QueryResult};
use pyrite_core::remote::WriteSeries;
use pyrite_core::scrape::ShardBatch;
use pyrite_core::tsdb::head::{AppendError, Head};

use crate::context::Context;
use crate::metrics::shard_label;

/// The outcome of an append batch.
#[derive(Debug, Default)]
pub struct AppendReply {
    /// Ids of the batch's `new` series, in order.
    pub ids: Vec<u32>,
    pub appended: usize,
    pub out_of_order: usize,
    pub duplicates: usize,
}

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

impl AppendReply {
    fn tally(&mut self, result: Result<(), AppendError>) {
        match result {
            Ok(()) => self.appended += 1,
            Err(AppendError::OutOfOrder) => self.out_of_order += 1,
            Err(AppendError::Duplicate) => self.duplicates += 1,
        }
    }
}

fn apply_append(head: &mut Head, batch: ShardBatch) -> AppendReply {
    let mut reply = AppendReply::default();
    for (id, t, v) in batch.known {
        reply.tally(head.append(id, t, v));
    }
    for (labels, t, v) in batch.new {
        let (id, _) = head.get_or_create(&labels);
        reply.tally(head.append(id, t, v));
        reply.ids.push(id);
    }
    reply
}

fn apply_write(head: &mut Head, series: Vec<WriteSeries>) -> AppendReply {
    let mut reply = AppendReply::default();
    for ws in series {
        let (id, _) = head.get_or_create(&ws.labels);
        for x in ws.samples {
            reply.tally(head.append(id, x.t, x.v));
        }
    }
    reply
}

fn union_matching<T>(head: &Head, matchers: &[Vec<Matcher>], f: impl Fn(&Head, &[Matcher]) -> Vec<T>) -> Vec<T> {
    if matchers.is_empty() {
        return f(head, &[]);
    }
    matchers.iter().flat_map(|m| f(head, m)).collect()
}

/// Applies requests to the head until every sender is gone.
pub async fn serve(index: usize, mailbox: flume::Receiver<Request>, head: Rc<RefCell<Head>>, ctx: Arc<Context>) {
    let shard = shard_label(index);
    while let Ok(request) = mailbox.recv_async().await {
        match request {
            Request::Append { batch, reply } => {
                let mut h = head.borrow_mut();
                let r = apply_append(&mut h, batch);
                record_append(&ctx, &shard, &h, &r);
                let _ = reply.send(r);
            }
            Request::Write { series, reply } => {
                let mut h = head.borrow_mut();
                let r = apply_write(&mut h, series);
                record_append(&ctx, &shard, &h, &r);
                let _ = reply.send(r);
            }
            Request::Fragments { plan, params, reply } => {
                let h = head.borrow();
                let out = (0..plan.fragments.len()).map(|i| evaluate_fragment(&plan, i, &params, &*h)).collect();
                let _ = reply.send(out);
            }
            Request::Query { plan, params, reply } => {
                monoio::spawn(crate::query::coordinate(ctx.clone(), plan, params, reply));
            }
            Request::Series { matchers, mint, maxt, reply } => {
                let _ = reply.send(union_matching(&head.borrow(), &matchers, |h, m| h.series(m, mint, maxt)));
            }
            Request::LabelNames { matchers, mint, maxt, reply } => {
                let _ = reply.send(union_matching(&head.borrow(), &matchers, |h, m| h.label_names(m, mint, maxt)));
            }
            Request::LabelValues { name, matchers, mint, maxt, reply } => {
                let _ =
                    reply.send(union_matching(&head.borrow(), &matchers, |h, m| h.label_values(&name, m, mint, maxt)));
            }
        }
    }
}

fn record_append(ctx: &Context, shard: &crate::metrics::MetricLabels, head: &Head, r: &AppendReply) {
    ctx.metrics.samples_appended.get_or_create(shard).inc_by(r.appended as u64);
    ctx.metrics.out_of_order.get_or_create(shard).inc_by(r.out_of_order as u64);
    ctx.metrics.duplicates.get_or_create(shard).inc_by(r.duplicates as u64);
    ctx.metrics.head_series.get_or_create(shard).set(head.num_series() as i64);
}

/// Drops chunks older than the retention period once a minute.
pub async fn retention_loop(head: Rc<RefCell<Head>>, ctx: Arc<Context>) {
    loop {
        monoio::time::sleep(std::time::Duration::from_secs(60)).await;
        let cutoff = crate::clock::now_ms() - ctx.retention.millis();
        let dropped = head.borrow_mut().truncate_before(cutoff);
        if dropped > 0 {
            tracing::debug!(dropped, "retention dropped chunks");
        }
    }
}
