//! A blocking DNS client: one question to a list of nameservers over UDP (TCP when an answer is
//! truncated), each tried in turn, as many rounds as `attempts` says, as Go's pure resolver and
//! glibc do. The messages are `pyrite_core::dns`'s; this module only sends them. It blocks its
//! caller, so it runs on the discovery thread and on the resolver's threads, never on a shard.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

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

/// The same query over TCP, for answers too large for UDP.
fn lookup_tcp(
    server: SocketAddr,
    timeout: Duration,
    id: u16,
    message: &[u8],
    kind: RecordType,
) -> Result<Answer, String> {
    let mut stream = TcpStream::connect_timeout(&server, timeout).map_err(|e| format!("{server}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut framed = (message.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    stream.write_all(&framed).map_err(|e| format!("{server}: {e}"))?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).map_err(|e| format!("{server}: {e}"))?;
    let mut answer = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut answer).map_err(|e| format!("{server}: {e}"))?;
    match parse_response(&answer, id, kind)? {
        Response::Answers(records) => Ok(Answer::Records(records)),
        Response::NoSuchName => Ok(Answer::NoSuchName),
        Response::Truncated => Err(format!("{server}: truncated answer over TCP")),
    }
}
