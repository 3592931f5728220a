//! A shard: one thread, one monoio runtime, one head.
//!
//! The shard's head is owned by its mailbox loop and touched by nothing else; other shards and
//! HTTP handlers reach it only through [`Request`] messages. The same thread also serves HTTP
//! connections accepted on the shared listener, runs the scrape loops of the targets assigned
//! to it, and coordinates the queries its HTTP handlers receive.

mod housekeeping;
mod mailbox;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

pub use mailbox::{Request, Shards};
use pyrite_tsdb::db::{Db, Dirs};

use crate::context::Context;

/// Everything a shard thread starts with.
pub struct ShardStart {
    pub index: usize,
    pub mailbox: flume::Receiver<Request>,
    pub listener: std::net::TcpListener,
    /// What the HTTP server of every shard shares.
    pub http: Arc<crate::http::server::Settings>,
}

/// Opens the shard's storage, its blocks and its replayed write-ahead log; exits the process
/// if it cannot.
fn open_storage(index: usize, ctx: &Context) -> Db {
    let dirs = Dirs::of_shard(&ctx.storage_path, index);
    let started = std::time::Instant::now();
    let (storage, replayed, opened) = Db::open(&dirs, ctx.wal, ctx.block_range).unwrap_or_else(|e| {
        tracing::error!(shard = index, data = %ctx.storage_path.display(), error = %e, "cannot open the storage");
        std::process::exit(1);
    });
    for refused in &opened.refused {
        tracing::error!(shard = index, error = %refused, "block refused: it is left on disk and not served");
    }
    for removed in &opened.removed {
        tracing::info!(shard = index, dir = %removed.display(), "removed an interrupted write or a compacted block's parent");
    }
    for (file, damage) in &replayed.damage {
        let what = if damage.at_end { "torn tail truncated" } else { "corruption skipped" };
        tracing::warn!(shard = index, file = %file.display(), offset = damage.offset, bytes_lost = damage.skipped, "write-ahead log {what}");
    }
    if replayed.orphaned > 0 {
        tracing::warn!(shard = index, samples = replayed.orphaned, "samples of series lost to log damage were dropped");
    }
    let shard = crate::metrics::shard_label(index);
    ctx.metrics.wal_corruptions.get_or_create(&shard).inc_by(replayed.damage.len() as u64);
    ctx.replay.corruptions.fetch_add(replayed.damage.len() as u64, std::sync::atomic::Ordering::Relaxed);
    ctx.replay.segments.fetch_add(replayed.segments as u64, std::sync::atomic::Ordering::Relaxed);
    ctx.metrics.head_series.get_or_create(&shard).set(storage.head.num_series() as i64);
    ctx.metrics.head_chunks.get_or_create(&shard).set(storage.head.num_chunks() as i64);
    ctx.metrics.blocks_refused.get_or_create(&shard).inc_by(opened.refused.len() as u64);
    ctx.metrics.blocks_loaded.get_or_create(&shard).set(storage.blocks.list().len() as i64);
    ctx.metrics.blocks_bytes.get_or_create(&shard).set(storage.blocks.size() as i64);
    tracing::info!(
        shard = index,
        blocks = storage.blocks.list().len(),
        segments = replayed.segments,
        bytes = replayed.bytes,
        series = replayed.series,
        samples = replayed.samples,
        seconds = started.elapsed().as_secs_f64(),
        "write-ahead log replayed"
    );
    storage
}

/// The shard's main future: replays its storage, then serves HTTP, scrapes, and answers its
/// mailbox until the process shuts down.
pub async fn run(start: ShardStart, ctx: Arc<Context>) {
    let storage = Rc::new(RefCell::new(open_storage(start.index, &ctx)));
    let driver = if monoio::utils::is_legacy() { "epoll" } else { "io_uring" };
    ctx.metrics.driver.get_or_create(&vec![("shard", start.index.to_string()), ("driver", driver.to_string())]).set(1);
    tracing::info!(shard = start.index, driver, "shard started");

    match monoio::net::TcpListener::from_std(start.listener) {
        Ok(listener) => {
            let router = crate::http::router(ctx.clone(), start.index);
            monoio::spawn(crate::http::server::serve(listener, router, start.http));
        }
        Err(e) => tracing::error!(shard = start.index, error = %e, "cannot serve HTTP on this shard"),
    }
    monoio::spawn(housekeeping::run(start.index, storage.clone(), ctx.clone()));
    if let Some(interval) = ctx.wal_fsync_interval {
        monoio::spawn(mailbox::sync_loop(storage.clone(), interval));
    }
    ctx.mark_shard_ready();
    mailbox::serve(start.index, start.mailbox, storage, ctx).await;
}
