//! A counting semaphore that threads on different runtimes share: [`Slots::acquire`] waits
//! (asynchronously, on any runtime) for one of `n` slots, and the [`Slot`] gives it back when
//! dropped. Bounds concurrent queries (`--query.max-concurrency`) and open HTTP connections across
//! all shards (`--web.max-connections`); [`Slots::try_acquire`] bounds the rules evaluated at once
//! inside groups (`--rules.max-concurrent-evals`).
//!
//! Tokio's semaphore, which needs no Tokio runtime: waiters queue in order and a cancelled one
//! leaves the queue. Not a channel of tokens: flume's asynchronous receive, once woken for a
//! token another waiter took, put its waiter back in the queue at every later poll, so hundreds of
//! queries waiting for a slot grew that queue by gigabytes a minute and kept their shard busy.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// `n` slots (at least one).
pub struct Slots(Arc<Semaphore>);

/// A slot held; given back when dropped.
pub struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Slots {
    pub fn new(n: usize) -> Slots {
        Slots(Arc::new(Semaphore::new(n.clamp(1, Semaphore::MAX_PERMITS))))
    }

    /// Waits for a free slot.
    pub async fn acquire(&self) -> Slot {
        // The semaphore is never closed, so the wait always ends with a permit.
        Slot { _permit: self.0.clone().acquire_owned().await.ok() }
    }

    /// A slot if one is free now.
    pub fn try_acquire(&self) -> Option<Slot> {
        self.0.clone().try_acquire_owned().ok().map(|permit| Slot { _permit: Some(permit) })
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;

    #[test]
    fn a_slot_comes_back_when_dropped() {
        let slots = Slots::new(2);
        let a = ready(slots.acquire());
        let _b = ready(slots.acquire());
        assert!(slots.try_acquire().is_none());
        drop(a);
        assert!(slots.try_acquire().is_some());
    }

    /// Waiters woken for a slot that another took first wait on without piling up: each
    /// release wakes the first waiter, which takes it (with flume's channel of tokens, a woken
    /// waiter re-queued itself at every poll).
    #[test]
    fn waiters_take_the_slots_in_turn_and_a_cancelled_one_leaves() {
        let slots = Slots::new(1);
        let held = ready(slots.acquire());
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut first = Box::pin(slots.acquire());
        let mut second = Box::pin(slots.acquire());
        for _ in 0..1000 {
            assert!(first.as_mut().poll(&mut cx).is_pending());
            assert!(second.as_mut().poll(&mut cx).is_pending());
        }
        drop(first);
        drop(held);
        let std::task::Poll::Ready(_taken) = second.as_mut().poll(&mut cx) else {
            panic!("the slot goes to the waiter left")
        };
        assert!(slots.try_acquire().is_none());
    }

    /// Runs a future that is ready at once.
    fn ready<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let waker = std::task::Waker::noop();
        match f.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the future was not ready"),
        }
    }
}
