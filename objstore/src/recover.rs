//! What the object store holds of one database, and opening it from there:
//! [`DatabaseStore::inspect`] lists `head`, the log pieces and the snapshots;
//! [`DatabaseStore::hydrate`] writes a local copy (the `DbStorage::dir`
//! layout: `log/` and `snapshots/`) from the newest snapshot that verifies
//! and the log after it, so the engine opens it as if it had always been
//! local.
//!
//! Recovery never returns wrong data: a snapshot is used only if its
//! generation's window holds its offset (a deposed holder's snapshot past its
//! successor's start is not history) and its manifest and every part verify;
//! a damaged one is skipped for an older one and a longer replay. Log pieces
//! are decoded strictly and replayed only inside their generation's window;
//! records a later piece repeats are skipped; a damaged piece or a gap is an
//! error naming the offset, never a silently shorter history. A store that
//! fails (rather than answering "not found") stops recovery with that error:
//! falling back past a snapshot because of an outage would discard progress.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use durable::commitlog::{
    decode_segment_image, CommitLog, CommitLogOptions, FileSegmentStore, ImageError,
};
use durable::snapshot::{manifest_key, object_key, BlobStore, DirBlobStore, Manifest, ObjectHash};
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use orrery_api::TxOffset;

use crate::head::{Head, HeadError, HeadVersion, Heads};
use crate::layout::{
    replay_plan, snapshot_in_history, DatabaseKey, Generation, PlannedSegment, SegmentRef,
    SnapshotRef,
};

/// Log pieces fetched at once while hydrating.
const FETCH_CONCURRENCY: usize = 8;

/// Why the store's copy of a database could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error("object store failed on {key}: {reason}")]
    Store { key: String, reason: String },
    /// A log piece that `head`'s history needs is damaged: what follows it
    /// cannot be replayed, and recovery refuses rather than lose it quietly.
    #[error(
        "log piece {key} is damaged ({reason}); the log cannot be replayed past offset {offset}"
    )]
    DamagedLog {
        key: String,
        offset: u64,
        reason: String,
    },
    /// The log does not continue from where the snapshot (or the start) left off.
    #[error("the log in the object store has a gap: offset {needed} is missing (next piece starts at {found:?})")]
    Gap { needed: u64, found: Option<u64> },
    #[error("local copy: {0}")]
    Local(String),
    /// The restore point is not in the history the store holds.
    #[error("{0}")]
    NoSuchPoint(String),
}

/// Reads a commit-log payload's commit time (the engine's format, not this
/// crate's), microseconds since the Unix epoch.
pub type CommitTime = fn(&[u8]) -> Option<i64>;

/// Where a restore puts a database.
#[derive(Clone, Copy, Debug)]
pub enum RestorePoint {
    /// Everything the store holds.
    Latest,
    /// Right after the transaction at this offset.
    Offset(u64),
    /// Exactly this snapshot (no log after it).
    Snapshot(SnapshotRef),
    /// Right after the last transaction committed at or before `micros`
    /// (since the Unix epoch), as `commit_micros` reads a payload's commit
    /// time (`None`: a record that carries none, taken as earlier).
    Time {
        micros: i64,
        commit_micros: CommitTime,
    },
}

/// The store's copy of a database, as listed.
#[derive(Clone, Debug)]
pub struct Remote {
    pub head: Option<(Head, HeadVersion)>,
    pub segments: Vec<SegmentRef>,
    pub snapshots: Vec<SnapshotRef>,
}

impl Remote {
    /// `head`'s generations (empty without a head).
    pub fn generations(&self) -> Vec<Generation> {
        self.head
            .as_ref()
            .map(|(head, _)| head.windows())
            .unwrap_or_default()
    }

    /// The snapshots of the history `head` follows, newest first.
    pub fn history_snapshots(&self) -> Vec<SnapshotRef> {
        let generations = self.generations();
        let mut out: Vec<SnapshotRef> = self
            .snapshots
            .iter()
            .copied()
            .filter(|s| snapshot_in_history(&generations, *s))
            .collect();
        out.sort_by(|a, b| {
            b.offset
                .cmp(&a.offset)
                .then(b.generation.cmp(&a.generation))
        });
        out
    }
}

