//! Work on a large answer (merging shards' parts, sorting, rendering JSON or an exposition) off
//! the shard that serves the request.
//!
//! A handler runs on its connection's shard, which also serves that shard's other connections
//! (`/-/healthy` among them), scrapes and reads. Rendering a million series took that shard for
//! more than a second. Work past [`ON_SHARD`] units (series, or step slots) runs on a thread of
//! its own instead; at most [`THREADS`] such threads run at once, and further large answers
//! wait for one without holding their shard.

use std::sync::LazyLock;

use crate::shard::slices::{named, off_shard};
use crate::slots::Slots;

/// The most units of work done on the shard: about a few milliseconds of rendering.
const ON_SHARD: usize = 8_192;

/// The most large answers worked on at once.
const THREADS: usize = 4;

static SLOTS: LazyLock<Slots> = LazyLock::new(|| Slots::new(THREADS));

/// The thread for a large answer could not start, or stopped without an answer.
#[derive(Debug, thiserror::Error)]
#[error("cannot prepare the answer off the shard: {0}")]
pub struct Unprepared(#[from] std::io::Error);

/// `work`, weighing `units`, done on the shard when light and on a thread of its own when not.
pub async fn run<T: Send + 'static>(units: usize, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Unprepared> {
    if units <= ON_SHARD {
        return Ok(work());
    }
    let _slot = SLOTS.acquire().await;
    Ok(off_shard(named("http-answer"), work).await?)
}
