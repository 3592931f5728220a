//! The DNS messages the daemon sends, for `dns_sd_configs` and for scrape targets' host names:
//! a query for one name and type, and the answers to it (SRV, A, AAAA, MX, NS). Encoding and
//! decoding are hickory-proto's (RFC 1035 and RFC 2782, name compression, pointer loops and
//! truncated or garbage packets refused with an error); this module maps them to what the
//! daemon uses. Sending them is the daemon's; this is the
//! sans-I/O part.

use hickory_proto::op::{Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The record types `dns_sd_configs` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    A,
    Aaaa,
    Srv,
    Mx,
    Ns,
}

impl RecordType {
    fn wire(self) -> hickory_proto::rr::RecordType {
        use hickory_proto::rr::RecordType as Wire;
        match self {
            RecordType::A => Wire::A,
            RecordType::Ns => Wire::NS,
            RecordType::Mx => Wire::MX,
            RecordType::Aaaa => Wire::AAAA,
            RecordType::Srv => Wire::SRV,
        }
    }

    /// From the configuration's `type`.
    pub fn parse(s: &str) -> Option<RecordType> {
        Some(match s {
            "A" => RecordType::A,
            "AAAA" => RecordType::Aaaa,
            "SRV" => RecordType::Srv,
            "MX" => RecordType::Mx,
            "NS" => RecordType::Ns,
            _ => return None,
        })
    }
}

/// One answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Srv { priority: u16, weight: u16, port: u16, target: String },
    Mx { preference: u16, exchange: String },
    Ns(String),
}

/// A query for `name` (absolute or not) of type `kind`, with recursion desired.
pub fn query(id: u16, name: &str, kind: RecordType) -> Result<Vec<u8>, String> {
    let invalid = || format!("invalid DNS name {name:?}");
    // hickory takes an empty name for the root; discovery has no use for asking it.
    if name.trim_end_matches('.').is_empty() {
        return Err(invalid());
    }
    let name = Name::from_ascii(name).map_err(|_| invalid())?;
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name, kind.wire()));
    message.to_vec().map_err(|e| format!("encoding a DNS query: {e}"))
}

/// What a response said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The answers of the asked type (others, such as CNAMEs, are left out).
    Answers(Vec<Record>),
    /// The name does not exist (NXDOMAIN).
    NoSuchName,
    /// Truncated: ask again over TCP.
    Truncated,
}

/// A name as discovery labels carry it: ASCII (IDNA labels as `xn--`), without the root's dot.
fn text(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_string()
}

/// Parses the response to query `id` of type `kind`.
pub fn parse_response(buf: &[u8], id: u16, kind: RecordType) -> Result<Response, String> {
    // The header first: a truncated answer may not decode past it.
    let header = Header::read(&mut BinDecoder::new(buf)).map_err(|e| format!("DNS message: {e}"))?;
    if header.metadata.id != id {
        return Err("DNS response to another query".into());
    }
    if header.metadata.truncation {
        return Ok(Response::Truncated);
    }
    match header.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Ok(Response::NoSuchName),
        code => return Err(format!("DNS server answered with error code {}", u16::from(code))),
    }
    let message = Message::from_vec(buf).map_err(|e| format!("DNS message: {e}"))?;
    let records = message.answers.into_iter().filter_map(|r| match r.data {
        RData::A(a) if kind == RecordType::A => Some(Record::A(a.0)),
        RData::AAAA(a) if kind == RecordType::Aaaa => Some(Record::Aaaa(a.0)),
        RData::SRV(s) if kind == RecordType::Srv => {
            Some(Record::Srv { priority: s.priority, weight: s.weight, port: s.port, target: text(&s.target) })
        }
        RData::MX(m) if kind == RecordType::Mx => {
            Some(Record::Mx { preference: m.preference, exchange: text(&m.exchange) })
        }
        RData::NS(n) if kind == RecordType::Ns => Some(Record::Ns(text(&n.0))),
        _ => None,
    });
    Ok(Response::Answers(records.collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `q` with the given answer records (type, rdata), names compressed to the
    /// question's name.
    fn response(q: &[u8], answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut out = q.to_vec();
        out[2] = 0x81;
        out[3] = 0x80;
        out[7] = answers.len() as u8;
        for (rtype, rdata) in answers {
            out.extend_from_slice(&[0xC0, 12]);
            out.extend_from_slice(&rtype.to_be_bytes());
            out.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            out.extend_from_slice(rdata);
        }
        out
    }

    #[test]
    fn srv_and_address_answers_parse() {
        let q = query(7, "_metrics._tcp.example.com", RecordType::Srv).unwrap();
        assert_eq!(&q[12..21], b"\x08_metrics");
        let mut srv = vec![0, 10, 0, 5, 0x23, 0x8C];
        srv.extend_from_slice(b"\x04node\xC0\x1A"); // "node" + pointer to "example.com"
        let r = parse_response(&response(&q, &[(33, srv), (5, vec![0])]), 7, RecordType::Srv).unwrap();
        let target = "node.example.com".to_string();
        assert_eq!(r, Response::Answers(vec![Record::Srv { priority: 10, weight: 5, port: 9100, target }]));
        let q = query(9, "a.example.com.", RecordType::A).unwrap();
        let r = parse_response(&response(&q, &[(1, vec![10, 0, 0, 7])]), 9, RecordType::A).unwrap();
        assert_eq!(r, Response::Answers(vec![Record::A(Ipv4Addr::new(10, 0, 0, 7))]));
    }

    #[test]
    fn errors_truncation_and_garbage_are_told_apart() {
        let q = query(1, "x.example", RecordType::A).unwrap();
        let mut nx = response(&q, &[]);
        nx[3] = 0x83;
        assert_eq!(parse_response(&nx, 1, RecordType::A).unwrap(), Response::NoSuchName);
        let mut tc = response(&q, &[]);
        tc[2] |= 0x02;
        assert_eq!(parse_response(&tc, 1, RecordType::A).unwrap(), Response::Truncated);
        assert!(parse_response(&q[..5], 1, RecordType::A).is_err());
        assert!(parse_response(&response(&q, &[]), 2, RecordType::A).is_err());
        let mut looped = response(&q, &[(1, vec![1, 2, 3, 4])]);
        let at = looped.len() - 16;
        looped[at] = 0xC0;
        looped[at + 1] = at as u8;
        assert!(parse_response(&looped, 1, RecordType::A).is_err());
        assert!(query(1, "bad..name", RecordType::A).is_err());
    }

    #[test]
    fn cut_or_garbled_answers_are_errors_not_panics() {
        let q = query(3, "_metrics._tcp.example.com", RecordType::Srv).unwrap();
        let mut srv = vec![0, 10, 0, 5, 0x23, 0x8C];
        srv.extend_from_slice(b"\x04node\xC0\x1A");
        let whole = response(&q, &[(33, srv.clone()), (33, srv)]);
        for end in 0..whole.len() {
            assert!(parse_response(&whole[..end], 3, RecordType::Srv).is_err(), "cut at {end}");
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            let mut garbled = whole.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = 2 + (x % (garbled.len() as u64 - 2)) as usize;
                garbled[at] = (x >> 32) as u8;
            }
            let _ = parse_response(&garbled, 3, RecordType::Srv);
        }
    }
}
