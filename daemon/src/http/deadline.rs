//! `--web.read-timeout`: how long a client may take to send a whole request, headers and body,
//! as Go's `http.Server.ReadTimeout` bounds it for upstream.
//!
//! The clock runs from when the connection waits for a request (accept, or the end of the
//! previous response) until the handler has answered; while a response is being written it is
//! stopped, so a long download is not cut. A read on the connection past the deadline fails,
//! and hyper closes the connection. The deadline lives in the connection's I/O wrapper
//! ([`DeadlineIo`]); the connection's answer in progress stops the clock when a response is
//! ready and starts it again once hyper has flushed all of it ([`super::half_close`]).

use std::cell::Cell;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Read, ReadBufCursor};

/// The read deadline of one connection, shared by its I/O and its service.
#[derive(Clone)]
pub struct Deadline {
    at: Rc<Cell<Option<Instant>>>,
    timeout: Duration,
}

impl Deadline {
    /// A running clock of `timeout`.
    pub fn start(timeout: Duration) -> Deadline {
        let deadline = Deadline { at: Rc::new(Cell::new(None)), timeout };
        deadline.restart();
        deadline
    }

    /// The client has `timeout` from now to send its next request.
    pub fn restart(&self) {
        self.at.set(Instant::now().checked_add(self.timeout));
    }

    /// No deadline until [`restart`](Self::restart).
    pub fn stop(&self) {
        self.at.set(None);
    }
}

/// A connection's I/O whose reads fail once its [`Deadline`] has passed.
pub struct DeadlineIo<I> {
    inner: I,
    deadline: Deadline,
    /// Wakes a read that waits past the deadline.
    timer: Option<Pin<Box<monoio::time::Sleep>>>,
}

impl<I> DeadlineIo<I> {
    pub fn new(inner: I, deadline: Deadline) -> Self {
        DeadlineIo { inner, deadline, timer: None }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "request read timeout (--web.read-timeout)")
}

impl<I: Read + Unpin> Read for DeadlineIo<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(at) = this.deadline.at.get() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        if Instant::now() >= at {
            return Poll::Ready(Err(timed_out()));
        }
        if let Poll::Ready(read) = Pin::new(&mut this.inner).poll_read(cx, buf) {
            return Poll::Ready(read);
        }
        let timer = this.timer.get_or_insert_with(|| Box::pin(monoio::time::sleep_until(at.into())));
        if timer.deadline() != at.into() {
            timer.as_mut().reset(at.into());
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Implements hyper's `Write` for an I/O wrapper `$io<I>` that changes its reads only: its writes
/// go to its `inner` as they are. With `$after_flush`, that method of the wrapper sees each
/// flush's outcome.
macro_rules! write_through {
    ($io:ident $(, $after_flush:ident)?) => {
        impl<I: hyper::rt::Write + Unpin> hyper::rt::Write for $io<I> {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let this = self.get_mut();
                let flushed = std::pin::Pin::new(&mut this.inner).poll_flush(cx);
                $(this.$after_flush(&flushed);)?
                flushed
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
            }
        }
    };
}
pub(super) use write_through;

write_through!(DeadlineIo);
