//! Protobuf's wire format walked field by field, without decoding whole messages: what the
//! protobuf exposition parser reads a scrape body with and the remote-write and remote-read
//! decoders read requests with, so that a message's cost in memory is what the reader keeps of
//! it, never what a generic decoder would build from it (a two-byte empty label pair decodes
//! into two `String`s).
//!
//! Every read is checked: a length past the end of its message, a varint of more than ten
//! bytes or a group (deprecated, never in the exposition format) is an error, never a panic
//! or an allocation.

use prost::encoding::{decode_key, decode_varint, WireType};
use thiserror::Error;

/// Why a message could not be walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("invalid field key or varint")]
    Malformed,
    #[error("field runs past the end of its message")]
    Truncated,
    #[error("groups are not supported")]
    Group,
}

/// What a field holds, by its wire type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Payload<'a> {
    Varint(u64),
    /// A `double`, `fixed64` or `sfixed64`, as its bits.
    Fixed64(u64),
    Fixed32(u32),
    /// A string, bytes, an embedded message or a packed repeated field.
    Bytes(&'a [u8]),
}

impl<'a> Payload<'a> {
    /// The field as a string, if it is length-delimited valid UTF-8.
    pub fn string(self) -> Option<&'a str> {
        match self {
            Payload::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// A zig-zag encoded signed integer's value.
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The fields of a message, in order, each with its tag. Ends at the first malformed field,
/// with its error.
#[derive(Debug, Clone)]
pub struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    pub fn new(message: &'a [u8]) -> Self {
        Fields(message)
    }
}

/// `n` bytes off the front of `buf`.
fn take<'a>(buf: &mut &'a [u8], n: u64) -> Result<&'a [u8], WireError> {
    let n = usize::try_from(n).map_err(|_| WireError::Truncated)?;
    let (taken, rest) = buf.split_at_checked(n).ok_or(WireError::Truncated)?;
    *buf = rest;
    Ok(taken)
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Payload<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let mut buf = self.0;
        let field = (|| {
            let (tag, wire_type) = decode_key(&mut buf).map_err(|_| WireError::Malformed)?;
            let payload = match wire_type {
                WireType::Varint => Payload::Varint(decode_varint(&mut buf).map_err(|_| WireError::Malformed)?),
                WireType::SixtyFourBit => {
                    let bytes = take(&mut buf, 8)?;
                    Payload::Fixed64(u64::from_le_bytes(bytes.try_into().map_err(|_| WireError::Truncated)?))
                }
                WireType::ThirtyTwoBit => {
                    let bytes = take(&mut buf, 4)?;
                    Payload::Fixed32(u32::from_le_bytes(bytes.try_into().map_err(|_| WireError::Truncated)?))
                }
                WireType::LengthDelimited => {
                    let len = decode_varint(&mut buf).map_err(|_| WireError::Malformed)?;
                    Payload::Bytes(take(&mut buf, len)?)
                }
                WireType::StartGroup | WireType::EndGroup => return Err(WireError::Group),
            };
            Ok((tag, payload))
        })();
        // After an error, stop: what follows cannot be framed.
        self.0 = if field.is_ok() { buf } else { &[] };
        Some(field)
    }
}

/// The values of a repeated varint field (`sint64`, `uint64`, ...) from one occurrence: a
/// packed run, or a single unpacked value.
pub fn varints(payload: Payload<'_>) -> impl Iterator<Item = Result<u64, WireError>> + '_ {
    let (single, mut packed) = match payload {
        Payload::Varint(v) => (Some(Ok(v)), &[][..]),
        Payload::Bytes(b) => (None, b),
        _ => (Some(Err(WireError::Malformed)), &[][..]),
    };
    single.into_iter().chain(std::iter::from_fn(move || {
        if packed.is_empty() {
            return None;
        }
        let value = decode_varint(&mut packed).map_err(|_| WireError::Malformed);
        if value.is_err() {
            packed = &[];
        }
        Some(value)
    }))
}

/// The values of a repeated `double` field from one occurrence: packed, or a single value.
pub fn doubles(payload: Payload<'_>) -> Result<impl Iterator<Item = f64> + '_, WireError> {
    let (single, packed) = match payload {
        Payload::Fixed64(bits) => (Some(f64::from_bits(bits)), &[][..]),
        Payload::Bytes(b) if b.len() % 8 == 0 => (None, b),
        _ => return Err(WireError::Malformed),
    };
    let packed = packed.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()));
    Ok(single.into_iter().chain(packed))
}

/// How many values one occurrence of a repeated varint field holds, counted without decoding
/// them: each ends at a byte below 0x80.
pub fn count_varints(payload: Payload<'_>) -> usize {
    match payload {
        Payload::Bytes(packed) => packed.iter().filter(|&&b| b < 0x80).count(),
        _ => 1,
    }
}

/// How many values one occurrence of a repeated `double` field holds: 8 bytes each.
pub fn count_doubles(payload: Payload<'_>) -> usize {
    match payload {
        Payload::Bytes(packed) => packed.len() / 8,
        _ => 1,
    }
}

