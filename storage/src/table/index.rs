//! One index of a table: a B-tree from key to row slots.
//!
//! Owns: the key → [`RowId`] map, unique or not, and point and range lookups.
//! Keys order by value (`AlgebraicValue: Ord`), never by their bytes.
//! All index kinds (B-tree, hash, direct) are B-trees in memory; the kind only
//! decides which scans the ABI allows.
//!
//! Invariant: a unique index maps each key to at most one row.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use spacetimedb_primitives::ColId;
use spacetimedb_sats::AlgebraicValue;

use super::RowId;
use crate::schema::{IndexAlgorithm, IndexSchema};

#[derive(Clone)]
pub(crate) struct Index {
    pub(crate) name: String,
    pub(crate) algorithm: IndexAlgorithm,
    pub(crate) columns: Vec<ColId>,
    map: IndexMap,
}

#[derive(Clone)]
enum IndexMap {
    Unique(BTreeMap<AlgebraicValue, RowId>),
    /// The row id makes entries with equal keys distinct.
    Multi(BTreeSet<(AlgebraicValue, RowId)>),
}

impl Index {
    pub(crate) fn new(schema: &IndexSchema) -> Index {
        let map = if schema.unique.is_some() {
            IndexMap::Unique(BTreeMap::new())
        } else {
            IndexMap::Multi(BTreeSet::new())
        };
        Index {
            name: schema.name.clone(),
            algorithm: schema.algorithm,
            columns: schema.columns.clone(),
            map,
        }
    }

    pub(crate) fn is_unique(&self) -> bool {
        matches!(self.map, IndexMap::Unique(_))
    }

    pub(crate) fn get_unique(&self, key: &AlgebraicValue) -> Option<RowId> {
        match &self.map {
            IndexMap::Unique(map) => map.get(key).copied(),
            IndexMap::Multi(_) => panic!("get_unique on non-unique index `{}`", self.name),
        }
    }

    pub(crate) fn insert(&mut self, key: AlgebraicValue, row_id: RowId) {
        match &mut self.map {
            IndexMap::Unique(map) => {
                let previous = map.insert(key, row_id);
                assert!(
                    previous.is_none(),
                    "unique index `{}` got a second row for a key",
                    self.name
                );
            }
            IndexMap::Multi(set) => {
                let fresh = set.insert((key, row_id));
                assert!(fresh, "index `{}` got the same entry twice", self.name);
            }
        }
    }

    /// Removes the entry; false if it was not there.
    pub(crate) fn remove(&mut self, key: &AlgebraicValue, row_id: RowId) -> bool {
        match &mut self.map {
            IndexMap::Unique(map) => match map.get(key) {
                Some(existing) if *existing == row_id => map.remove(key).is_some(),
                _ => false,
            },
            IndexMap::Multi(set) => {
                let probe = (key.clone(), row_id);
                set.remove(&probe)
            }
        }
    }

    /// Row ids whose key equals `key`, in key order.
    pub(crate) fn point(&self, key: &AlgebraicValue) -> Box<dyn Iterator<Item = RowId> + '_> {
        match &self.map {
            IndexMap::Unique(map) => Box::new(map.get(key).copied().into_iter()),
            IndexMap::Multi(set) => Box::new(
                set.range((
                    Bound::Included((key.clone(), RowId::MIN)),
                    Bound::Included((key.clone(), RowId::MAX)),
                ))
                .map(|(_, row_id)| *row_id),
            ),
        }
    }

    /// Row ids whose key lies within the bounds, in key order. The bounds
    /// must not be inverted (see `value::key_bounds`).
    pub(crate) fn range(
        &self,
        start: Bound<AlgebraicValue>,
        end: Bound<AlgebraicValue>,
    ) -> Box<dyn Iterator<Item = RowId> + '_> {
        match &self.map {
            IndexMap::Unique(map) => Box::new(map.range((start, end)).map(|(_, row_id)| *row_id)),
            IndexMap::Multi(set) => {
                let start = match start {
                    Bound::Included(key) => Bound::Included((key, RowId::MIN)),
                    Bound::Excluded(key) => Bound::Excluded((key, RowId::MAX)),
                    Bound::Unbounded => Bound::Unbounded,
                };
                let end = match end {
                    Bound::Included(key) => Bound::Included((key, RowId::MAX)),
                    Bound::Excluded(key) => Bound::Excluded((key, RowId::MIN)),
                    Bound::Unbounded => Bound::Unbounded,
                };
                Box::new(set.range((start, end)).map(|(_, row_id)| *row_id))
            }
        }
    }
}