/// What [`DatabaseStore::hydrate`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hydrated {
    /// The snapshot the copy starts from.
    pub snapshot: Option<SnapshotRef>,
    /// Newer snapshots that did not verify, newest first, with the reason.
    pub skipped: Vec<(SnapshotRef, String)>,
    pub log_pieces: usize,
    pub records: u64,
    pub bytes: u64,
    /// The offset the database's next transaction gets.
    pub next_offset: u64,
}

/// One database's objects in a store.
#[derive(Clone, Debug)]
pub struct DatabaseStore {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) heads: Heads,
    pub(crate) db: DatabaseKey,
}

impl DatabaseStore {
    pub fn new(store: Arc<dyn ObjectStore>, heads: Heads, db: DatabaseKey) -> DatabaseStore {
        DatabaseStore { store, heads, db }
    }

    pub fn key(&self) -> &DatabaseKey {
        &self.db
    }

    /// Reads `head` and lists the database's log pieces and snapshots.
    pub async fn inspect(&self) -> Result<Remote, RecoverError> {
        let head = self.heads.read(&self.db).await?;
        let listed = self.list(&self.db.prefix()).await?;
        let mut segments = Vec::new();
        let mut snapshots = Vec::new();
        for path in &listed {
            if let Some(segment) = self.db.parse_segment_path(path) {
                segments.push(segment);
            } else if let Some(snapshot) = self.db.parse_snapshot_path(path) {
                snapshots.push(snapshot);
            }
        }
        segments.sort();
        snapshots.sort();
        Ok(Remote {
            head,
            segments,
            snapshots,
        })
    }

    /// The offset after the last record the store's history holds (0 for
    /// none): the newest history snapshot's, or the end of the last log
    /// piece the replay plan reaches, whichever is later. Reads only the
    /// last piece; a gap or damage before it is found by [`Self::hydrate`].
    pub async fn log_end(&self, remote: &Remote) -> Result<u64, RecoverError> {
        let after_snapshot = remote
            .history_snapshots()
            .first()
            .map_or(0, |s| s.offset + 1);
        let plan = replay_plan(&remote.generations(), &remote.segments, 0);
        let Some(last) = plan.last() else {
            return Ok(after_snapshot);
        };
        let key = self.db.segment_path(last.segment);
        let bytes = self.get(&key).await?.ok_or(RecoverError::Gap {
            needed: last.segment.first_offset,
            found: None,
        })?;
        let mut end = last.segment.first_offset;
        decode_segment_image(&bytes, TxOffset(last.segment.first_offset), |offset, _| {
            if last.replay_before.is_none_or(|before| offset.0 < before) {
                end = offset.0 + 1;
            }
        })
        .map_err(|e| damaged(&key, last.segment.first_offset, &e))?;
        Ok(end.max(after_snapshot))
    }

    /// Writes a local copy of the database into `dir` (which must hold no
    /// log yet): the newest snapshot of the history that verifies, then every
    /// record after it, in the commit log's own format.
    pub async fn hydrate(&self, dir: &Path) -> Result<Hydrated, RecoverError> {
        self.hydrate_to(dir, RestorePoint::Latest).await
    }

