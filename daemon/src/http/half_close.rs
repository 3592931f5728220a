//! A client that shuts its sending side once its request is out (`nc -N`, `printf … | nc -q 1`,
//! a script's `shutdown(SHUT_WR)`) still gets its answer, as Go's server gives it upstream.
//!
//! While a request is answered, hyper goes on reading the connection and takes an end-of-file
//! as a client gone: it drops the answer. [`HalfCloseIo`] holds such an end-of-file back while
//! its connection's [`Answering`] says an answer is under way, and lets hyper see it once that
//! answer is sent and flushed (the connection then closes after it), or after [`GRACE`] (hyper
//! then drops the answer as it did at once before, so work for a client that has gone for good
//! ends within the grace). hyper's own half-close mode is not used: it stops reading during an
//! answer altogether, so neither a gone client nor `--web.read-timeout` would end a handler. A
//! query notices the closed side at once through its socket probe ([`super::client_gone`]) and
//! answers 503, as upstream cancels a request's context when its read meets an end-of-file.

use std::cell::Cell;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hyper::rt::{Read, ReadBuf, ReadBufCursor};

/// How long an answer may take once its client has shut its sending side.
pub const GRACE: Duration = Duration::from_secs(5);

/// Whether a connection's service is answering a request: from taking it until hyper has taken
/// all of its answer. Shared by the connection's service and its I/O.
#[derive(Clone, Default)]
pub struct Answering(Rc<Cell<bool>>);

impl Answering {
    /// The service took a request.
    pub fn start(&self) {
        self.0.set(true);
    }

    /// hyper has taken the whole answer (its body is dropped).
    pub fn end(&self) {
        self.0.set(false);
    }

    fn active(&self) -> bool {
        self.0.get()
    }
}

/// A connection's I/O that holds a client's end-of-file back while an answer is under way.
pub struct HalfCloseIo<I> {
    inner: I,
    answering: Answering,
    /// Since the client's end-of-file came during an answer: the grace's timer.
    held: Option<Pin<Box<monoio::time::Sleep>>>,
    /// No answer has been under way since the I/O last flushed all it had written.
    flushed_idle: bool,
    /// The read holding an end-of-file back, woken when the answer has been flushed.
    reader: Option<Waker>,
}

impl<I> HalfCloseIo<I> {
    pub fn new(inner: I, answering: Answering) -> Self {
        HalfCloseIo { inner, answering, held: None, flushed_idle: true, reader: None }
    }

    /// Once an answer has ended and its last bytes are flushed, wakes the read holding the
    /// end-of-file: hyper is idle by then and closes the connection.
    fn after_flush(&mut self, flushed: &Poll<io::Result<()>>) {
        if self.answering.active() {
            self.flushed_idle = false;
        } else if matches!(flushed, Poll::Ready(Ok(()))) && !self.flushed_idle {
            self.flushed_idle = true;
            if let Some(reader) = self.reader.take() {
                reader.wake();
            }
        }
    }
}

impl<I: Read + Unpin> Read for HalfCloseIo<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, mut buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(grace) = &mut this.held {
            // Given to hyper once no answer is under way and all written is flushed, or when
            // the grace is over.
            if (!this.answering.active() && this.flushed_idle) || grace.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            this.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.answering.active() {
            this.flushed_idle = false;
        }
        // SAFETY: the inner read only writes initialised bytes into the unfilled part and
        // reports how many in `read`; exactly those are marked filled.
        let read = unsafe {
            let mut read = ReadBuf::uninit(buf.as_mut());
            match Pin::new(&mut this.inner).poll_read(cx, read.unfilled()) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let n = read.filled().len();
            buf.advance(n);
            n
        };
        if read == 0 && !this.flushed_idle {
            this.held = Some(Box::pin(monoio::time::sleep(GRACE)));
            return Pin::new(this).poll_read(cx, buf);
        }
        Poll::Ready(Ok(()))
    }
}

super::deadline::write_through!(HalfCloseIo, after_flush);
