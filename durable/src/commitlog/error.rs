//! Error types of the commit log, one enum per operation family.
//!
//! Owns: [`OpenError`], [`AppendError`], [`DurabilityError`], [`ReplayError`],
//! [`RemoveError`] and [`FailureCause`], the clonable description of the
//! sticky failure. Does not own: the decisions that raise them.
//!
//! Invariants: every variant names what it is about (segment, byte position,
//! offset); there is no catch-all variant. Payloads handed back in
//! [`AppendError`] are never printed, only their length.

use super::format::{HeaderFault, RecordFault};
use orrery_api::TxOffset;
use std::fmt;
use std::io;

/// Failure to open (scan, verify, repair the tail of) a commit log.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("listing segments failed")]
    List { source: io::Error },
    #[error("reading segment {segment} failed")]
    Read {
        segment: TxOffset,
        source: io::Error,
    },
    #[error("segment {segment}: corrupt header at byte 0: {fault}")]
    BadHeader {
        segment: TxOffset,
        fault: HeaderFault,
    },
    #[error(
        "segment {segment}: corrupt record at byte {position}, expected offset {expected}: {fault}"
    )]
    Corrupt {
        segment: TxOffset,
        position: u64,
        expected: TxOffset,
        fault: RecordFault,
    },
    #[error(
        "segment {segment} does not start where the previous one ends (expected offset {expected})"
    )]
    Gap {
        segment: TxOffset,
        expected: TxOffset,
    },
    #[error("sealed segment {segment} holds no record")]
    EmptySealedSegment { segment: TxOffset },
    #[error("the log ends before offset {next} but must continue at start offset {start_offset}")]
    EndsBeforeStart {
        next: TxOffset,
        start_offset: TxOffset,
    },
    #[error("preparing segment {segment} for appending (truncate to {valid_len} bytes) failed")]
    OpenAppend {
        segment: TxOffset,
        valid_len: u64,
        source: io::Error,
    },
    #[error("creating segment {segment} failed")]
    Create {
        segment: TxOffset,
        source: io::Error,
    },
    #[error("writing the header of segment {segment} failed")]
    WriteHeader {
        segment: TxOffset,
        source: io::Error,
    },
    #[error("starting the group-commit thread failed")]
    Spawn { source: io::Error },
}

/// What the log thread was doing when the store failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedOp {
    Append,
    Sync,
    Create,
}

/// Why the log is in its sticky failed state. Clonable so every waiter and
/// every later caller gets its own copy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("commit log failed: {op:?} on segment {segment} ({kind:?}: {message}); offsets from {first_lost} are not durable")]
pub struct FailureCause {
    pub op: FailedOp,
    pub segment: TxOffset,
    /// The lowest offset that was not made durable.
    pub first_lost: TxOffset,
    pub kind: io::ErrorKind,
    pub message: String,
}

impl FailureCause {
    pub(crate) fn new(
        op: FailedOp,
        segment: TxOffset,
        first_lost: TxOffset,
        err: &io::Error,
    ) -> FailureCause {
        FailureCause {
            op,
            segment,
            first_lost,
            kind: err.kind(),
            message: err.to_string(),
        }
    }
}

/// A payload handed back to the caller of a refused append. Its `Debug`
/// shows only the length, so errors stay printable.
pub struct Payload(pub Vec<u8>);

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.0.len())
    }
}

/// An append was refused; the payload comes back unchanged.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("append refused: {cause}")]
    Failed {
        payload: Payload,
        cause: FailureCause,
    },
    #[error("append refused: payload of {len} bytes exceeds the record limit")]
    TooLarge { payload: Payload, len: u64 },
    #[error("append refused: the group-commit thread has stopped")]
    Closed { payload: Payload },
}

impl AppendError {
    /// Takes the refused payload back.
    pub fn into_payload(self) -> Vec<u8> {
        match self {
            AppendError::Failed { payload, .. }
            | AppendError::TooLarge { payload, .. }
            | AppendError::Closed { payload } => payload.0,
        }
    }
}

/// An offset did not (and will not) become durable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurabilityError {
    #[error("offset {offset} will never be durable: {cause}")]
    Failed {
        offset: TxOffset,
        cause: FailureCause,
    },
    #[error("offset {offset} was never appended (next offset is {next})")]
    NotAppended { offset: TxOffset, next: TxOffset },
    #[error("offset {offset} is not durable and the group-commit thread has stopped")]
    Closed { offset: TxOffset },
    /// Durable on the host, but not yet where the database's durability
    /// mode also requires it (the object store); it may still get there.
    #[error("offset {offset} is durable on this host but not yet in the object store: {reason}")]
    NotYetElsewhere { offset: TxOffset, reason: String },
}

/// Failure while replaying records.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError<E> {
    #[error("replay from {from}: the log only retains offsets from {first_retained}")]
    NotRetained {
        from: TxOffset,
        first_retained: TxOffset,
    },
    #[error("reading segment {segment} failed")]
    Read {
        segment: TxOffset,
        source: io::Error,
    },
    #[error("segment {segment}: corrupt header at byte 0: {fault}")]
    BadHeader {
        segment: TxOffset,
        fault: HeaderFault,
    },
    #[error(
        "segment {segment}: corrupt record at byte {position}, expected offset {expected}: {fault}"
    )]
    Corrupt {
        segment: TxOffset,
        position: u64,
        expected: TxOffset,
        fault: RecordFault,
    },
    #[error("replay callback failed at offset {offset}")]
    Callback { offset: TxOffset, error: E },
}

/// Failure while deleting old segments.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("removing segment {segment} failed")]
    Io {
        segment: TxOffset,
        source: io::Error,
    },
}
