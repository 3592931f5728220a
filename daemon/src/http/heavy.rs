//! Work on a large answer (merging shards' parts, sorting, rendering JSON, an exposition or
//! remote read's protobuf) off the shard that serves the request.
//!
//! A handler runs on its connection's shard, which also serves that shard's other connections
//! (`/-/healthy` among them), scrapes and reads. Rendering a million series took that shard for
//! more than a second. Work of more than [`ON_SHARD`] units (series, step slots or samples) runs
//! on an `http-answer` thread instead; when all are busy it waits for one, the shard serving on
//! meanwhile. (It used to run on the shard then, which held `/-/healthy` for 3 s under eight
//! concurrent federations.) Medium work (up to [`MEDIUM`] units, tens of milliseconds: a
//! dashboard panel's range query) takes any free thread, and when all [`THREADS`] are busy has
//! [`MEDIUM_THREADS`] more of its own, so that it never waits behind seconds of federation or
//! remote read. What waits holds the result it will render, as each concurrent request holds
//! its own in upstream's server; the connections are bounded (`--web.max-connections`). A
//! panic in it fails that request, as one in a handler does (`crate::panic`).

use std::sync::LazyLock;

use crate::slots::Slots;
use crate::threads::{named, off_shard};

/// The most units of work done on the shard when a thread is free: a few milliseconds.
const ON_SHARD: usize = 8_192;

/// The most units of a medium answer.
const MEDIUM: usize = 131_072;

/// The most `http-answer` threads at once for any answer.
const THREADS: usize = 4;

/// The most `http-answer` threads at once for medium answers alone, beside those.
const MEDIUM_THREADS: usize = 2;

static MEDIUM_SLOTS: LazyLock<Slots> = LazyLock::new(|| Slots::new(MEDIUM_THREADS));
static SLOTS: LazyLock<Slots> = LazyLock::new(|| Slots::new(THREADS));

/// The answer could not be prepared off the shard.
#[derive(Debug, thiserror::Error)]
pub enum Unprepared {
    #[error("cannot prepare the answer off the shard: {0}")]
    Thread(#[from] std::io::Error),
    #[error("internal error: preparing the answer failed")]
    Panicked,
}

/// `work`, weighing `units`: on the shard when it is light, else on a thread of its own once
/// one is free.
pub async fn run<T: Send + 'static>(units: usize, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Unprepared> {
    if units <= ON_SHARD {
        return Ok(work());
    }
    // Medium work takes any free thread, and waits only for its own.
    let slot = match units <= MEDIUM {
        true => match SLOTS.try_acquire() {
            Some(slot) => slot,
            None => MEDIUM_SLOTS.acquire().await,
        },
        false => SLOTS.acquire().await,
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// While every shared thread is busy (large answers), a medium answer does not wait for one.
    #[test]
    fn a_medium_answer_does_not_wait_behind_large_ones() {
        let busy: Vec<_> = std::iter::from_fn(|| SLOTS.try_acquire()).collect();
        assert!(!busy.is_empty() && SLOTS.try_acquire().is_none());
        let medium = async { monoio::time::timeout(std::time::Duration::from_secs(20), run(MEDIUM, || 7)).await };
        let answer = crate::runtime::block_on(crate::runtime::Driver::Epoll, medium).unwrap();
        assert_eq!(answer.expect("answered without waiting").unwrap(), 7);
    }
}
