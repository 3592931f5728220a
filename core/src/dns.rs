//! The DNS messages `dns_sd_configs` needs: a query for one name and type, and the answers to
//! it (SRV, A, AAAA, MX, NS), per RFC 1035 and RFC 2782, with name compression. Sending them
//! is the daemon's; this is the sans-I/O part.

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
    fn code(self) -> u16 {
        match self {
            RecordType::A => 1,
            RecordType::Ns => 2,
            RecordType::Mx => 15,
            RecordType::Aaaa => 28,
            RecordType::Srv => 33,
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
    let mut out = Vec::with_capacity(name.len() + 18);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("invalid DNS name {name:?}"));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&kind.code().to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // IN
    Ok(out)
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

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let bytes = self.buf.get(self.pos..self.pos + n).ok_or("DNS message too short")?;
        self.pos += n;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A possibly compressed name, without its trailing dot.
    fn name(&mut self) -> Result<String, String> {
        let mut labels: Vec<String> = Vec::new();
        let mut pos = self.pos;
        let mut jumped = false;
        for _ in 0..128 {
            let len = *self.buf.get(pos).ok_or("DNS name runs past the message")? as usize;
            if len & 0xC0 == 0xC0 {
                let low = *self.buf.get(pos + 1).ok_or("DNS pointer runs past the message")? as usize;
                if !jumped {
                    self.pos = pos + 2;
                }
                jumped = true;
                pos = (len & 0x3F) << 8 | low;
                continue;
            }
            if len == 0 {
                if !jumped {
                    self.pos = pos + 1;
                }
                return Ok(labels.join("."));
            }
            let label = self.buf.get(pos + 1..pos + 1 + len).ok_or("DNS label runs past the message")?;
            labels.push(String::from_utf8_lossy(label).into_owned());
            pos += 1 + len;
        }
        Err("DNS name has too many labels or a pointer loop".into())
    }
}

/// Parses the response to query `id` of type `kind`.
pub fn parse_response(buf: &[u8], id: u16, kind: RecordType) -> Result<Response, String> {
    let mut r = Reader { buf, pos: 0 };
    if r.u16()? != id {
        return Err("DNS response to another query".into());
    }
    let flags = r.u16()?;
    if flags & 0x0200 != 0 {
        return Ok(Response::Truncated);
    }
    match flags & 0x000F {
        0 => {}
        3 => return Ok(Response::NoSuchName),
        code => return Err(format!("DNS server answered with error code {code}")),
    }
    let (questions, answers) = (r.u16()?, r.u16()?);
    r.take(4)?; // authority and additional counts
    for _ in 0..questions {
        r.name()?;
        r.take(4)?;
    }
    let mut out = Vec::new();
    for _ in 0..answers {
        r.name()?;
        let (rtype, _class) = (r.u16()?, r.u16()?);
        r.take(4)?; // TTL
        let len = r.u16()? as usize;
        let end = r.pos + len;
        if rtype == kind.code() {
            out.push(match kind {
                RecordType::A => {
                    let b = r.take(4)?;
                    Record::A(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                }
                RecordType::Aaaa => {
                    let b: [u8; 16] = r.take(16)?.try_into().map_err(|_| "bad AAAA record")?;
                    Record::Aaaa(Ipv6Addr::from(b))
                }
                RecordType::Srv => {
                    let (priority, weight, port) = (r.u16()?, r.u16()?, r.u16()?);
                    Record::Srv { priority, weight, port, target: r.name()? }
                }
                RecordType::Mx => Record::Mx { preference: r.u16()?, exchange: r.name()? },
                RecordType::Ns => Record::Ns(r.name()?),
            });
        }
        if end > buf.len() {
            return Err("DNS record runs past the message".into());
        }
        r.pos = end;
    }
    Ok(Response::Answers(out))
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
}
