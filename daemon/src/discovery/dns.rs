//! DNS lookups for `dns_sd_configs` over UDP (TCP when an answer is truncated), to the
//! `--discovery.dns-server` or the first nameserver of `/etc/resolv.conf`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use pyrite_core::discovery::TargetGroup;
use pyrite_core::dns::{parse_response, query, Record, RecordType, Response};

/// How long one lookup may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The DNS server: the given `host:port`, or the first `nameserver` of `/etc/resolv.conf`.
fn server(configured: Option<&str>) -> Result<SocketAddr, String> {
    let text = match configured {
        Some(s) => s.to_string(),
        None => {
            let conf = std::fs::read_to_string("/etc/resolv.conf").map_err(|e| format!("/etc/resolv.conf: {e}"))?;
            let ns = conf.lines().find_map(|l| l.trim().strip_prefix("nameserver")).map(str::trim);
            let ns = ns.ok_or("/etc/resolv.conf names no nameserver")?;
            if ns.contains(':') {
                format!("[{ns}]:53")
            } else {
                format!("{ns}:53")
            }
        }
    };
    text.to_socket_addrs()
        .map_err(|e| format!("DNS server {text}: {e}"))?
        .next()
        .ok_or(format!("DNS server {text} resolves to nothing"))
}

/// A query id that differs from call to call.
fn query_id() -> u16 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    (nanos ^ (nanos >> 16)) as u16
}

fn lookup(server: SocketAddr, name: &str, kind: RecordType) -> Result<Vec<Record>, String> {
    let id = query_id();
    let message = query(id, name, kind)?;
    let bind = if server.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
    let socket = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    socket.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    socket.send_to(&message, server).map_err(|e| format!("{server}: {e}"))?;
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).map_err(|e| format!("{server}: {e}"))?;
    match parse_response(&buf[..n], id, kind)? {
        Response::Answers(records) => Ok(records),
        Response::NoSuchName => Ok(Vec::new()),
        Response::Truncated => lookup_tcp(server, id, &message, kind),
    }
}

/// The same query over TCP, for answers too large for UDP.
fn lookup_tcp(server: SocketAddr, id: u16, message: &[u8], kind: RecordType) -> Result<Vec<Record>, String> {
    let mut stream = TcpStream::connect_timeout(&server, TIMEOUT).map_err(|e| format!("{server}: {e}"))?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    let mut framed = (message.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    stream.write_all(&framed).map_err(|e| format!("{server}: {e}"))?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).map_err(|e| format!("{server}: {e}"))?;
    let mut answer = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut answer).map_err(|e| format!("{server}: {e}"))?;
    match parse_response(&answer, id, kind)? {
        Response::Answers(records) => Ok(records),
        Response::NoSuchName => Ok(Vec::new()),
        Response::Truncated => Err(format!("{server}: truncated answer over TCP")),
    }
}

/// One group per record of every name, with upstream's `__meta_dns_*` labels.
pub fn discover(
    configured: Option<&str>,
    names: &[String],
    kind: RecordType,
    port: u16,
) -> Result<Vec<TargetGroup>, String> {
    let server = server(configured)?;
    let mut groups = Vec::new();
    for name in names {
        for record in lookup(server, name, kind).map_err(|e| format!("{name}: {e}"))? {
            let mut meta = vec![("__meta_dns_name".to_string(), name.clone())];
            let target = match record {
                Record::Srv { port, target, .. } => {
                    if target.is_empty() {
                        continue;
                    }
                    meta.push(("__meta_dns_srv_record_target".into(), target.clone()));
                    meta.push(("__meta_dns_srv_record_port".into(), port.to_string()));
                    format!("{target}:{port}")
                }
                Record::A(ip) => format!("{ip}:{port}"),
                Record::Aaaa(ip) => format!("[{ip}]:{port}"),
                Record::Mx { exchange, .. } => {
                    meta.push(("__meta_dns_mx_record_target".into(), exchange.clone()));
                    format!("{exchange}:{port}")
                }
                Record::Ns(host) => {
                    meta.push(("__meta_dns_ns_record_target".into(), host.clone()));
                    format!("{host}:{port}")
                }
            };
            groups.push(TargetGroup {
                targets: vec![target],
                labels: meta.into_iter().collect(),
                source: name.clone(),
            });
        }
    }
    Ok(groups)
}