/// Why the next message of a delimited stream could not be framed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("invalid message length: not a varint of at most 5 bytes")]
    Length,
    #[error("message of {length} bytes, but only {left} bytes left in the body")]
    Short { length: u64, left: usize },
}

/// The messages of a varint-length-delimited stream (`encoding=delimited`), in order. A
/// length takes at most five bytes (a `uint32`, as upstream reads it).
#[derive(Debug, Clone)]
pub struct Delimited<'a>(&'a [u8]);

impl<'a> Delimited<'a> {
    pub fn new(stream: &'a [u8]) -> Self {
        Delimited(stream)
    }
}

impl<'a> Iterator for Delimited<'a> {
    type Item = Result<&'a [u8], FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let mut buf = self.0;
        let frame = (|| {
            let before = buf.len();
            let length = decode_varint(&mut buf).map_err(|_| FrameError::Length)?;
            if before - buf.len() > 5 || length > u64::from(u32::MAX) {
                return Err(FrameError::Length);
            }
            take(&mut buf, length).map_err(|_| FrameError::Short { length, left: buf.len() })
        })();
        self.0 = if frame.is_ok() { buf } else { &[] };
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::encoding::{encode_key, encode_varint};

    #[test]
    fn fields_come_with_their_payloads_and_stop_at_the_first_bad_one() {
        let mut m = Vec::new();
        encode_key(1, WireType::Varint, &mut m);
        encode_varint(300, &mut m);
        encode_key(2, WireType::SixtyFourBit, &mut m);
        m.extend(1.5f64.to_le_bytes());
        encode_key(3, WireType::LengthDelimited, &mut m);
        encode_varint(2, &mut m);
        m.extend(b"hi");
        encode_key(4, WireType::ThirtyTwoBit, &mut m);
        m.extend(7u32.to_le_bytes());
        let fields: Vec<_> = Fields::new(&m).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            fields,
            [
                (1, Payload::Varint(300)),
                (2, Payload::Fixed64(1.5f64.to_bits())),
                (3, Payload::Bytes(b"hi")),
                (4, Payload::Fixed32(7))
            ]
        );
        assert_eq!(fields[2].1.string(), Some("hi"));
        // A length past the end, a group, a varint that never ends.
        let cut = &m[..m.len() - 7];
        assert_eq!(Fields::new(cut).last(), Some(Err(WireError::Truncated)));
        assert_eq!(Fields::new(&[0x0b]).next(), Some(Err(WireError::Group)));
        assert_eq!(Fields::new(&[0x08, 0xff, 0xff]).next(), Some(Err(WireError::Malformed)));
        let mut huge = vec![0x1a];
        encode_varint(u64::MAX, &mut huge);
        assert_eq!(Fields::new(&huge).next(), Some(Err(WireError::Truncated)));
    }

    #[test]
    fn repeated_scalars_packed_or_not() {
        let packed = [0x02, 0x03, 0xac, 0x02];
        let values: Vec<u64> = varints(Payload::Bytes(&packed)).collect::<Result<_, _>>().unwrap();
        assert_eq!(values, [2, 3, 300]);
        assert_eq!((count_varints(Payload::Bytes(&packed)), count_doubles(Payload::Bytes(&[0; 17]))), (3, 2));
        assert_eq!(varints(Payload::Varint(9)).collect::<Vec<_>>(), [Ok(9)]);
        assert_eq!(varints(Payload::Bytes(&[0x80])).collect::<Vec<_>>(), [Err(WireError::Malformed)]);
        assert_eq!(unzigzag(3), -2);
        assert_eq!(unzigzag(4), 2);
        let bytes: Vec<u8> = [1.0f64, -2.5].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(doubles(Payload::Bytes(&bytes)).unwrap().collect::<Vec<_>>(), [1.0, -2.5]);
        assert!(doubles(Payload::Bytes(&bytes[..5])).is_err());
        assert_eq!(doubles(Payload::Fixed64(3.0f64.to_bits())).unwrap().collect::<Vec<_>>(), [3.0]);
    }

    #[test]
    fn delimited_messages_are_framed_and_bounded() {
        let mut stream = Vec::new();
        for m in [&b"ab"[..], b"", b"xyz"] {
            encode_varint(m.len() as u64, &mut stream);
            stream.extend(m);
        }
        let frames: Vec<&[u8]> = Delimited::new(&stream).collect::<Result<_, _>>().unwrap();
        assert_eq!(frames, [&b"ab"[..], b"", b"xyz"]);
        assert_eq!(Delimited::new(&[0x05, 1, 2]).next(), Some(Err(FrameError::Short { length: 5, left: 2 })));
        assert_eq!(Delimited::new(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]).next(), Some(Err(FrameError::Length)));
        let mut big = Vec::new();
        encode_varint(u64::from(u32::MAX) + 1, &mut big);
        assert_eq!(Delimited::new(&big).next(), Some(Err(FrameError::Length)));
    }
}