    /// [`DatabaseStore::hydrate`] as of `point`: the state right after one
    /// transaction of the history, exactly (a restore).
    pub async fn hydrate_to(
        &self,
        dir: &Path,
        point: RestorePoint,
    ) -> Result<Hydrated, RecoverError> {
        let remote = self.inspect().await?;
        let mut report = Hydrated::default();
        let mut chosen = None;
        let not_after = match point {
            RestorePoint::Time {
                micros,
                commit_micros,
            } => Some((micros, commit_micros)),
            _ => None,
        };
        let (until, candidates) = match point {
            RestorePoint::Latest | RestorePoint::Time { .. } => (None, remote.history_snapshots()),
            RestorePoint::Offset(offset) => (
                Some(offset),
                remote
                    .history_snapshots()
                    .into_iter()
                    .filter(|s| s.offset <= offset)
                    .collect(),
            ),
            RestorePoint::Snapshot(wanted) => {
                if !remote.history_snapshots().contains(&wanted) {
                    return Err(RecoverError::NoSuchPoint(format!(
                        "no snapshot {}-{} in the history of this database",
                        wanted.generation, wanted.offset
                    )));
                }
                (Some(wanted.offset), vec![wanted])
            }
        };
        for snapshot in candidates {
            match self.fetch_snapshot(snapshot).await? {
                // Taken after the time: it holds transactions from after it.
                Ok((_, manifest, _))
                    if not_after.is_some_and(|(micros, _)| manifest.created_at_micros > micros) => {
                }
                Ok(found) => {
                    chosen = Some(found);
                    report.snapshot = Some(snapshot);
                    break;
                }
                Err(reason) => report.skipped.push((snapshot, reason)),
            }
        }
        let from = report.snapshot.map_or(0, |s| s.offset + 1);
        let local_snapshots = DirBlobStore::open(dir.join("snapshots")).map_err(local)?;
        if let Some((manifest_bytes, manifest, objects)) = chosen {
            // Objects first, the manifest last: the local store's own rule.
            for (hash, bytes) in objects {
                local_snapshots
                    .put(&object_key(&hash), &bytes)
                    .map_err(local)?;
            }
            local_snapshots
                .put(&manifest_key(manifest.offset), &manifest_bytes)
                .map_err(local)?;
        }
        let segments = Arc::new(FileSegmentStore::open(dir.join("log")).map_err(local)?);
        let log = CommitLog::open(
            segments,
            CommitLogOptions {
                start_offset: TxOffset(from),
                ..CommitLogOptions::default()
            },
        )
        .map_err(local)?;
        if log.open_report().last_record.is_some() {
            return Err(RecoverError::Local(format!(
                "{} already holds a log; hydrate only into an empty copy",
                dir.display()
            )));
        }
        let plan = replay_plan(&remote.generations(), &remote.segments, from);
        let plan: Vec<PlannedSegment> = match until {
            // Nothing past the restore point is fetched; the window's end
            // stops replay right after it.
            Some(until) => plan
                .into_iter()
                .filter(|p| p.segment.first_offset <= until)
                .map(|p| PlannedSegment {
                    replay_before: Some(p.replay_before.map_or(until + 1, |b| b.min(until + 1))),
                    ..p
                })
                .collect(),
            None => plan,
        };
        let mut next = from;
        let mut pieces = futures_util::stream::iter(plan.iter().map(|planned| {
            let key = self.db.segment_path(planned.segment);
            async move { (planned, key.clone(), self.get(&key).await) }
        }))
        .buffered(FETCH_CONCURRENCY);
        while let Some((planned, key, fetched)) = pieces.next().await {
            let bytes = fetched?.ok_or(RecoverError::Gap {
                needed: next,
                found: Some(planned.segment.first_offset),
            })?;
            if planned.segment.first_offset > next {
                return Err(RecoverError::Gap {
                    needed: next,
                    found: Some(planned.segment.first_offset),
                });
            }
            report.log_pieces += 1;
            report.bytes += bytes.len() as u64;
            let (after, ended) = replay_piece(
                &log,
                planned,
                &key,
                &bytes,
                next,
                not_after,
                &mut report.records,
            )?;
            next = after;
            if ended {
                break;
            }
        }
        log.flush().map_err(local)?;
        drop(log);
        if let Some(until) = until {
            if next != until + 1 {
                return Err(RecoverError::NoSuchPoint(format!(
                    "the history reaches offset {} only, not {until}",
                    next.saturating_sub(1)
                )));
            }
        }
        report.next_offset = next;
        Ok(report)
    }

    /// The snapshot's manifest and verified parts; `Ok(Err(reason))` when it
    /// is damaged or incomplete, `Err` when the store failed.
    #[allow(clippy::type_complexity)]
    async fn fetch_snapshot(
        &self,
        snapshot: SnapshotRef,
    ) -> Result<Result<(Vec<u8>, Manifest, Vec<(ObjectHash, Vec<u8>)>), String>, RecoverError> {
        let key = self.db.snapshot_path(snapshot);
        let Some(manifest_bytes) = self.get(&key).await? else {
            return Ok(Err("the manifest is gone".into()));
        };
        let manifest = match Manifest::decode(&manifest_bytes) {
            Ok(m) if m.offset.0 == snapshot.offset => m,
            Ok(m) => {
                return Ok(Err(format!(
                    "the manifest is for offset {}, not {}",
                    m.offset.0, snapshot.offset
                )))
            }
            Err(e) => return Ok(Err(format!("manifest: {e}"))),
        };
        let wanted: BTreeSet<(ObjectHash, u64)> =
            manifest.parts.iter().map(|p| (p.hash, p.len)).collect();
        let fetched: Vec<_> = futures_util::stream::iter(wanted.into_iter().map(|(hash, len)| {
            let key = self.db.object_path(&hash.to_hex());
            async move { (hash, len, self.get(&key).await) }
        }))
        .buffered(FETCH_CONCURRENCY)
        .collect()
        .await;
        let mut objects = Vec::with_capacity(fetched.len());
        for (hash, len, bytes) in fetched {
            let Some(bytes) = bytes? else {
                return Ok(Err(format!("part object {hash} is missing")));
            };
            if bytes.len() as u64 != len || ObjectHash::of(&bytes) != hash {
                return Ok(Err(format!(
                    "part object {hash} does not match its hash ({} bytes, {len} expected)",
                    bytes.len()
                )));
            }
            objects.push((hash, bytes));
        }
        Ok(Ok((manifest_bytes, manifest, objects)))
    }

