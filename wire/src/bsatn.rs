//! Minimal BSATN reader/writer for the client protocol messages.
//!
//! Owns: the primitive encodings of spec §1.1 (little-endian integers, u32
//! length prefixes, u8 sum tags) and the typed [`DecodeError`]. Decoding never
//! panics and never allocates more than the input can back: every length
//! prefix is checked against the bytes left before anything is reserved.
//! Does not own: message layouts (`messages`) or framing (`framing`).

/// Why a payload could not be decoded. Every variant is a protocol error
/// (close 1011 with the text, spec §4.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("truncated input: {needed} more bytes needed at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    /// A sum tag outside the enum's variants.
    #[error("unknown tag {tag} for {ty} at offset {offset}")]
    UnknownTag {
        ty: &'static str,
        tag: u8,
        offset: usize,
    },
    /// A length prefix that the remaining bytes cannot possibly satisfy.
    #[error("length {len} of {ty} at offset {offset} exceeds the {remaining} bytes left")]
    LengthTooLarge {
        ty: &'static str,
        len: u32,
        offset: usize,
        remaining: usize,
    },
    /// Bytes left over after a complete message.
    #[error("{count} trailing bytes after {ty}")]
    TrailingBytes { ty: &'static str, count: usize },
    /// A string that is not UTF-8.
    #[error("invalid UTF-8 in string at offset {offset}")]
    InvalidUtf8 { offset: usize },
    /// `flags` of CallReducer/CallProcedure must be 0 (spec §4.5).
    #[error("call flags must be 0, got {0}")]
    NonZeroFlags(u8),
    /// A payload without any message (v3 payloads must hold at least one).
    #[error("empty payload")]
    EmptyPayload,
    /// A payload larger than the protocol allows.
    #[error("payload of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    /// The compression-tag byte of a server payload is not 0, 1 or 2.
    #[error("unknown compression tag {0}")]
    UnknownCompression(u8),
    /// The compressed body could not be decompressed.
    #[error("decompression failed: {0}")]
    Decompress(String),
}

/// A cursor over an input slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless the input is used up.
    pub fn finish(&self, ty: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { ty, count }),
        }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_le_bytes(self.array()?))
    }

    pub fn bytes32(&mut self) -> Result<[u8; 32], DecodeError> {
        self.array()
    }

    pub fn bytes16(&mut self) -> Result<[u8; 16], DecodeError> {
        self.array()
    }

    /// Reads a sum tag, failing with [`DecodeError::UnknownTag`] unless it is
    /// below `variants`.
    pub fn tag(&mut self, ty: &'static str, variants: u8) -> Result<u8, DecodeError> {
        let offset = self.pos;
        let tag = self.u8()?;
        if tag < variants {
            Ok(tag)
        } else {
            Err(DecodeError::UnknownTag { ty, tag, offset })
        }
    }

    /// Reads a u32 element count and checks that `count * min_size` bytes are
    /// left, so a hostile prefix cannot make us reserve unbacked memory.
    pub fn len(&mut self, ty: &'static str, min_size: usize) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let len = self.u32()?;
        let needed = (len as usize).saturating_mul(min_size.max(1));
        if needed > self.remaining() {
            return Err(DecodeError::LengthTooLarge {
                ty,
                len,
                offset,
                remaining: self.remaining(),
            });
        }
        Ok(len as usize)
    }

    pub fn byte_vec(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.len("bytes", 1)?;
        Ok(self.take(n)?.to_vec())
    }

    pub fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.len("string", 1)?;
        let offset = self.pos;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8 { offset })
    }

    /// Reads an array whose elements each take at least `min_size` bytes.
    pub fn vec<T>(
        &mut self,
        ty: &'static str,
        min_size: usize,
        mut elem: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let n = self.len(ty, min_size)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(elem(self)?);
        }
        Ok(out)
    }
}

/// Appends BSATN primitives to a byte vector.
pub fn put_u32(w: &mut Vec<u8>, v: u32) {
    w.extend_from_slice(&v.to_le_bytes());
}

pub fn put_len(w: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).expect("BSATN lengths are u32; message too large");
    put_u32(w, len);
}

pub fn put_bytes(w: &mut Vec<u8>, bytes: &[u8]) {
    put_len(w, bytes.len());
    w.extend_from_slice(bytes);
}

pub fn put_str(w: &mut Vec<u8>, s: &str) {
    put_bytes(w, s.as_bytes());
}

pub fn put_vec<T>(w: &mut Vec<u8>, items: &[T], mut elem: impl FnMut(&mut Vec<u8>, &T)) {
    put_len(w, items.len());
    for item in items {
        elem(w, item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_length_prefix_is_rejected_before_allocating() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 1, 2]);
        assert_eq!(
            r.vec("array", 8, |r| r.u64()),
            Err(DecodeError::LengthTooLarge {
                ty: "array",
                len: u32::MAX,
                offset: 0,
                remaining: 2
            })
        );
    }

    #[test]
    fn truncated_integer_reports_missing_bytes() {
        let mut r = Reader::new(&[1, 2]);
        assert_eq!(
            r.u32(),
            Err(DecodeError::Truncated {
                offset: 0,
                needed: 2
            })
        );
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut r = Reader::new(&[1, 0, 0, 0, 0xff]);
        assert_eq!(r.string(), Err(DecodeError::InvalidUtf8 { offset: 4 }));
    }
}
