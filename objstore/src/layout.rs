//! Where a database's commit log and snapshots live in the object store,
//! and which segments a recovery replays (platform.md, "Object-store
//! layout"; issue 15).
//!
//! Owns: the keys `db/<id>/head`, `db/<id>/gen-<g>/log/<first-offset>.seg`
//! and `db/<id>/gen-<g>/snapshots/<offset>/` (numbers zero-padded to 20
//! digits, so listings sort by number), parsing segment keys back, and
//! [`replay_plan`], the fencing rule of recovery: a segment of generation g
//! counts only for offsets from g's start up to the next generation's
//! start, so what a deposed holder wrote after its successor began is never
//! replayed.
//! Does not own: reading or writing objects, `head`'s format and its
//! conditional updates, or checking records while replaying (the replayer
//! stops at the first offset that does not follow the one before).

use object_store::path::Path as ObjectPath;

/// Longest database id accepted in a key.
pub const DATABASE_ID_BYTES_MAX: usize = 64;

/// A database's id as it appears in object keys: 1 to 64 of `a-z`, `0-9`,
/// `_` and `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DatabaseKey(String);

impl DatabaseKey {
    /// `id`, or `None` if it is not a valid key component.
    pub fn new(id: &str) -> Option<DatabaseKey> {
        let ok = !id.is_empty()
            && id.len() <= DATABASE_ID_BYTES_MAX
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        ok.then(|| DatabaseKey(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `db/<id>/head`.
    pub fn head_path(&self) -> ObjectPath {
        ObjectPath::from(format!("db/{}/head", self.0))
    }

    /// `db/<id>/gen-<g>/log/`, the prefix of generation `g`'s segments.
    pub fn log_prefix(&self, generation: u64) -> ObjectPath {
        ObjectPath::from(format!("db/{}/gen-{generation:020}/log", self.0))
    }

    /// `db/<id>/gen-<g>/log/<first-offset>.seg`.
    pub fn segment_path(&self, segment: SegmentRef) -> ObjectPath {
        ObjectPath::from(format!(
            "db/{}/gen-{:020}/log/{:020}.seg",
            self.0, segment.generation, segment.first_offset
        ))
    }

    /// `db/<id>/`, everything of this database.
    pub fn prefix(&self) -> ObjectPath {
        ObjectPath::from(format!("db/{}", self.0))
    }

    /// `db/<id>/gen-<g>/snapshots/`, the prefix of generation `g`'s snapshot manifests.
    pub fn snapshots_prefix(&self, generation: u64) -> ObjectPath {
        ObjectPath::from(format!("db/{}/gen-{generation:020}/snapshots", self.0))
    }

    /// `db/<id>/gen-<g>/snapshots/<offset>.manifest`: a snapshot taken by
    /// generation `g` at `offset` (docs/design/snapshot.md's manifest).
    pub fn snapshot_path(&self, snapshot: SnapshotRef) -> ObjectPath {
        ObjectPath::from(format!(
            "db/{}/gen-{:020}/snapshots/{:020}.manifest",
            self.0, snapshot.generation, snapshot.offset
        ))
    }

    /// `db/<id>/objects/`, the prefix of snapshot parts.
    pub fn objects_prefix(&self) -> ObjectPath {
        ObjectPath::from(format!("db/{}/objects", self.0))
    }

    /// `db/<id>/objects/<blake3-hex>`: one snapshot part, named by the hash
    /// of its bytes and shared by every snapshot (of any generation) holding it.
    pub fn object_path(&self, hash_hex: &str) -> ObjectPath {
        ObjectPath::from(format!("db/{}/objects/{hash_hex}", self.0))
    }

    /// `db/<id>/files/`, the prefix of the host's own files of the database.
    pub fn files_prefix(&self) -> ObjectPath {
        ObjectPath::from(format!("db/{}/files", self.0))
    }

    /// `db/<id>/files/<name>`: a file of the host's directory of the database
    /// (its registry metadata and module files), copied as it is. `name` is
    /// a relative, `/`-separated path.
    pub fn file_path(&self, name: &str) -> ObjectPath {
        ObjectPath::from(format!("db/{}/files/{name}", self.0))
    }

    /// The snapshot a key of this database names, or `None` for any other key.
    pub fn parse_snapshot_path(&self, path: &ObjectPath) -> Option<SnapshotRef> {
        let rest = path.as_ref().strip_prefix(&format!("db/{}/gen-", self.0))?;
        let (generation, rest) = rest.split_once("/snapshots/")?;
        let offset = rest.strip_suffix(".manifest")?;
        Some(SnapshotRef {
            generation: parse_padded(generation)?,
            offset: parse_padded(offset)?,
        })
    }

    /// The segment a key of this database names, or `None` for any other key.
    pub fn parse_segment_path(&self, path: &ObjectPath) -> Option<SegmentRef> {
        let rest = path.as_ref().strip_prefix(&format!("db/{}/gen-", self.0))?;
        let (generation, rest) = rest.split_once("/log/")?;
        let first = rest.strip_suffix(".seg")?;
        Some(SegmentRef {
            generation: parse_padded(generation)?,
            first_offset: parse_padded(first)?,
        })
    }
}

/// A 20-digit zero-padded number, as the keys write them (nothing else).
fn parse_padded(text: &str) -> Option<u64> {
    if text.len() != 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// One generation of a database's lease, as `head` lists it: from
/// `start_offset` on, the log is this generation's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generation {
    pub generation: u64,
    pub start_offset: u64,
}

/// A stored segment: its generation and the offset of its first record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentRef {
    pub generation: u64,
    pub first_offset: u64,
}

/// A stored snapshot: the generation that took it and its offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotRef {
    pub generation: u64,
    pub offset: u64,
}

/// Whether a snapshot belongs to the history `head` follows: its offset lies
/// in its generation's window (a deposed holder's snapshot past its
/// successor's start holds transactions that history never had).
pub fn snapshot_in_history(generations: &[Generation], snapshot: SnapshotRef) -> bool {
    let mut windows: Vec<Generation> = generations.to_vec();
    windows.sort_by_key(|g| (g.generation, g.start_offset));
    windows.dedup_by_key(|g| g.generation);
    let Some(index) = windows
        .iter()
        .position(|g| g.generation == snapshot.generation)
    else {
        return false;
    };
    // A snapshot at `offset` holds the transactions up to and including it;
    // below its generation's start they are its predecessors' history.
    let end = windows.get(index + 1).map(|next| next.start_offset);
    end.is_none_or(|end| snapshot.offset < end)
}

/// A segment to replay, and where its generation's window ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedSegment {
    pub segment: SegmentRef,
    /// Records at this offset or later belong to a later generation: the
    /// replayer stops reading this segment there. `None` for the newest
    /// generation.
    pub replay_before: Option<u64>,
}

