//! On-disk byte format of commit-log segments (format version 1).
//!
//! Owns: encoding and decoding of the segment header and of record frames,
//! and the search for a later valid record that tells a torn tail from
//! mid-log corruption. Does not own: I/O (see `store`), or the decision what
//! to do with a fault (see `recovery` and `replay`).
//!
//! Entry points: [`encode_header`], [`decode_header`], [`encode_record`],
//! [`decode_record`], [`find_later_record`].
//!
//! Layout (all integers little-endian, widths explicit; see
//! docs/design/commitlog.md for the full description):
//!
//! ```text
//! header (28 bytes)  magic[8] = "ORRYCLOG" | version u32 = 1 | reserved u32 = 0
//!                    | first_offset u64 | crc32c(bytes 0..24) u32
//! record (16 + len)  len u32 | offset u64 | crc32c(bytes 0..12 ++ payload) u32
//!                    | payload[len]
//! ```
//!
//! Invariants: a decoder never allocates from a length it read (it only
//! slices the buffer it was given, after a bounds check), and a length above
//! `COMMITLOG_RECORD_BYTES_MAX` is corruption. The record checksum covers its
//! own offset, so a valid frame copied to another position fails the offset
//! check rather than being accepted.

use orrery_api::limits::COMMITLOG_RECORD_BYTES_MAX;
use orrery_api::TxOffset;
use std::ops::Range;

/// Identifies a commit-log segment; chosen to be readable in a hex dump.
pub(crate) const MAGIC: [u8; 8] = *b"ORRYCLOG";
/// Bumped on any incompatible change of the header or record framing.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Size of the segment header.
pub(crate) const HEADER_LEN: usize = 28;
/// Size of a record frame without its payload.
pub(crate) const RECORD_HEADER_LEN: usize = 16;

/// Why a segment header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderFault {
    #[error("header is short: {len} of {HEADER_LEN} bytes")]
    Short { len: usize },
    #[error("bad magic")]
    BadMagic,
    #[error("header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("unsupported format version {version}")]
    UnsupportedVersion { version: u32 },
    #[error("reserved header field is {value:#x}, expected 0")]
    ReservedNotZero { value: u32 },
    #[error("header names first offset {found}, but the segment is named {named}")]
    FirstOffsetMismatch { found: TxOffset, named: TxOffset },
}

/// Why a record frame was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordFault {
    #[error("record is short: needs {needed} bytes, {available} remain")]
    Truncated { needed: u64, available: u64 },
    #[error("record length {len} exceeds the maximum")]
    LengthTooLarge { len: u64 },
    #[error("record checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("record carries offset {found}")]
    WrongOffset { found: TxOffset },
}

/// Reads a little-endian u32 at `at`; the caller has bounds-checked.
fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Reads a little-endian u64 at `at`; the caller has bounds-checked.
fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The header of a segment whose first record is `first`.
pub(crate) fn encode_header(first: TxOffset) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&0u32.to_le_bytes());
    h[16..24].copy_from_slice(&first.0.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Verifies the header at the start of `bytes` for the segment named `named`.
///
/// The checksum is checked before the fields so that a random byte pattern
/// is reported as a checksum mismatch, not as an odd version number.
pub(crate) fn decode_header(bytes: &[u8], named: TxOffset) -> Result<(), HeaderFault> {
    if bytes.len() < HEADER_LEN {
        return Err(HeaderFault::Short { len: bytes.len() });
    }
    if bytes[0..8] != MAGIC {
        return Err(HeaderFault::BadMagic);
    }
    let stored = le_u32(bytes, 24);
    let computed = crc32c::crc32c(&bytes[0..24]);
    if stored != computed {
        return Err(HeaderFault::ChecksumMismatch { stored, computed });
    }
    let version = le_u32(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(HeaderFault::UnsupportedVersion { version });
    }
    let reserved = le_u32(bytes, 12);
    if reserved != 0 {
        return Err(HeaderFault::ReservedNotZero { value: reserved });
    }
    let found = TxOffset(le_u64(bytes, 16));
    if found != named {
        return Err(HeaderFault::FirstOffsetMismatch { found, named });
    }
    Ok(())
}

/// Framed size of a record with a payload of `payload_len` bytes.
pub(crate) fn framed_len(payload_len: usize) -> usize {
    RECORD_HEADER_LEN + payload_len
}

/// Appends the frame of record `offset` to `out`.
pub(crate) fn encode_record(offset: TxOffset, payload: &[u8], out: &mut Vec<u8>) {
    // Callers reject oversized payloads before they reach the log thread.
    assert!(
        payload.len() as u64 <= COMMITLOG_RECORD_BYTES_MAX,
        "oversized payload reached the encoder"
    );
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&offset.0.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[start..start + 12]), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// A record that verified: its offset, where its payload lies in the buffer,
/// and where the next frame starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) offset: TxOffset,
    pub(crate) payload: Range<usize>,
    pub(crate) end: usize,
}

/// Decodes the frame at `pos`, which must carry offset `expected`.
///
/// Order of checks: bounds, length limit, checksum, then offset. Checking
/// the checksum before the offset means `WrongOffset` is only reported for a
/// frame that is intact but misplaced.
pub(crate) fn decode_record(
    bytes: &[u8],
    pos: usize,
    expected: TxOffset,
) -> Result<Decoded, RecordFault> {
    let d = decode_any(bytes, pos)?;
    if d.offset != expected {
        return Err(RecordFault::WrongOffset { found: d.offset });
    }
    Ok(d)
}

