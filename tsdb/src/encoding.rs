//! Byte-level encodings shared by the on-disk formats (write-ahead log, block index): LEB128
//! varints, zig-zag, length-prefixed bytes and label sets, and a cursor that reads them back
//! failing softly (`None`) on truncated or malformed input, never panicking.

use pyrite_core::labels::{Label, Labels};

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

pub(crate) fn put_labels(out: &mut Vec<u8>, labels: &Labels) {
    put_varint(out, labels.len() as u64);
    for l in labels.iter() {
        put_bytes(out, l.name.as_bytes());
        put_bytes(out, l.value.as_bytes());
    }
}

/// A cursor over a payload; every read fails softly on truncation.
pub(crate) struct Cursor<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes as they are.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let b = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(b)
    }

    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        self.take(n)
    }

    pub(crate) fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        let b = self.buf.get(self.pos..self.pos + 8)?;
        self.pos += 8;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    pub(crate) fn f64(&mut self) -> Option<f64> {
        self.u64().map(f64::from_bits)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    pub(crate) fn i64(&mut self) -> Option<i64> {
        self.varint().map(unzigzag)
    }

    /// Labels as `put_labels` wrote them; sorted, unique and non-empty, or None.
    pub(crate) fn labels(&mut self) -> Option<Labels> {
        let n = self.varint()?;
        let mut labels = Vec::new();
        for _ in 0..n {
            labels.push(Label { name: self.string()?, value: self.string()? });
        }
        // Written from a Labels, so sorted and unique; re-checked, since this is input.
        if !labels.windows(2).all(|w| w[0].name < w[1].name) || labels.iter().any(|l| l.value.is_empty()) {
            return None;
        }
        Some(Labels::from_sorted(labels))
    }
}
