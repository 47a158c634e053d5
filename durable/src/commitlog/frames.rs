//! Reading the durable log in pieces, to copy it elsewhere, and the segment
//! images such copies are made of.
//!
//! A record's frame carries its own offset and checksum, so the frames read
//! from a local segment are copied byte for byte: a *segment image* is the
//! 28-byte header naming its first offset followed by whole frames, which is
//! exactly a sealed segment file. Object-store shipping uploads images and
//! recovery decodes them strictly (an image is written whole, so any fault
//! in it is damage, never a torn tail).

use orrery_api::TxOffset;

use super::error::ReplayError;
use super::format::{decode_header, decode_record, encode_header, HeaderFault, RecordFault};
use super::{CommitLog, HEADER_LEN};

/// Where the next [`CommitLog::read_durable`] starts: the offset it wants,
/// and (when known) the segment and byte position of that offset's frame,
/// so a reader that follows the log never re-reads what it has seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogPosition {
    next: TxOffset,
    at: Option<(TxOffset, u64)>,
}

impl LogPosition {
    /// The position of `offset`, to be found by scanning its segment.
    pub fn at(offset: TxOffset) -> LogPosition {
        LogPosition {
            next: offset,
            at: None,
        }
    }

    /// The offset the next read starts at.
    pub fn next(&self) -> TxOffset {
        self.next
    }
}

/// Consecutive durable records, as their frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurableFrames {
    pub first: TxOffset,
    pub last: TxOffset,
    /// The frames of `first..=last`, exactly as the log holds them.
    pub frames: Vec<u8>,
    /// Where the read after this one starts.
    pub resume: LogPosition,
}

impl DurableFrames {
    /// A segment image of these records (header, then the frames).
    pub fn segment_image(&self) -> Vec<u8> {
        let mut image = Vec::with_capacity(HEADER_LEN + self.frames.len());
        image.extend_from_slice(&encode_header(self.first));
        image.extend_from_slice(&self.frames);
        image
    }
}

/// Why a segment image does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("segment image {first}: bad header: {fault}")]
    BadHeader { first: TxOffset, fault: HeaderFault },
    #[error(
        "segment image {first}: damaged record at byte {position}, expected offset {expected}: {fault}"
    )]
    Corrupt {
        first: TxOffset,
        position: u64,
        expected: TxOffset,
        fault: RecordFault,
    },
    #[error("segment image {first} holds no record")]
    Empty { first: TxOffset },
}

/// Decodes a whole segment image named `first`, calling `f` for each record
/// in order; returns the last offset. Every byte must belong to a verified
/// record whose offset follows the one before, starting at `first`.
pub fn decode_segment_image(
    bytes: &[u8],
    first: TxOffset,
    mut f: impl FnMut(TxOffset, &[u8]),
) -> Result<TxOffset, ImageError> {
    decode_header(bytes, first).map_err(|fault| ImageError::BadHeader { first, fault })?;
    let mut pos = HEADER_LEN;
    let mut expected = first;
    let mut last = None;
    while pos < bytes.len() {
        let decoded = decode_record(bytes, pos, expected).map_err(|fault| ImageError::Corrupt {
            first,
            position: pos as u64,
            expected,
            fault,
        })?;
        f(decoded.offset, &bytes[decoded.payload]);
        last = Some(decoded.offset);
        expected = decoded.offset.next();
        pos = decoded.end;
    }
    last.ok_or(ImageError::Empty { first })
}

