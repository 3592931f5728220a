//! A counting semaphore that threads on different runtimes share: `n` tokens in a bounded
//! channel; [`Slots::acquire`] waits (asynchronously, on any runtime) for one, and the [`Slot`]
//! gives it back when dropped. Bounds concurrent queries (`--query.max-concurrency`) and open
//! HTTP connections across all shards (`--web.max-connections`); [`Slots::try_acquire`] bounds
//! the rules evaluated at once inside groups (`--rules.max-concurrent-evals`).

/// `n` slots (at least one).
pub struct Slots {
    release: flume::Sender<()>,
    take: flume::Receiver<()>,
}

/// A slot held; given back when dropped.
pub struct Slot {
    release: flume::Sender<()>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = self.release.send(());
    }
}

impl Slots {
    pub fn new(n: usize) -> Slots {
        let n = n.max(1);
        let (release, take) = flume::bounded(n);
        (0..n).for_each(|_| release.send(()).expect("the channel has room for every slot"));
        Slots { release, take }
    }

    /// Waits for a free slot.
    pub async fn acquire(&self) -> Slot {
        // Both channel ends live in `self`, so the channel cannot be disconnected.
        let _ = self.take.recv_async().await;
        Slot { release: self.release.clone() }
    }

    /// A slot if one is free now.
    pub fn try_acquire(&self) -> Option<Slot> {
        self.take.try_recv().ok().map(|()| Slot { release: self.release.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_comes_back_when_dropped() {
        let slots = Slots::new(2);
        let a = ready(slots.acquire());
        let _b = ready(slots.acquire());
        assert!(slots.take.is_empty());
        drop(a);
        assert_eq!(slots.take.len(), 1);
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