    /// The names of the database's other files in the store
    /// ([`crate::ship::LocalCopy::files`]).
    pub async fn files(&self) -> Result<Vec<String>, RecoverError> {
        let prefix = self.db.files_prefix();
        let listed = self.list(&prefix).await?;
        let strip = format!("{}/", prefix.as_ref());
        Ok(listed
            .iter()
            .filter_map(|p| p.as_ref().strip_prefix(&strip).map(str::to_owned))
            .collect())
    }

    /// One of the database's other files, `None` if the store has none by that name.
    pub async fn file(&self, name: &str) -> Result<Option<Vec<u8>>, RecoverError> {
        self.get(&self.db.file_path(name)).await
    }

    /// Removes one of the database's other files from the store.
    pub async fn remove_file(&self, name: &str) -> Result<(), RecoverError> {
        let key = self.db.file_path(name);
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(&key, e)),
        }
    }

    /// The bytes of any object of this database (e.g. a snapshot manifest
    /// at [`DatabaseKey::snapshot_path`]), `None` if it does not exist.
    pub async fn object(&self, key: &ObjectPath) -> Result<Option<Vec<u8>>, RecoverError> {
        self.get(key).await
    }

    /// Every key under `prefix`.
    async fn list(&self, prefix: &ObjectPath) -> Result<Vec<ObjectPath>, RecoverError> {
        self.store
            .list(Some(prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| store_error(prefix, e))
    }

    /// An object's bytes, `None` if it does not exist.
    pub(crate) async fn get(&self, key: &ObjectPath) -> Result<Option<Vec<u8>>, RecoverError> {
        match self.store.get(key).await {
            Ok(got) => Ok(Some(
                got.bytes().await.map_err(|e| store_error(key, e))?.to_vec(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(key, e)),
        }
    }
}

/// Appends the records of one piece that continue the log at `next` and lie
/// in the piece's generation window; returns the new `next`.
/// Also returns whether a record committed after `not_after`'s time was
/// met (replay ends there).
fn replay_piece(
    log: &CommitLog,
    planned: &PlannedSegment,
    key: &ObjectPath,
    bytes: &[u8],
    mut next: u64,
    not_after: Option<(i64, CommitTime)>,
    records: &mut u64,
) -> Result<(u64, bool), RecoverError> {
    let mut appended = Ok(());
    let mut ended = false;
    decode_segment_image(
        bytes,
        TxOffset(planned.segment.first_offset),
        |offset, payload| {
            let in_window = planned.replay_before.is_none_or(|before| offset.0 < before);
            if offset.0 != next || !in_window || appended.is_err() || ended {
                return;
            }
            if let Some((micros, commit_micros)) = not_after {
                if commit_micros(payload).is_some_and(|t| t > micros) {
                    ended = true;
                    return;
                }
            }
            appended = log.append(payload.to_vec()).map(|_| ()).map_err(local);
            next += 1;
            *records += 1;
        },
    )
    .map_err(|e| damaged(key, next, &e))?;
    appended?;
    Ok((next, ended))
}

fn damaged(key: &ObjectPath, offset: u64, e: &ImageError) -> RecoverError {
    RecoverError::DamagedLog {
        key: key.to_string(),
        offset,
        reason: e.to_string(),
    }
}

pub(crate) fn store_error(key: &ObjectPath, e: impl std::fmt::Display) -> RecoverError {
    RecoverError::Store {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

fn local(e: impl std::fmt::Display) -> RecoverError {
    RecoverError::Local(e.to_string())
}
