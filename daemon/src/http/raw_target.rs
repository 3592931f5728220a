//! A connection's first request target as Go's server reads it: `curl -g
//! 'host:9090/api/v1/query?query=up{job="node"}'` sends the quotes raw, as other clients send
//! `<`, `>` or `` ` ``. Go takes them; hyper's parser refuses the request with a bare 400. A raw
//! `#` hyper takes as the start of a fragment and drops what follows; Go keeps it. [`RawTarget`]
//! percent-encodes those bytes in the first request line of a connection before hyper reads it,
//! which the handlers decode as Go's do. Non-ASCII bytes hyper takes as they are (valid UTF-8)
//! and are left so.
//!
//! Only the first line: knowing where a later request starts would mean framing bodies beside
//! hyper, and a wrong guess would rewrite a body. Clients that send raw targets (a shell's
//! curl, a script) mostly send one request per connection; one that keeps the connection gets
//! the bare 400 for a later raw target, as before.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBuf, ReadBufCursor};

/// Bytes of a method before its target: past them, the line is left as it is.
const MOST_METHOD: usize = 32;

/// Where the reading of the first request line is.
#[derive(Clone, Copy, PartialEq, Debug)]
enum At {
    Method(usize),
    Target,
    /// Past the target: everything passes as it is.
    Done,
}

/// An I/O whose first request target has the bytes hyper refuses percent-encoded.
pub struct RawTarget<I> {
    inner: I,
    at: At,
    /// Rewritten bytes not handed over yet, from `sent` on.
    pending: Vec<u8>,
    sent: usize,
    /// What a read before the end of the target lands in.
    space: Vec<u8>,
}

/// The most read at once before the end of the target.
const READ: usize = 8192;

impl<I> RawTarget<I> {
    pub fn new(inner: I) -> Self {
        RawTarget { inner, at: At::Method(0), pending: Vec::new(), sent: 0, space: Vec::new() }
    }
}

/// Whether `b` in a request target is one Go takes and hyper refuses or cuts at.
fn refused(b: u8) -> bool {
    matches!(b, b'"' | b'<' | b'>' | b'`' | b'#')
}

/// Appends `read` to `out`, the first line's target percent-encoded where hyper would refuse
/// it; returns where the reading is after it.
fn rewrite(mut at: At, read: &[u8], out: &mut Vec<u8>) -> At {
    for (i, &b) in read.iter().enumerate() {
        at = match at {
            At::Done => {
                out.extend_from_slice(&read[i..]);
                return At::Done;
            }
            At::Method(_) if b == b' ' => At::Target,
            At::Method(n) if n < MOST_METHOD && b != b'\n' => At::Method(n + 1),
            At::Method(_) => At::Done,
            At::Target if matches!(b, b' ' | b'\r' | b'\n') => At::Done,
            At::Target if refused(b) => {
                out.extend_from_slice(format!("%{b:02X}").as_bytes());
                continue;
            }
            At::Target => At::Target,
        };
        out.push(b);
    }
    at
}

impl<I: Read + Unpin> Read for RawTarget<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, mut buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.sent == this.pending.len() {
            if this.at == At::Done {
                (this.pending, this.sent, this.space) = (Vec::new(), 0, Vec::new());
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            this.space.resize(READ, 0);
            let mut read = ReadBuf::new(&mut this.space[..buf.remaining().min(READ)]);
            match Pin::new(&mut this.inner).poll_read(cx, read.unfilled()) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            this.pending.clear();
            this.sent = 0;
            this.at = rewrite(this.at, read.filled(), &mut this.pending);
        }
        let n = buf.remaining().min(this.pending.len() - this.sent);
        buf.put_slice(&this.pending[this.sent..this.sent + n]);
        this.sent += n;
        Poll::Ready(Ok(()))
    }
}

super::deadline::write_through!(RawTarget);

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(chunks: &[&[u8]]) -> String {
        let (mut at, mut out) = (At::Method(0), Vec::new());
        for chunk in chunks {
            at = rewrite(at, chunk, &mut out);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The first line's target is encoded, however the reads split it; nothing after it is.
    #[test]
    fn the_first_target_is_encoded_and_nothing_else() {
        let request = "GET /api/v1/query?query=up{job=\"a\"}<1#ü HTTP/1.1\r\nX: \"q\"\r\n\r\nGET /x?\"\r\n";
        let whole = rewritten(&[request.as_bytes()]);
        let target = "/api/v1/query?query=up{job=%22a%22}%3C1%23ü";
        assert_eq!(whole, format!("GET {target} HTTP/1.1\r\nX: \"q\"\r\n\r\nGET /x?\"\r\n"));
        let split: Vec<&[u8]> = request.as_bytes().chunks(3).collect();
        assert_eq!(rewritten(&split), whole);
        assert_eq!(rewritten(&[b"GET /a#`b HTTP/1.1\r\n"]), "GET /a%23%60b HTTP/1.1\r\n");
    }

    /// A line that is no request line passes as it is.
    #[test]
    fn other_lines_pass_as_they_are() {
        let long = format!("{} /\"", "A".repeat(40));
        assert_eq!(rewritten(&[long.as_bytes()]), long);
        assert_eq!(rewritten(&[b"\r\nGET /\"\r\n"]), "\r\nGET /\"\r\n");
        assert_eq!(rewritten(&[b"PRI * HTTP/2.0\r\n"]), "PRI * HTTP/2.0\r\n");
    }
}