/// Decodes and checksums the frame at `pos` without checking its offset.
fn decode_any(bytes: &[u8], pos: usize) -> Result<Decoded, RecordFault> {
    let available = bytes.len().saturating_sub(pos);
    if available < RECORD_HEADER_LEN {
        return Err(RecordFault::Truncated {
            needed: RECORD_HEADER_LEN as u64,
            available: available as u64,
        });
    }
    let len = u64::from(le_u32(bytes, pos));
    if len > COMMITLOG_RECORD_BYTES_MAX {
        return Err(RecordFault::LengthTooLarge { len });
    }
    let needed = RECORD_HEADER_LEN as u64 + len;
    if (available as u64) < needed {
        return Err(RecordFault::Truncated {
            needed,
            available: available as u64,
        });
    }
    // `needed <= available` fits in usize because `available` does.
    let end = pos + needed as usize;
    let payload = pos + RECORD_HEADER_LEN..end;
    let offset = TxOffset(le_u64(bytes, pos + 4));
    let stored = le_u32(bytes, pos + 12);
    let computed = crc32c::crc32c_append(
        crc32c::crc32c(&bytes[pos..pos + 12]),
        &bytes[payload.clone()],
    );
    if stored != computed {
        return Err(RecordFault::ChecksumMismatch { stored, computed });
    }
    Ok(Decoded {
        offset,
        payload,
        end,
    })
}

/// Looks for any intact frame starting at or after `from` whose offset is
/// `>= expected`. Its existence means the fault before it is not a torn tail
/// but damage inside data that was written later, i.e. corruption.
///
/// Frames with a lower offset are stale (e.g. a replayed old write) and do
/// not count. The offset is bounded by how many frames could still fit, so
/// random bytes rarely reach the checksum step and the scan stays cheap.
pub(crate) fn find_later_record(
    bytes: &[u8],
    from: usize,
    expected: TxOffset,
) -> Option<(usize, TxOffset)> {
    let last_start = bytes.len().checked_sub(RECORD_HEADER_LEN)?;
    let max_frames = (bytes.len().saturating_sub(from) / RECORD_HEADER_LEN) as u64;
    let mut q = from;
    while q <= last_start {
        let offset = le_u64(bytes, q + 4);
        if offset >= expected.0 && offset - expected.0 <= max_frames {
            if let Ok(d) = decode_any(bytes, q) {
                return Some((q, d.offset));
            }
        }
        q += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // Protects the header round trip and its binding to the segment name.
    #[test]
    fn header_round_trip_and_name_binding() {
        let h = encode_header(TxOffset(42));
        assert_eq!(decode_header(&h, TxOffset(42)), Ok(()));
        assert_eq!(
            decode_header(&h, TxOffset(43)),
            Err(HeaderFault::FirstOffsetMismatch {
                found: TxOffset(42),
                named: TxOffset(43)
            })
        );
        assert_eq!(
            decode_header(&h[..27], TxOffset(42)),
            Err(HeaderFault::Short { len: 27 })
        );
        let mut bad = h;
        bad[17] ^= 1;
        assert!(matches!(
            decode_header(&bad, TxOffset(42)),
            Err(HeaderFault::ChecksumMismatch { .. })
        ));
    }

    // Protects the exact byte layout (little-endian, fixed widths) against accidental change.
    #[test]
    fn record_layout_is_pinned() {
        let mut out = Vec::new();
        encode_record(TxOffset(0x0102), b"ab", &mut out);
        assert_eq!(&out[0..4], &[2, 0, 0, 0]);
        assert_eq!(&out[4..12], &[2, 1, 0, 0, 0, 0, 0, 0]);
        let crc = crc32c::crc32c(&[&out[0..12], b"ab"].concat());
        assert_eq!(&out[12..16], &crc.to_le_bytes());
        assert_eq!(&out[16..], b"ab");
        let d = decode_record(&out, 0, TxOffset(0x0102)).expect("intact record");
        assert_eq!(&out[d.payload], b"ab");
        assert_eq!(d.end, out.len());
    }

    // Protects against accepting an all-zero (preallocated / zero-filled) frame.
    #[test]
    fn zero_frame_is_rejected() {
        let zeros = [0u8; 64];
        assert!(matches!(
            decode_record(&zeros, 0, TxOffset(0)),
            Err(RecordFault::ChecksumMismatch { .. })
        ));
        assert_eq!(find_later_record(&zeros, 0, TxOffset(0)), None);
    }

    // Protects against allocating or reading from an untrusted huge length.
    #[test]
    fn huge_length_is_corruption() {
        let mut b = vec![0u8; 32];
        b[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_record(&b, 0, TxOffset(0)),
            Err(RecordFault::LengthTooLarge {
                len: u64::from(u32::MAX)
            })
        );
    }

    // Protects that an intact frame at the wrong place is caught by its offset.
    #[test]
    fn misplaced_record_is_caught() {
        let mut out = Vec::new();
        encode_record(TxOffset(7), b"x", &mut out);
        assert_eq!(
            decode_record(&out, 0, TxOffset(8)),
            Err(RecordFault::WrongOffset { found: TxOffset(7) })
        );
        // A stale frame is not a "later" record, a future one is.
        assert_eq!(find_later_record(&out, 0, TxOffset(8)), None);
        assert_eq!(
            find_later_record(&out, 0, TxOffset(6)),
            Some((0, TxOffset(7)))
        );
    }
}
