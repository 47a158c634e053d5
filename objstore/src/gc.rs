//! Garbage collection of one database's objects: what no retained restore
//! point needs goes.
//!
//! Owns: [`Retention`] (a window of point-in-time history) and
//! [`DatabaseStore::collect_garbage`]. The window's *floor* is the newest
//! snapshot of the history taken before the window began (every point
//! after it can be restored from it and the log); kept are the snapshots
//! of the history at or after the floor, the parts they reference, and the
//! log pieces the replay plan from the floor needs. Deleted are older
//! snapshots and pieces, snapshots outside the history (a deposed holder's),
//! pieces outside every generation's window, and unreferenced parts.
//! Does not own: `head`, the database's files (`files/`), or deciding when
//! to run.
//!
//! Races: the listing is taken before `head` is read, so a piece of a
//! generation that began meanwhile is never mistaken for one no reader
//! follows; and nothing younger than the grace period is deleted, so the
//! parts of a snapshot being written (uploaded before its manifest) and a
//! holder's newest piece survive. Manifests go before pieces and parts, so
//! a crash halfway leaves every remaining snapshot whole.

use std::collections::HashSet;
use std::time::Duration;

use durable::snapshot::Manifest;
use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::ObjectMeta;

use crate::layout::{replay_plan, snapshot_in_history, SnapshotRef};
use crate::recover::{store_error, DatabaseStore, RecoverError};

/// How much point-in-time history a database keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Every transaction committed within this window before now stays
    /// restorable (and the snapshot before the window starts, from which
    /// they replay).
    pub window: Duration,
    /// Objects younger than this are never deleted (writes in flight).
    pub grace: Duration,
}

/// What a collection removed and kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    /// The snapshot every kept restore point replays from (`None`: the
    /// history's start).
    pub floor: Option<SnapshotRef>,
    pub manifests_deleted: usize,
    pub pieces_deleted: usize,
    pub parts_deleted: usize,
    /// Objects kept only because they are younger than the grace period.
    pub spared_young: usize,
}

impl DatabaseStore {
    /// Deletes the objects no restore point within `retention` needs (see
    /// the module documentation); the window ends at `now_micros` (the
    /// clock snapshots' times come from), the grace period at this
    /// machine's clock.
    pub async fn collect_garbage(
        &self,
        retention: Retention,
        now_micros: i64,
    ) -> Result<Collected, RecoverError> {
        let prefix = self.db.prefix();
        let listed: Vec<ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| store_error(&prefix, e))?;
        // After the listing: see "Races" above.
        let Some((head, _)) = self.heads.read(&self.db).await? else {
            return Ok(Collected::default());
        };
        let generations = head.windows();
        let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        let window_start = now_micros.saturating_sub(micros(retention.window));
        // The grace period is about writes in flight, so it is measured on
        // this machine's clock against the store's modification times.
        let wall_micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        let young = |meta: &ObjectMeta| {
            let modified = meta.last_modified.timestamp_micros();
            modified > wall_micros.saturating_sub(micros(retention.grace))
        };

        // The history's snapshots, newest first, with their manifests.
        let mut history: Vec<(SnapshotRef, Manifest)> = Vec::new();
        for meta in &listed {
            let Some(snapshot) = self.db.parse_snapshot_path(&meta.location) else {
                continue;
            };
            if !snapshot_in_history(&generations, snapshot) {
                continue;
            }
            // A manifest that does not decode restores nothing; it is
            // neither kept nor a reason to keep anything.
            if let Some(bytes) = self.get(&meta.location).await? {
                if let Ok(manifest) = Manifest::decode(&bytes) {
                    history.push((snapshot, manifest));
                }
            }
        }
        history.sort_by_key(|(s, _)| std::cmp::Reverse(s.offset));
        let floor = history
            .iter()
            .find(|(_, m)| m.created_at_micros <= window_start)
            .map(|(s, _)| *s);
        let kept_snapshots: Vec<&(SnapshotRef, Manifest)> = history
            .iter()
            .filter(|(s, _)| floor.is_none_or(|f| s.offset >= f.offset))
            .collect();
        let kept_manifests: HashSet<SnapshotRef> = kept_snapshots.iter().map(|(s, _)| *s).collect();
        let kept_parts: HashSet<String> = kept_snapshots
            .iter()
            .flat_map(|(_, m)| m.parts.iter().map(|p| p.hash.to_hex()))
            .collect();
        let pieces: Vec<_> = listed
            .iter()
            .filter_map(|m| self.db.parse_segment_path(&m.location))
            .collect();
        let from = floor.map_or(0, |f| f.offset + 1);
        let kept_pieces: HashSet<_> = replay_plan(&generations, &pieces, from)
            .into_iter()
            .map(|p| p.segment)
            .collect();

        let mut collected = Collected {
            floor,
            ..Collected::default()
        };
        let objects_prefix = format!("{}/", self.db.objects_prefix().as_ref());
        let mut doomed: [Vec<&ObjectPath>; 3] = Default::default();
        for meta in &listed {
            let path = &meta.location;
            let (class, keep) = if let Some(snapshot) = self.db.parse_snapshot_path(path) {
                (0, kept_manifests.contains(&snapshot))
            } else if let Some(piece) = self.db.parse_segment_path(path) {
                (1, kept_pieces.contains(&piece))
            } else if let Some(hash) = path.as_ref().strip_prefix(&objects_prefix) {
                (2, kept_parts.contains(hash))
            } else {
                continue; // head, files, anything else: not ours
            };
            if keep {
                continue;
            }
            if young(meta) {
                collected.spared_young += 1;
                continue;
            }
            doomed[class].push(path);
        }
        // Manifests first: a snapshot never outlives its parts.
        for (class, paths) in doomed.iter().enumerate() {
            for path in paths {
                match self.store.delete(path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(store_error(path, e)),
                }
                match class {
                    0 => collected.manifests_deleted += 1,
                    1 => collected.pieces_deleted += 1,
                    _ => collected.parts_deleted += 1,
                }
            }
        }
        Ok(collected)
    }
}