impl CommitLog {
    /// The durable records from `from` on, up to about `max_bytes` of frames
    /// (at least one record) and never past the end of one segment; `None`
    /// when nothing at or after `from` is durable yet. Checksums and offsets
    /// are verified on the way, as in [`CommitLog::replay`].
    pub fn read_durable(
        &self,
        from: LogPosition,
        max_bytes: usize,
    ) -> Result<Option<DurableFrames>, ReplayError<std::convert::Infallible>> {
        let (segments, durable) = {
            let st = self.shared.lock();
            (st.segments.clone(), st.durable)
        };
        let Some(upto) = durable else { return Ok(None) };
        if from.next > upto {
            return Ok(None);
        }
        let first_retained = segments[0].first;
        if from.next < first_retained {
            return Err(ReplayError::NotRetained {
                from: from.next,
                first_retained,
            });
        }
        let Some(seg) = segments
            .iter()
            .rev()
            .find(|s| s.first <= from.next && s.last.is_some_and(|l| l >= from.next))
        else {
            return Ok(None);
        };
        let (start, mut expected) = match from.at {
            Some((segment, byte)) if segment == seg.first => (byte, from.next),
            _ => (HEADER_LEN as u64, seg.first),
        };
        let bytes = self
            .store
            .read_from(seg.first, start)
            .map_err(|source| ReplayError::Read {
                segment: seg.first,
                source,
            })?;
        let must_reach = seg.last.map_or(upto, |l| l.min(upto));
        let mut frames = Vec::new();
        let mut first = None;
        let mut pos = 0usize;
        while expected <= must_reach {
            let decoded =
                decode_record(&bytes, pos, expected).map_err(|fault| ReplayError::Corrupt {
                    segment: seg.first,
                    position: start + pos as u64,
                    expected,
                    fault,
                })?;
            if decoded.offset >= from.next {
                first.get_or_insert(decoded.offset);
                frames.extend_from_slice(&bytes[pos..decoded.end]);
            }
            pos = decoded.end;
            expected = decoded.offset.next();
            if first.is_some() && frames.len() >= max_bytes {
                break;
            }
        }
        let Some(first) = first else { return Ok(None) };
        let last = TxOffset(expected.0 - 1);
        Ok(Some(DurableFrames {
            first,
            last,
            frames,
            resume: LogPosition {
                next: expected,
                at: Some((seg.first, start + pos as u64)),
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::commitlog::{CommitLogOptions, MemorySegmentStore};

    fn log_with(records: u64, segment_bytes_max: u64) -> CommitLog {
        let store = Arc::new(MemorySegmentStore::new());
        let log = CommitLog::open(
            store,
            CommitLogOptions {
                segment_bytes_max,
                ..CommitLogOptions::default()
            },
        )
        .expect("open");
        for i in 0..records {
            log.append(format!("payload {i}").into_bytes())
                .expect("append");
        }
        log.flush().expect("flush");
        log
    }

    /// Follows the log to its end in reads of `max_bytes`, checking that the
    /// pieces join and that their images decode to the records written.
    fn follow(log: &CommitLog, from: TxOffset, max_bytes: usize) -> Vec<(TxOffset, Vec<u8>)> {
        let mut position = LogPosition::at(from);
        let mut seen = Vec::new();
        while let Some(piece) = log.read_durable(position, max_bytes).expect("read") {
            assert_eq!(piece.first, position.next(), "pieces join");
            let image = piece.segment_image();
            let last = decode_segment_image(&image, piece.first, |offset, payload| {
                seen.push((offset, payload.to_vec()));
            })
            .expect("image decodes");
            assert_eq!(last, piece.last);
            position = piece.resume;
        }
        seen
    }

    #[test]
    fn following_the_log_yields_every_record_once() {
        // Small segments, so pieces cross segment boundaries.
        let log = log_with(200, 400);
        assert!(log.segments().len() > 5, "several segments");
        for max_bytes in [1, 100, 1 << 20] {
            let seen = follow(&log, TxOffset(0), max_bytes);
            let expected: Vec<_> = (0..200u64)
                .map(|i| (TxOffset(i), format!("payload {i}").into_bytes()))
                .collect();
            assert_eq!(seen, expected, "max_bytes {max_bytes}");
        }
        // Starting mid-segment without a hint scans to the offset.
        let seen = follow(&log, TxOffset(137), 64);
        assert_eq!(seen.first().map(|r| r.0), Some(TxOffset(137)));
        assert_eq!(seen.len(), 63);
    }

    #[test]
    fn nothing_beyond_the_durable_end() {
        let log = log_with(3, 1 << 20);
        assert_eq!(
            log.read_durable(LogPosition::at(TxOffset(3)), 10)
                .expect("read"),
            None
        );
        let piece = log
            .read_durable(LogPosition::at(TxOffset(0)), 1 << 20)
            .expect("read")
            .expect("records");
        assert_eq!((piece.first, piece.last), (TxOffset(0), TxOffset(2)));
        log.append(b"more".to_vec()).expect("append");
        log.flush().expect("flush");
        let next = log
            .read_durable(piece.resume, 1 << 20)
            .expect("read")
            .expect("new record");
        assert_eq!((next.first, next.last), (TxOffset(3), TxOffset(3)));
    }

    #[test]
    fn damaged_images_are_refused() {
        let log = log_with(5, 1 << 20);
        let piece = log
            .read_durable(LogPosition::at(TxOffset(0)), 1 << 20)
            .expect("read")
            .expect("records");
        let image = piece.segment_image();
        // Truncated by any amount inside the records.
        for cut in [image.len() - 1, image.len() - 9, HEADER_LEN + 3] {
            assert!(matches!(
                decode_segment_image(&image[..cut], TxOffset(0), |_, _| {}),
                Err(ImageError::Corrupt { .. })
            ));
        }
        // Any flipped bit.
        for byte in (0..image.len()).step_by(7) {
            let mut bad = image.clone();
            bad[byte] ^= 0x10;
            assert!(
                decode_segment_image(&bad, TxOffset(0), |_, _| {}).is_err(),
                "flip at {byte} detected"
            );
        }
        // Named at another offset, or empty.
        assert!(matches!(
            decode_segment_image(&image, TxOffset(1), |_, _| {}),
            Err(ImageError::BadHeader { .. })
        ));
        assert!(matches!(
            decode_segment_image(&image[..HEADER_LEN], TxOffset(0), |_, _| {}),
            Err(ImageError::Empty { .. })
        ));
    }
}
