//! A client that shuts its sending side once its request is out (`nc -N`, `printf … | nc -q 1`,
//! a script's `shutdown(SHUT_WR)`) still gets its answer, as Go's server gives it upstream.
//!
//! While a request is answered, hyper goes on reading the connection and takes an end-of-file
//! as a client gone: it drops the answer. [`HalfCloseIo`] holds such an end-of-file back while
//! its connection's [`Answering`] says an answer is under way, and lets hyper see it once that
//! answer is sent and flushed (the connection then closes after it). While the handler still
//! works, the end-of-file waits at most [`GRACE`]; then hyper drops the answer as it did at once
//! before, so work for a client that has gone for good ends within the grace. Once the answer
//! is being sent there is no grace: a client that has gone fails the writes. (hyper's own
//! half-close mode is not used: it stops reading during an answer altogether, so neither a gone
//! client nor `--web.read-timeout` would end a handler.) A query notices the closed side at once
//! through its socket probe ([`super::client_gone`]) and answers 499, as upstream 3.x cancels
//! a request's context when its read meets an end-of-file.
//!
//! TLS reports a peer's end-of-file without `close_notify` as an error, `UnexpectedEof`: it is
//! held the same way.
//!
//! The answer's progress also runs the read clock ([`Deadline`]): stopped when the answer is
//! ready, started again once it has been flushed, so a long download is not cut.

use std::cell::Cell;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hyper::rt::{Read, ReadBuf, ReadBufCursor};

use super::deadline::Deadline;

/// How long a handler may go on once its client has shut its sending side.
pub const GRACE: Duration = Duration::from_secs(5);

/// Where a connection's answer stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// No request under way: waiting for one.
    Idle,
    /// The service took a request; its handler works.
    Working,
    /// The answer is ready and hyper writes it.
    Sending,
    /// hyper has taken the whole answer; its last bytes may wait to be flushed.
    Sent,
}

/// A connection's answer under way, shared by its service and its I/O, and its read clock.
#[derive(Clone)]
pub struct Answering {
    phase: Rc<Cell<Phase>>,
    /// Requests the service has taken: each handler gets a grace of its own.
    taken: Rc<Cell<u64>>,
    deadline: Deadline,
}

impl Answering {
    pub fn new(deadline: Deadline) -> Self {
        Answering { phase: Rc::new(Cell::new(Phase::Idle)), taken: Rc::default(), deadline }
    }

    /// The service took a request.
    pub fn start(&self) {
        self.phase.set(Phase::Working);
        self.taken.set(self.taken.get() + 1);
    }

    /// The answer is ready: the request has been read, so the read clock stops while it is sent.
    pub fn ready(&self) {
        self.deadline.stop();
        self.phase.set(Phase::Sending);
    }

    /// hyper has taken the whole answer (its body is dropped).
    pub fn sent(&self) {
        self.phase.set(Phase::Sent);
    }

    /// The I/O flushed everything: once the answer is sent, the connection waits for the next
    /// request, and the read clock starts again. True if that happened now.
    fn flushed(&self) -> bool {
        let done = self.phase.get() == Phase::Sent;
        if done {
            self.phase.set(Phase::Idle);
            self.deadline.restart();
        }
        done
    }

    fn phase(&self) -> Phase {
        self.phase.get()
    }
}

/// A connection's I/O that holds a client's end-of-file back while an answer is under way.
pub struct HalfCloseIo<I> {
    inner: I,
    answering: Answering,
    /// Since the client's end-of-file came during an answer: the grace's timer, and the request
    /// it runs for.
    held: Option<(Pin<Box<monoio::time::Sleep>>, u64)>,
    /// The read holding an end-of-file back, woken when the answer has been flushed.
    reader: Option<Waker>,
}

impl<I> HalfCloseIo<I> {
    pub fn new(inner: I, answering: Answering) -> Self {
        HalfCloseIo { inner, answering, held: None, reader: None }
    }

    /// Once an answer hyper has taken is flushed, the connection waits for the next request:
    /// the read clock starts again, and a read holding an end-of-file is woken (hyper is idle
    /// by then and closes the connection).
    fn after_flush(&mut self, flushed: &Poll<io::Result<()>>) {
        if matches!(flushed, Poll::Ready(Ok(()))) && self.answering.flushed() {
            if let Some(reader) = self.reader.take() {
                reader.wake();
            }
        }
    }
}

impl<I: Read + Unpin> Read for HalfCloseIo<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, mut buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some((grace, request)) = &mut this.held {
            let release = match this.answering.phase() {
                Phase::Idle => true,
                Phase::Working => {
                    // A request sent with the one before it (pipelined) has a grace of its own.
                    if *request != this.answering.taken.get() {
                        *request = this.answering.taken.get();
                        grace.as_mut().reset((Instant::now() + GRACE).into());
                    }
                    grace.as_mut().poll(cx).is_ready()
                }
                Phase::Sending | Phase::Sent => false,
            };
            if release {
                return Poll::Ready(Ok(()));
            }
            this.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        // SAFETY: the inner read only writes initialised bytes into the unfilled part and
        // reports how many in `read`; exactly those are marked filled.
        let read = unsafe {
            let mut read = ReadBuf::uninit(buf.as_mut());
            match Pin::new(&mut this.inner).poll_read(cx, read.unfilled()) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {}
                other => return other,
            }
            let n = read.filled().len();
            buf.advance(n);
            n
        };
        if read > 0 {
            return Poll::Ready(Ok(()));
        }
        if this.answering.phase() == Phase::Idle {
            // Between requests: the client is done, as far as reading goes.
            return Poll::Ready(Ok(()));
        }
        this.held = Some((Box::pin(monoio::time::sleep(GRACE)), this.answering.taken.get()));
        Pin::new(this).poll_read(cx, buf)
    }
}

super::deadline::write_through!(HalfCloseIo, after_flush);
