//! A shard: one thread, one monoio runtime, one head.
//!
//! The shard's head is owned by its mailbox loop and touched by nothing else; other shards and
//! HTTP handlers reach it only through [`Request`] messages. The same thread also serves HTTP
//! connections accepted on the shared listener, runs the scrape loops of the targets assigned
//! to it, and coordinates the queries its HTTP handlers receive.

mod mailbox;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

pub use mailbox::{Request, Shards};
use pyrite_core::scrape::Target;
use pyrite_core::tsdb::head::Head;

use crate::context::Context;

/// Everything a shard thread starts with.
pub struct ShardStart {
    pub index: usize,
    pub mailbox: flume::Receiver<Request>,
    pub listener: std::net::TcpListener,
    pub targets: Vec<Target>,
}

/// The shard's main future: serves HTTP, scrapes, and answers its mailbox until the process ends.
pub async fn run(start: ShardStart, ctx: Arc<Context>) {
    let driver = if monoio::utils::is_legacy() { "epoll" } else { "io_uring" };
    ctx.metrics.driver.get_or_create(&vec![("shard", start.index.to_string()), ("driver", driver.to_string())]).set(1);
    tracing::info!(shard = start.index, driver, targets = start.targets.len(), "shard started");

    match monoio::net::TcpListener::from_std(start.listener) {
        Ok(listener) => {
            monoio::spawn(crate::http::server::serve(listener, crate::http::router(ctx.clone(), start.index)));
        }
        Err(e) => tracing::error!(shard = start.index, error = %e, "cannot serve HTTP on this shard"),
    }
    for target in start.targets {
        monoio::spawn(crate::scrape::run_target(target, ctx.clone(), start.index));
    }
    let head = Rc::new(RefCell::new(Head::new()));
    monoio::spawn(mailbox::retention_loop(head.clone(), ctx.clone()));
    ctx.mark_shard_ready();
    mailbox::serve(start.index, start.mailbox, head, ctx).await;
}
