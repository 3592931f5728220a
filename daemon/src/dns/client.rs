//! A blocking DNS client: one question to a list of nameservers over UDP (TCP when an answer is
//! truncated), each tried in turn, as many rounds as `attempts` says, as Go's pure resolver and
//! glibc do. The messages are `pyrite_core::dns`'s; this module only sends them. It blocks its
//! caller, so it runs on the discovery thread and on the resolver's threads, never on a shard.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use pyrite_core::dns::{parse_response, query, Record, RecordType, Response};

/// Where and how to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Servers {
    pub addresses: Vec<SocketAddr>,
    /// How long one server may take to answer one query.
    pub timeout: Duration,
    /// Rounds over the servers before giving up.
    pub attempts: usize,
}

/// What the servers said about a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Records(Vec<Record>),
    /// NXDOMAIN.
    NoSuchName,
}

/// A query id that differs from call to call.
fn query_id() -> u16 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    (nanos ^ (nanos >> 16)) as u16
}

/// Asks the servers for `name`'s records of type `kind`: the first server that answers wins;
/// the error is the last server's when none does.
pub fn lookup(servers: &Servers, name: &str, kind: RecordType) -> Result<Answer, String> {
    let mut last = "no DNS server to ask".to_string();
    for _ in 0..servers.attempts.max(1) {
        for &server in &servers.addresses {
            match lookup_one(server, servers.timeout, name, kind) {
                Ok(answer) => return Ok(answer),
                Err(e) => last = e,
            }
        }
    }
    Err(last)
}

fn lookup_one(server: SocketAddr, timeout: Duration, name: &str, kind: RecordType) -> Result<Answer, String> {
    let id = query_id();
    let message = query(id, name, kind)?;
    let bind = if server.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
    let socket = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    socket.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    socket.connect(server).map_err(|e| format!("{server}: {e}"))?;
    socket.send(&message).map_err(|e| format!("{server}: {e}"))?;
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).map_err(|e| format!("{server}: {e}"))?;
    match parse_response(&buf[..n], id, kind)? {
        Response::Answers(records) => Ok(Answer::Records(records)),
        Response::NoSuchName => Ok(Answer::NoSuchName),
        Response::Truncated => lookup_tcp(server, timeout, id, &message, kind),
    }
}

/// Fills `buf` from `stream` by `deadline`: a read timeout alone bounds each read, and a
/// server sending a byte at a time would hold the lookup for hours.
fn read_by(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The same query over TCP, for answers too large for UDP.
fn lookup_tcp(
    server: SocketAddr,
    timeout: Duration,
    id: u16,
    message: &[u8],
    kind: RecordType,
) -> Result<Answer, String> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&server, timeout).map_err(|e| format!("{server}: {e}"))?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut framed = (message.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    stream.write_all(&framed).map_err(|e| format!("{server}: {e}"))?;
    let mut len = [0u8; 2];
    read_by(&mut stream, &mut len, deadline).map_err(|e| format!("{server}: {e}"))?;
    let mut answer = vec![0u8; u16::from_be_bytes(len) as usize];
    read_by(&mut stream, &mut answer, deadline).map_err(|e| format!("{server}: {e}"))?;
    match parse_response(&answer, id, kind)? {
        Response::Answers(records) => Ok(Answer::Records(records)),
        Response::NoSuchName => Ok(Answer::NoSuchName),
        Response::Truncated => Err(format!("{server}: truncated answer over TCP")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server trickling a byte every 100 ms never finishes 50 bytes within 300 ms: the
    /// deadline holds for the whole answer, not for each read.
    #[test]
    fn a_trickled_tcp_answer_stops_at_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            for _ in 0..50 {
                if conn.write_all(&[0]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let mut stream = TcpStream::connect(addr).unwrap();
        let mut buf = [0u8; 50];
        let e = read_by(&mut stream, &mut buf, Instant::now() + Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock), "{e}");
        drop(stream);
        server.join().unwrap();
    }
}
