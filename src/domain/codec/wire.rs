//! The primitives of the encoding (varint, zigzag, str, tagged str): the `put_*` writers and
//! the [`Reader`], which the log's record batches share.

use super::CodecError;

/// Appends `v` as an unsigned LEB128 varint (also the framing of the log's record batches).
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Appends a varint length and the string's bytes.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub(super) fn put_tagged(out: &mut Vec<u8>, s: &str, known: &[&str]) {
    match known.iter().position(|k| *k == s) {
        Some(tag) => put_varint(out, tag as u64),
        None => {
            put_varint(out, (s.len() + known.len()) as u64);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// The unread rest of the input. Every read checks the remaining length first. The log's record
/// batches share it.
pub(crate) struct Reader<'a> {
    pub(super) rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// How many bytes are left.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let (head, tail) = self.rest.split_at_checked(n).ok_or(CodecError::Truncated)?;
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn byte(&mut self) -> Result<u8, CodecError> {
        let (&b, tail) = self.rest.split_first().ok_or(CodecError::Truncated)?;
        self.rest = tail;
        Ok(b)
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let bytes = self.take(N)?;
        <[u8; N]>::try_from(bytes).map_err(|_| CodecError::Truncated)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, CodecError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            let group = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(CodecError::Invalid("varint overflows 64 bits"));
            }
            v |= group << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(CodecError::Invalid("varint not in its shortest form"));
                }
                return Ok(v);
            }
        }
        Err(CodecError::Invalid("varint overflows 64 bits"))
    }

    pub(super) fn zigzag(&mut self) -> Result<i64, CodecError> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A length prefix, checked against the remaining input.
    pub(crate) fn len(&mut self) -> Result<usize, CodecError> {
        usize::try_from(self.varint()?)
            .ok()
            .filter(|&n| n <= self.rest.len())
            .ok_or(CodecError::Truncated)
    }

    fn utf8(&mut self, n: usize) -> Result<&'a str, CodecError> {
        std::str::from_utf8(self.take(n)?).map_err(|_| CodecError::InvalidUtf8)
    }

    /// A length-prefixed UTF-8 string, borrowed from the input.
    pub(crate) fn str_ref(&mut self) -> Result<&'a str, CodecError> {
        let n = self.len()?;
        self.utf8(n)
    }

    pub(crate) fn str(&mut self) -> Result<String, CodecError> {
        self.str_ref().map(str::to_owned)
    }

    pub(super) fn tagged(&mut self, known: &[&str]) -> Result<String, CodecError> {
        let v = usize::try_from(self.varint()?).map_err(|_| CodecError::Truncated)?;
        if let Some(known) = known.get(v) {
            return Ok((*known).to_owned());
        }
        // `v ≥ known.len()` here; `utf8` checks the length against the input before allocating.
        let text_len = v - known.len();
        let s = self.utf8(text_len)?;
        if known.contains(&s) {
            return Err(CodecError::Invalid("known value written as text"));
        }
        Ok(s.to_owned())
    }
}
