//! Noticing that a query's client has gone away while the shard serving its connection is
//! busy evaluating that very query.
//!
//! hyper notices a closed connection only when the connection's task runs, and that task runs
//! on the shard whose thread is busy with the query's fragment; so the query would run on to
//! its deadline. Instead, the query's cancellation asks the socket itself: `poll(2)` with a zero
//! timeout reports `POLLRDHUP` once the client has closed its side (as Go's server cancels a
//! request's context when its background read meets EOF). Evaluation asks between series and
//! every few thousand steps on every shard, so the probe looks at most every
//! [`PROBE_EVERY`] and remembers a closed socket.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Least time between two looks at the socket.
const PROBE_EVERY: Duration = Duration::from_millis(10);

/// The socket of the connection a request came on (a request extension set by the server).
#[derive(Debug, Clone, Copy)]
pub struct ClientSocket(pub RawFd);

impl ClientSocket {
    /// A cheap test, callable from any thread, of whether the client has closed the connection.
    ///
    /// The descriptor stays open while the request's handler waits for the query, and the
    /// probe is only asked while the query runs; a probe that comes after the connection
    /// closed looks at a descriptor that may have been reused, which can at worst cancel a
    /// query whose answer nobody waits for.
    pub fn probe(self) -> impl Fn() -> bool + Send + Sync + 'static {
        let started = Instant::now();
        let last = AtomicU64::new(0);
        let gone = AtomicBool::new(false);
        move || {
            if gone.load(Ordering::Relaxed) {
                return true;
            }
            let now = started.elapsed().as_millis() as u64;
            if now.saturating_sub(last.load(Ordering::Relaxed)) < PROBE_EVERY.as_millis() as u64 {
                return false;
            }
            last.store(now, Ordering::Relaxed);
            let closed = closed(self.0);
            gone.store(closed, Ordering::Relaxed);
            closed
        }
    }
}

/// Whether the peer of socket `fd` has closed its side (or the socket failed).
fn closed(fd: RawFd) -> bool {
    let mut pollfd = libc::pollfd { fd, events: libc::POLLRDHUP, revents: 0 };
    // SAFETY: one valid pollfd, a zero timeout; poll only reads the descriptor's state.
    let ready = unsafe { libc::poll(&mut pollfd, 1, 0) };
    ready > 0 && pollfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_closed_peer_is_noticed_and_an_open_one_is_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        // Data waiting to be read (a pipelined request) is not a closed connection.
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let probe = ClientSocket(server.as_raw_fd()).probe();
        std::thread::sleep(PROBE_EVERY);
        assert!(!probe());
        drop(client);
        std::thread::sleep(PROBE_EVERY * 2);
        assert!(probe());
        assert!(probe(), "remembered");
    }
}
