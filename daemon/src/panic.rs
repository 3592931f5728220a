//! What a panic does: the one policy for the whole process.
//!
//! No input from outside the process should reach a panic; parsers, limits and checked
//! arithmetic are the first line. This module is the second. Work that only *reads* shared
//! state on behalf of one request — an HTTP handler, a query's fragments on a query worker or
//! (light ones) on a shard, a query's read of a shard, a query's coordination, a shard's answer to a series, labels or
//! federation request, a large HTTP answer prepared on a thread of its own, a rule's
//! evaluation (which writes only through the shards' mailboxes; its alert templates run a
//! third-party engine over scraped labels) — runs inside
//! [`catch`] or [`CatchPanic`]: if it panics, that request fails
//! (an HTTP 500, a query error), the panic is logged and counted in
//! `pyrite_panics_recovered_total`, and the process serves on. Unwinding out of such work is
//! safe because it holds no lock and leaves no half-made change: a shard's storage is
//! borrowed read-only while a query runs, and the borrow ends as the stack unwinds.
//!
//! Any other panic — while a shard appends, cuts a block, writes its log, or in a thread's own
//! loop — may leave storage half-changed, so it ends the process (exit code 101) for a
//! supervisor to restart it; the write-ahead log makes that restart lose nothing acknowledged.

use std::cell::Cell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};

use prometheus_client::metrics::counter::Counter;

thread_local! {
    /// How many [`catch`] scopes this thread is inside.
    static CATCHING: Cell<usize> = const { Cell::new(0) };
}

static RECOVERED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Panics that failed one request instead of the process.
pub fn recovered() -> &'static Counter {
    &RECOVERED
}

/// Installs the policy: the default report (message and place), then, outside a [`catch`]
/// scope, exit.
pub fn install_hook() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        if CATCHING.with(Cell::get) == 0 {
            std::process::exit(101);
        }
    }));
}

/// Runs `work`; a panic inside it is counted and becomes `Err` with the panic's message.
pub fn catch<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    CATCHING.with(|c| c.set(c.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(work));
    CATCHING.with(|c| c.set(c.get() - 1));
    result.map_err(|payload| {
        RECOVERED.inc();
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into())
    })
}

/// A future whose panics end it with `Err` instead of ending the process (each poll runs
/// inside [`catch`]). Once it has panicked it is not polled again.
pub struct CatchPanic<F> {
    inner: Option<Pin<Box<F>>>,
}

impl<F: Future> CatchPanic<F> {
    pub fn new(inner: F) -> Self {
        CatchPanic { inner: Some(Box::pin(inner)) }
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = self.inner.as_mut() else { return Poll::Ready(Err("polled after a panic".into())) };
        match catch(|| inner.as_mut().poll(cx)) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(message) => {
                self.inner = None;
                Poll::Ready(Err(message))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_becomes_an_error_and_is_counted() {
        let before = recovered().get();
        assert_eq!(catch(|| 7), Ok(7));
        let message = catch(|| -> i32 { panic!("boom {}", 1) }).unwrap_err();
        assert_eq!(message, "boom 1");
        assert_eq!(recovered().get(), before + 1);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut f = std::pin::pin!(CatchPanic::new(async { panic!("in a future") }));
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(Err::<(), _>("in a future".into())));
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(Err("polled after a panic".into())));
        assert_eq!(recovered().get(), before + 2);
    }
}
