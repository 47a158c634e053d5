//! The durable media of one database: what survives a crash, as opaque bytes.
//!
//! Owns: the segmented, checksummed commit log of opaque records with group
//! commit and torn-tail recovery ([`commitlog`], docs/design/commitlog.md),
//! content-addressed snapshots of opaque parts with checksummed manifests and
//! retention ([`snapshot`], docs/design/snapshot.md), the I/O seams both go
//! through (`SegmentStore`, `BlobStore`: local files, memory, fault
//! injection), durable directory creation and the workspace's one atomic
//! file write ([`fs`]), and the clock snapshots read ([`clock`]).
//! Does not own: what a record or a part means (tables, transactions and
//! their encoding live in `storage`), or when to snapshot.
//!
//! Invariant: an offset reported durable survives any crash; a listed
//! snapshot manifest that verifies describes a complete snapshot.

pub mod clock;
pub mod commitlog;
pub mod fs;
pub mod snapshot;