/// The segments that hold offsets `from` and after, in replay order.
///
/// `generations` are `head`'s (any order; a generation listed twice counts
/// once, with its first start); `segments` are those found in the store
/// (any order, any generation). Segments of generations `head` does not
/// list, and segments that start outside their generation's window, are
/// ignored. The plan ends where the log provably has a gap: a window other
/// than the first that does not begin with a segment at its start, or a
/// first window with no segment at or before `from`. Gaps inside a window
/// are found by the replayer (record offsets must follow each other).
pub fn replay_plan(
    generations: &[Generation],
    segments: &[SegmentRef],
    from: u64,
) -> Vec<PlannedSegment> {
    let mut windows: Vec<Generation> = generations.to_vec();
    windows.sort_by_key(|g| (g.generation, g.start_offset));
    windows.dedup_by_key(|g| g.generation);
    // A later generation never starts before an earlier one: such a head
    // is corrupt from there on, and nothing after it is trusted.
    if let Some(bad) = windows
        .windows(2)
        .position(|pair| pair[1].start_offset < pair[0].start_offset)
    {
        windows.truncate(bad + 1);
    }
    let mut plan = Vec::new();
    let mut started = false;
    for (i, window) in windows.iter().enumerate() {
        let end = windows.get(i + 1).map(|next| next.start_offset);
        if end.is_some_and(|end| end <= from.max(window.start_offset)) {
            continue; // wholly before `from`, or empty
        }
        let mut own: Vec<u64> = segments
            .iter()
            .filter(|s| s.generation == window.generation)
            .map(|s| s.first_offset)
            .filter(|&first| first >= window.start_offset && end.is_none_or(|end| first < end))
            .collect();
        own.sort_unstable();
        own.dedup();
        let first_needed = if started {
            // Continuing from the previous window: it must begin at its start.
            if own.first() != Some(&window.start_offset) {
                return plan;
            }
            0
        } else {
            // The window holding `from`: the last segment starting at or
            // before it, then every later one.
            let wanted = from.max(window.start_offset);
            match own.iter().rposition(|&first| first <= wanted) {
                Some(index) => index,
                None => return plan,
            }
        };
        started = true;
        plan.extend(
            own[first_needed..]
                .iter()
                .map(|&first_offset| PlannedSegment {
                    segment: SegmentRef {
                        generation: window.generation,
                        first_offset,
                    },
                    replay_before: end,
                }),
        );
    }
    plan
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn seg(generation: u64, first_offset: u64) -> SegmentRef {
        SegmentRef {
            generation,
            first_offset,
        }
    }

    fn gen(generation: u64, start_offset: u64) -> Generation {
        Generation {
            generation,
            start_offset,
        }
    }

    #[test]
    fn keys_sort_by_number_and_parse_back() {
        let db = DatabaseKey::new("db_0123").unwrap();
        let path = db.segment_path(seg(3, 1_000));
        assert_eq!(
            path.as_ref(),
            "db/db_0123/gen-00000000000000000003/log/00000000000000001000.seg"
        );
        assert_eq!(db.parse_segment_path(&path), Some(seg(3, 1_000)));
        assert!(db.segment_path(seg(3, 999)).as_ref() < path.as_ref());
        let other = DatabaseKey::new("db_9").unwrap();
        assert_eq!(other.parse_segment_path(&path), None);
        for bad in ["db/db_0123/head", "db/db_0123/gen-3/log/1000.seg"] {
            assert_eq!(db.parse_segment_path(&ObjectPath::from(bad)), None, "{bad}");
        }
        assert_eq!(db.head_path().as_ref(), "db/db_0123/head");
        for bad in ["", "Db", "a/b", "a.b", &"x".repeat(65)] {
            assert!(DatabaseKey::new(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_deposed_holders_late_segments_are_cut_at_its_successors_start() {
        // Generation 1 wrote segments at 0 and 100; generation 2 began at
        // 150; the old holder went on writing a segment at 200 under
        // generation 1.
        let plan = replay_plan(
            &[gen(1, 0), gen(2, 150)],
            &[
                seg(1, 0),
                seg(1, 100),
                seg(1, 200),
                seg(2, 150),
                seg(2, 300),
            ],
            0,
        );
        assert_eq!(
            plan,
            [
                PlannedSegment {
                    segment: seg(1, 0),
                    replay_before: Some(150)
                },
                PlannedSegment {
                    segment: seg(1, 100),
                    replay_before: Some(150)
                },
                PlannedSegment {
                    segment: seg(2, 150),
                    replay_before: None
                },
                PlannedSegment {
                    segment: seg(2, 300),
                    replay_before: None
                },
            ]
        );
        // From a snapshot at 120: the segment holding 120, then the rest.
        let plan = replay_plan(
            &[gen(1, 0), gen(2, 150)],
            &[seg(1, 0), seg(1, 100), seg(2, 150)],
            121,
        );
        assert_eq!(plan[0].segment, seg(1, 100));
        assert_eq!(plan.len(), 2);
        // A generation head never listed (a holder whose grant lost) is ignored.
        let plan = replay_plan(&[gen(1, 0)], &[seg(1, 0), seg(7, 0)], 0);
        assert_eq!(plan.len(), 1);
    }

    #[test]
    fn snapshots_parse_back_and_count_only_inside_their_window() {
        let db = DatabaseKey::new("abc").expect("key");
        let snap = SnapshotRef {
            generation: 2,
            offset: 41,
        };
        let path = db.snapshot_path(snap);
        assert_eq!(
            path.as_ref(),
            "db/abc/gen-00000000000000000002/snapshots/00000000000000000041.manifest"
        );
        assert_eq!(db.parse_snapshot_path(&path), Some(snap));
        assert_eq!(db.parse_snapshot_path(&db.object_path("ff")), None);
        assert_eq!(db.parse_segment_path(&path), None);
        let generations = [gen(1, 0), gen(2, 30), gen(3, 50)];
        let at = |generation, offset| SnapshotRef { generation, offset };
        // Inside the window, or below its start (hydrated history): kept.
        assert!(snapshot_in_history(&generations, at(2, 41)));
        assert!(snapshot_in_history(&generations, at(2, 29)));
        assert!(snapshot_in_history(&generations, at(2, 49)));
        // At or past the successor's start, or of an unknown generation: not history.
        assert!(!snapshot_in_history(&generations, at(2, 50)));
        assert!(!snapshot_in_history(&generations, at(1, 30)));
        assert!(!snapshot_in_history(&generations, at(4, 60)));
        assert!(snapshot_in_history(&generations, at(3, 900)));
    }

    #[test]
    fn a_missing_window_start_ends_the_plan() {
        let plan = replay_plan(&[gen(1, 0), gen(2, 150)], &[seg(1, 0), seg(2, 200)], 0);
        assert_eq!(plan.len(), 1, "{plan:?}");
        assert!(replay_plan(&[gen(1, 0)], &[seg(1, 50)], 10).is_empty());
        assert!(replay_plan(&[], &[seg(1, 0)], 0).is_empty());
    }

    /// One writer's segments: (first offset, records) of generation `g`.
    type Written = Vec<(u64, SegmentRef, u64)>;

    /// A history: generations starting at increasing offsets; each holder
    /// writes contiguous segments from its start, possibly past its
    /// successor's start (deposed), and some segments are then lost.
    fn history() -> impl Strategy<Value = (Vec<Generation>, Written, u64)> {
        (
            prop::collection::vec(
                (0u64..40, prop::collection::vec(1u64..15, 0..5), 0u64..20),
                1..5,
            ),
            prop::collection::vec(any::<bool>(), 30),
            0u64..120,
        )
            .prop_map(|(gens, lost, from)| {
                let mut generations = Vec::new();
                let mut written = Vec::new();
                let mut start = 0;
                let mut k = 0;
                for (g, (gap, lengths, _)) in gens.iter().enumerate() {
                    start += gap;
                    generations.push(gen(g as u64 + 1, start));
                    let mut first = start;
                    for len in lengths {
                        if !lost.get(k).copied().unwrap_or(false) || k % 4 != 0 {
                            written.push((first, seg(g as u64 + 1, first), *len));
                        }
                        k += 1;
                        first += len;
                    }
                }
                (generations, written, from)
            })
    }

    proptest! {
        /// Replaying the plan as the replayer does (stop at the window's
        /// end, stop at the first offset that does not follow) yields
        /// exactly the model's log: from `from`, each offset written by the
        /// generation whose window holds it, up to the first missing one.
        #[test]
        fn the_plan_replays_exactly_the_fenced_log((generations, written, from) in history()) {
            let segments: Vec<SegmentRef> = written.iter().map(|w| w.1).collect();
            let records: BTreeMap<SegmentRef, u64> = written.iter().map(|w| (w.1, w.2)).collect();
            // The model: who owns each offset, and whether it was written.
            let owner = |offset: u64| {
                generations.iter().rev().find(|g| g.start_offset <= offset).map(|g| g.generation)
            };
            let stored = |offset: u64, generation: u64| {
                written.iter().any(|(first, s, len)| {
                    s.generation == generation && *first <= offset && offset < first + len
                })
            };
            let mut expected = Vec::new();
            let mut offset = from;
            while let Some(g) = owner(offset) {
                if !stored(offset, g) {
                    break;
                }
                expected.push((offset, g));
                offset += 1;
            }
            // The replayer.
            let mut got = Vec::new();
            let mut next = from;
            'replay: for planned in replay_plan(&generations, &segments, from) {
                let len = records[&planned.segment];
                let first = planned.segment.first_offset;
                for offset in first..first + len {
                    if planned.replay_before.is_some_and(|end| offset >= end) {
                        break;
                    }
                    if offset < next {
                        continue;
                    }
                    if offset != next {
                        break 'replay;
                    }
                    got.push((offset, planned.segment.generation));
                    next += 1;
                }
            }
            prop_assert_eq!(got, expected);
        }
    }
}
