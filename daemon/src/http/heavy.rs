//! Work on a large answer (merging shards' parts, sorting, rendering JSON, an exposition or
//! remote read's protobuf) off the shard that serves the request.
//!
//! A handler runs on its connection's shard, which also serves that shard's other connections
//! (`/-/healthy` among them), scrapes and reads. Rendering a million series took that shard for
//! more than a second. Work of more than [`ON_SHARD`] units (series, step slots or samples) runs
//! on an `http-answer` thread instead, at most [`THREADS`] at once; when all are busy it runs
//! on the shard as before, so that finished results never queue up in memory waiting for one.
//! A panic in it fails that request, as one in a handler does (`crate::panic`).

use std::sync::LazyLock;

use crate::slots::Slots;
use crate::threads::{named, off_shard};

/// The most units of work done on the shard when a thread is free: a few milliseconds.
const ON_SHARD: usize = 8_192;

/// The most `http-answer` threads at once.
const THREADS: usize = 4;

static SLOTS: LazyLock<Slots> = LazyLock::new(|| Slots::new(THREADS));

/// The answer could not be prepared off the shard.
#[derive(Debug, thiserror::Error)]
pub enum Unprepared {
    #[error("cannot prepare the answer off the shard: {0}")]
    Thread(#[from] std::io::Error),
    #[error("internal error: preparing the answer failed")]
    Panicked,
}

/// `work`, weighing `units`, done on a thread of its own when it is heavy and one is free,
/// else on the shard.
pub async fn run<T: Send + 'static>(units: usize, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Unprepared> {
    let slot = if units > ON_SHARD { SLOTS.try_acquire() } else { None };
    let Some(slot) = slot else { return Ok(work()) };
    // The slot goes with the thread: a request dropped meanwhile does not free it early.
    let prepared = off_shard(named("http-answer"), move || {
        let _slot = slot;
        crate::threads::yield_cpu_to_shards();
        crate::panic::catch(work)
    });
    prepared.await?.map_err(|panic| {
        tracing::error!(panic, "preparing an HTTP answer panicked; answered 500");
        Unprepared::Panicked
    })
}
