//! Bounded, canonical binary reading and writing.
//!
//! Conventions shared by every Custos wire format (see `docs/spec/wire.md`, Conventions):
//! integers are big-endian and fixed width; variable-length byte strings carry a
//! length prefix of a stated width and a stated maximum; a decoder must consume
//! its whole input, so trailing bytes are an error. Because every field has
//! exactly one encoding, decode-then-encode reproduces the input byte for byte,
//! which is what makes signatures and hashes over encodings well defined.

use crate::WireError;

/// A cursor over untrusted bytes. Every read is bounds-checked and returns an
/// error instead of panicking.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    field: &'static str,
}

impl<'a> Reader<'a> {
    /// Starts reading `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, field: "" }
    }

    /// Names the field about to be read, so that errors say where decoding failed.
    pub fn field(&mut self, name: &'static str) -> &mut Self {
        self.field = name;
        self
    }

    /// Number of bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// Takes exactly `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.bytes.len() < n {
            return Err(WireError::Truncated { field: self.field });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let slice = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads a byte string with a one-byte length prefix, at most `max` long.
    pub fn bytes8(&mut self, max: usize) -> Result<&'a [u8], WireError> {
        let len = usize::from(self.u8()?);
        self.bounded(len, max)
    }

    /// Reads a byte string with a two-byte length prefix, at most `max` long.
    pub fn bytes16(&mut self, max: usize) -> Result<&'a [u8], WireError> {
        let len = usize::from(self.u16()?);
        self.bounded(len, max)
    }

    /// Reads a byte string with a four-byte length prefix, at most `max` long.
    pub fn bytes32(&mut self, max: usize) -> Result<&'a [u8], WireError> {
        let len = usize::try_from(self.u32()?).map_err(|_| WireError::TooLong {
            field: self.field,
            max,
        })?;
        self.bounded(len, max)
    }

    /// Reads a UTF-8 string with a one-byte length prefix, at most `max` bytes.
    pub fn str8(&mut self, max: usize) -> Result<&'a str, WireError> {
        let field = self.field;
        let raw = self.bytes8(max)?;
        std::str::from_utf8(raw).map_err(|_| WireError::InvalidUtf8 { field })
    }

    /// Reads a UTF-8 string with a two-byte length prefix, at most `max` bytes.
    pub fn str16(&mut self, max: usize) -> Result<&'a str, WireError> {
        let field = self.field;
        let raw = self.bytes16(max)?;
        std::str::from_utf8(raw).map_err(|_| WireError::InvalidUtf8 { field })
    }

    /// Fails unless every byte has been consumed.
    pub fn finish(self) -> Result<(), WireError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes {
                count: self.bytes.len(),
            })
        }
    }

    fn bounded(&mut self, len: usize, max: usize) -> Result<&'a [u8], WireError> {
        if len > max {
            return Err(WireError::TooLong {
                field: self.field,
                max,
            });
        }
        self.take(len)
    }
}

/// Appends canonical encodings to a byte vector.
///
/// Writers check the same bounds that readers enforce, so that nothing is ever
/// encoded that its own decoder would refuse.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty writer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }

    /// Appends raw bytes.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a big-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }

    /// Appends a big-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }

    /// Appends a big-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }

    /// Appends a byte string with a one-byte length prefix.
    pub fn bytes8(
        &mut self,
        field: &'static str,
        bytes: &[u8],
        max: usize,
    ) -> Result<&mut Self, WireError> {
        let len = check_len(field, bytes.len(), max.min(usize::from(u8::MAX)))?;
        self.u8(u8::try_from(len).map_err(|_| WireError::TooLong { field, max })?);
        Ok(self.raw(bytes))
    }

    /// Appends a byte string with a two-byte length prefix.
    pub fn bytes16(
        &mut self,
        field: &'static str,
        bytes: &[u8],
        max: usize,
    ) -> Result<&mut Self, WireError> {
        let len = check_len(field, bytes.len(), max.min(usize::from(u16::MAX)))?;
        self.u16(u16::try_from(len).map_err(|_| WireError::TooLong { field, max })?);
        Ok(self.raw(bytes))
    }

    /// Appends a byte string with a four-byte length prefix.
    pub fn bytes32(
        &mut self,
        field: &'static str,
        bytes: &[u8],
        max: usize,
    ) -> Result<&mut Self, WireError> {
        let len = check_len(field, bytes.len(), max)?;
        self.u32(u32::try_from(len).map_err(|_| WireError::TooLong { field, max })?);
        Ok(self.raw(bytes))
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Consumes the writer, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

fn check_len(field: &'static str, len: usize, max: usize) -> Result<usize, WireError> {
    if len > max {
        Err(WireError::TooLong { field, max })
    } else {
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_refuses_truncation_and_trailing_bytes() {
        let mut r = Reader::new(&[0, 5, 1, 2]);
        assert!(matches!(r.bytes16(16), Err(WireError::Truncated { .. })));
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u8().unwrap(), 1);
        assert!(matches!(
            r.finish(),
            Err(WireError::TrailingBytes { count: 2 })
        ));
    }

    #[test]
    fn length_bounds_hold_both_ways() {
        let mut w = Writer::new();
        assert!(w.bytes8("x", &[0u8; 10], 9).is_err());
        w.bytes8("x", &[7u8; 9], 9).unwrap();
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert!(matches!(r.bytes8(8), Err(WireError::TooLong { .. })));
    }
}
