//! Verification of segments at open and replay, and the torn-tail rule.
//!
//! Owns: walking the records of one segment ([`walk_records`]), and the open
//! scan ([`scan`]) that verifies every segment, checks that offsets are dense
//! across segments, and decides where the valid log ends. Does not own: the
//! truncation itself or the active file (the caller does that through the
//! store), nor the byte format (see `format`).
//!
//! The rule: a fault in the last segment is a torn tail, and is cut, only if
//! no intact record with an offset at or above the expected one follows it.
//! Any other fault (in a sealed segment, or followed by a later record) is
//! corruption of data that was once durable and is reported, never skipped.
//!
//! Invariants: the scan result covers offsets `[first segment's first, next)`
//! without holes; every record before `next` verified its checksum and offset.

use super::error::OpenError;
use super::format::{
    decode_header, decode_record, find_later_record, HeaderFault, RecordFault, HEADER_LEN,
};
use super::store::SegmentStore;
use super::{SegmentInfo, TailCut};
use orrery_api::TxOffset;

/// How a walk over one segment's records ended.
#[derive(Debug)]
pub(crate) struct Walk {
    /// Offset of the last record that verified, if any.
    pub(crate) last: Option<TxOffset>,
    /// Offset the next record must carry.
    pub(crate) expected: TxOffset,
    /// Byte position just after the last verified record.
    pub(crate) end: usize,
    /// The fault that stopped the walk, at `end`; None if the bytes ended
    /// cleanly on a record boundary or the callback asked to stop.
    pub(crate) fault: Option<RecordFault>,
}

/// Walks the records of a segment whose header (already verified) names
/// `first`. `f` returns false to stop early.
pub(crate) fn walk_records(
    bytes: &[u8],
    first: TxOffset,
    mut f: impl FnMut(TxOffset, &[u8]) -> bool,
) -> Walk {
    let mut walk = Walk {
        last: None,
        expected: first,
        end: HEADER_LEN.min(bytes.len()),
        fault: None,
    };
    while walk.end < bytes.len() {
        match decode_record(bytes, walk.end, walk.expected) {
            Ok(d) => {
                walk.last = Some(d.offset);
                walk.expected = d.offset.next();
                walk.end = d.end;
                if !f(d.offset, &bytes[d.payload]) {
                    break;
                }
            }
            Err(fault) => {
                walk.fault = Some(fault);
                break;
            }
        }
    }
    walk
}

/// Result of scanning a non-empty store.
#[derive(Debug)]
pub(crate) struct Scan {
    /// All segments; the last one is the active one (`sealed == false`) and
    /// its `bytes` is the valid length to truncate to (possibly 0 when its
    /// header was torn).
    pub(crate) segments: Vec<SegmentInfo>,
    /// Offset of the next record to append.
    pub(crate) next: TxOffset,
    /// Offset of the last record in the log.
    pub(crate) last_record: Option<TxOffset>,
    /// What was cut from the tail of the last segment.
    pub(crate) tail_cut: Option<TailCut>,
}

/// Header faults that a torn write can produce. A header whose checksum
/// verifies but whose content is unexpected (e.g. a newer format version)
/// was written on purpose and must never be "repaired" by truncation.
fn header_may_be_torn(fault: &HeaderFault) -> bool {
    matches!(
        fault,
        HeaderFault::Short { .. } | HeaderFault::BadMagic | HeaderFault::ChecksumMismatch { .. }
    )
}

/// Reads and verifies every segment. Returns None for an empty store.
pub(crate) fn scan(store: &dyn SegmentStore) -> Result<Option<Scan>, OpenError> {
    let firsts = store.list().map_err(|source| OpenError::List { source })?;
    let Some(&last_first) = firsts.last() else {
        return Ok(None);
    };
    let mut segments = Vec::with_capacity(firsts.len());
    let mut expected: Option<TxOffset> = None;
    let mut last_record = None;
    let mut tail_cut = None;
    for &first in &firsts {
        let is_last = first == last_first;
        if let Some(e) = expected {
            if first != e {
                return Err(OpenError::Gap {
                    segment: first,
                    expected: e,
                });
            }
        }
        let bytes = store.read(first).map_err(|source| OpenError::Read {
            segment: first,
            source,
        })?;
        if let Err(fault) = decode_header(&bytes, first) {
            // A torn header can only come from a crash while creating the
            // newest segment; then nothing after it can verify either.
            if is_last
                && header_may_be_torn(&fault)
                && find_later_record(&bytes, 0, first).is_none()
            {
                if !bytes.is_empty() {
                    tail_cut = Some(TailCut {
                        segment: first,
                        position: 0,
                        bytes: bytes.len() as u64,
                    });
                }
                segments.push(SegmentInfo {
                    first,
                    last: None,
                    bytes: 0,
                    sealed: false,
                });
                expected = Some(first);
                break;
            }
            return Err(OpenError::BadHeader {
                segment: first,
                fault,
            });
        }
        let walk = walk_records(&bytes, first, |_, _| true);
        if let Some(fault) = walk.fault {
            let later = find_later_record(&bytes, walk.end + 1, walk.expected);
            if !is_last || later.is_some() {
                return Err(OpenError::Corrupt {
                    segment: first,
                    position: walk.end as u64,
                    expected: walk.expected,
                    fault,
                });
            }
            tail_cut = Some(TailCut {
                segment: first,
                position: walk.end as u64,
                bytes: (bytes.len() - walk.end) as u64,
            });
        }
        if !is_last && walk.last.is_none() {
            return Err(OpenError::EmptySealedSegment { segment: first });
        }
        if walk.last.is_some() {
            last_record = walk.last;
        }
        segments.push(SegmentInfo {
            first,
            last: walk.last,
            bytes: walk.end as u64,
            sealed: !is_last,
        });
        expected = Some(walk.expected);
    }
    let next = expected.expect("a non-empty store yields at least one segment");
    Ok(Some(Scan {
        segments,
        next,
        last_record,
        tail_cut,
    }))
}
