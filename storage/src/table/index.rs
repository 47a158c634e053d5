//! One index of a table: a B-tree from key to row slots.
//!
//! Owns: the key → [`RowId`] map, unique or not, and point and range lookups.
//! Keys order by value (`AlgebraicValue: Ord`), never by their bytes.
//! All index kinds (B-tree, hash, direct) are B-trees in memory; the kind only
//! decides which scans the ABI allows.
//!
//! Single-column indexes on an integer (up to 64 bits) or bool column store
//! their keys as a `u64` that sorts like the value (signed integers have their
//! sign bit flipped). Such keys are 8 bytes and compare in one instruction,
//! where an `AlgebraicValue` is 32 bytes compared through an enum; B-tree nodes
//! then fit far fewer cache lines, which is most of the cost at a million rows.
//! A key of another type than the column's matches nothing.
//!
//! Invariant: a unique index maps each key to at most one row.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Bound;

use spacetimedb_primitives::ColId;
use spacetimedb_sats::{AlgebraicType, AlgebraicValue};

use super::RowId;
use crate::schema::{IndexAlgorithm, IndexSchema, TableSchema};

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
    /// The hash map answers point lookups (the common case: primary keys)
    /// in one or two cache misses instead of a B-tree descent; the tree
    /// serves ranges.
    UniqueInt {
        tree: BTreeMap<u64, RowId>,
        points: HashMap<u64, RowId, BuildHasherDefault<IntHasher>>,
    },
    MultiInt(BTreeSet<(u64, RowId)>),
}

/// A hasher for `u64` keys: one multiplication by an odd constant (Fibonacci
/// hashing), folded so that the high bits, which hashbrown uses, are mixed.
#[derive(Default)]
pub(crate) struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        let x = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^ (x >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Row ids produced by a lookup, without allocating.
pub(crate) enum RowIds<'a> {
    Empty,
    One(Option<RowId>),
    Unique(std::collections::btree_map::Range<'a, AlgebraicValue, RowId>),
    Multi(std::collections::btree_set::Range<'a, (AlgebraicValue, RowId)>),
    UniqueInt(std::collections::btree_map::Range<'a, u64, RowId>),
    MultiInt(std::collections::btree_set::Range<'a, (u64, RowId)>),
}

impl Iterator for RowIds<'_> {
    type Item = RowId;

    fn next(&mut self) -> Option<RowId> {
        match self {
            RowIds::Empty => None,
            RowIds::One(id) => id.take(),
            RowIds::Unique(it) => it.next().map(|(_, id)| *id),
            RowIds::Multi(it) => it.next().map(|(_, id)| *id),
            RowIds::UniqueInt(it) => it.next().map(|(_, id)| *id),
            RowIds::MultiInt(it) => it.next().map(|(_, id)| *id),
        }
    }
}

impl Index {
    pub(crate) fn new(table: &TableSchema, schema: &IndexSchema) -> Index {
        let int = matches!(schema.columns.as_slice(), [col] if int_column(table.column_type(*col)));
        let map = match (schema.unique.is_some(), int) {
            (true, false) => IndexMap::Unique(BTreeMap::new()),
            (false, false) => IndexMap::Multi(BTreeSet::new()),
            (true, true) => IndexMap::UniqueInt {
                tree: BTreeMap::new(),
                points: HashMap::default(),
            },
            (false, true) => IndexMap::MultiInt(BTreeSet::new()),
        };
        Index {
            name: schema.name.clone(),
            algorithm: schema.algorithm,
            columns: schema.columns.clone(),
            map,
        }
    }

    pub(crate) fn is_unique(&self) -> bool {
        matches!(self.map, IndexMap::Unique(_) | IndexMap::UniqueInt { .. })
    }

    pub(crate) fn get_unique(&self, key: &AlgebraicValue) -> Option<RowId> {
        match &self.map {
            IndexMap::Unique(map) => map.get(key).copied(),
            IndexMap::UniqueInt { points, .. } => points.get(&int_key(key)?).copied(),
            IndexMap::Multi(_) | IndexMap::MultiInt(_) => {
                panic!("get_unique on non-unique index `{}`", self.name)
            }
        }
    }

    pub(crate) fn insert(&mut self, key: AlgebraicValue, row_id: RowId) {
        let fresh = match &mut self.map {
            IndexMap::Unique(map) => map.insert(key, row_id).is_none(),
            IndexMap::Multi(set) => set.insert((key, row_id)),
            IndexMap::UniqueInt { tree, points } => {
                let key = int_key(&key).expect("rows are type-checked");
                points.insert(key, row_id);
                tree.insert(key, row_id).is_none()
            }
            IndexMap::MultiInt(set) => {
                set.insert((int_key(&key).expect("rows are type-checked"), row_id))
            }
        };
        assert!(fresh, "index `{}` got a second entry for a key", self.name);
    }

    /// Fills an empty index from all rows at once (recovery from a snapshot):
    /// sort the keys, check uniqueness on neighbours, and build the B-tree
    /// from sorted input in linear time. Returns a duplicated key on failure.
    pub(crate) fn build(
        &mut self,
        mut entries: Vec<(AlgebraicValue, RowId)>,
    ) -> Result<(), AlgebraicValue> {
        entries.sort_unstable();
        let unique = self.is_unique();
        if unique {
            if let Some(pair) = entries.windows(2).find(|pair| pair[0].0 == pair[1].0) {
                return Err(pair[0].0.clone());
            }
        }
        match &mut self.map {
            IndexMap::Unique(map) => *map = entries.into_iter().collect(),
            IndexMap::Multi(set) => *set = entries.into_iter().collect(),
            IndexMap::UniqueInt { tree, points } => {
                let ints = entries
                    .iter()
                    .map(|(k, id)| (int_key(k).expect("rows are type-checked"), *id));
                *points = ints.clone().collect();
                *tree = ints.collect();
            }
            IndexMap::MultiInt(set) => {
                *set = entries
                    .iter()
                    .map(|(k, id)| (int_key(k).expect("rows are type-checked"), *id))
                    .collect()
            }
        }
        Ok(())
    }

    /// Removes the entry; false if it was not there.
    pub(crate) fn remove(&mut self, key: &AlgebraicValue, row_id: RowId) -> bool {
        match &mut self.map {
            IndexMap::Unique(map) => match map.get(key) {
                Some(existing) if *existing == row_id => map.remove(key).is_some(),
                _ => false,
            },
            IndexMap::Multi(set) => set.remove(&(key.clone(), row_id)),
            IndexMap::UniqueInt { tree, points } => {
                let Some(key) = int_key(key) else {
                    return false;
                };
                match points.get(&key) {
                    Some(existing) if *existing == row_id => {
                        points.remove(&key);
                        tree.remove(&key).is_some()
                    }
                    _ => false,
                }
            }
            IndexMap::MultiInt(set) => int_key(key).is_some_and(|key| set.remove(&(key, row_id))),
        }
    }

    /// Row ids whose key equals `key`, in key order.
    pub(crate) fn point(&self, key: &AlgebraicValue) -> RowIds<'_> {
        match &self.map {
            IndexMap::Unique(map) => RowIds::One(map.get(key).copied()),
            IndexMap::UniqueInt { points, .. } => {
                RowIds::One(int_key(key).and_then(|key| points.get(&key).copied()))
            }
            IndexMap::Multi(set) => RowIds::Multi(set.range((
                Bound::Included((key.clone(), RowId::MIN)),
                Bound::Included((key.clone(), RowId::MAX)),
            ))),
            IndexMap::MultiInt(set) => match int_key(key) {
                Some(key) => RowIds::MultiInt(set.range((key, RowId::MIN)..=(key, RowId::MAX))),
                None => RowIds::Empty,
            },
        }
    }

    /// Row ids whose key lies within the bounds, in key order. The bounds
    /// must not be inverted (see `value::key_bounds`).
    pub(crate) fn range(
        &self,
        start: Bound<AlgebraicValue>,
        end: Bound<AlgebraicValue>,
    ) -> RowIds<'_> {
        match &self.map {
            IndexMap::Unique(map) => RowIds::Unique(map.range((start, end))),
            IndexMap::Multi(set) => RowIds::Multi(set.range((multi_start(start), multi_end(end)))),
            IndexMap::UniqueInt { tree, .. } => match (int_bound(start), int_bound(end)) {
                (Some(start), Some(end)) => RowIds::UniqueInt(tree.range((start, end))),
                _ => RowIds::Empty,
            },
            IndexMap::MultiInt(set) => match (int_bound(start), int_bound(end)) {
                (Some(start), Some(end)) => {
                    RowIds::MultiInt(set.range((multi_start(start), multi_end(end))))
                }
                _ => RowIds::Empty,
            },
        }
    }
}

/// Entries of a non-unique index are `(key, row id)`: widen key bounds over all row ids.
fn multi_start<K>(bound: Bound<K>) -> Bound<(K, RowId)> {
    match bound {
        Bound::Included(key) => Bound::Included((key, RowId::MIN)),
        Bound::Excluded(key) => Bound::Excluded((key, RowId::MAX)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn multi_end<K>(bound: Bound<K>) -> Bound<(K, RowId)> {
    match bound {
        Bound::Included(key) => Bound::Included((key, RowId::MAX)),
        Bound::Excluded(key) => Bound::Excluded((key, RowId::MIN)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn int_column(ty: &AlgebraicType) -> bool {
    use AlgebraicType as T;
    matches!(
        ty,
        T::Bool | T::U8 | T::U16 | T::U32 | T::U64 | T::I8 | T::I16 | T::I32 | T::I64
    )
}

/// An order-preserving `u64` image of an integer or bool key.
fn int_key(value: &AlgebraicValue) -> Option<u64> {
    const FLIP: u64 = 1 << 63;
    Some(match *value {
        AlgebraicValue::Bool(b) => b as u64,
        AlgebraicValue::U8(x) => x as u64,
        AlgebraicValue::U16(x) => x as u64,
        AlgebraicValue::U32(x) => x as u64,
        AlgebraicValue::U64(x) => x,
        AlgebraicValue::I8(x) => (x as i64 as u64) ^ FLIP,
        AlgebraicValue::I16(x) => (x as i64 as u64) ^ FLIP,
        AlgebraicValue::I32(x) => (x as i64 as u64) ^ FLIP,
        AlgebraicValue::I64(x) => (x as u64) ^ FLIP,
        _ => return None,
    })
}

fn int_bound(bound: Bound<AlgebraicValue>) -> Option<Bound<u64>> {
    Some(match bound {
        Bound::Included(v) => Bound::Included(int_key(&v)?),
        Bound::Excluded(v) => Bound::Excluded(int_key(&v)?),
        Bound::Unbounded => Bound::Unbounded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Protects the order-preserving integer keys: for every integer type the
    // u64 image sorts exactly like the value.
    #[test]
    fn int_keys_sort_like_values() {
        let values = [
            AlgebraicValue::I64(i64::MIN),
            AlgebraicValue::I64(-1),
            AlgebraicValue::I64(0),
            AlgebraicValue::I64(1),
            AlgebraicValue::I64(i64::MAX),
        ];
        let keys: Vec<u64> = values.iter().map(|v| int_key(v).unwrap()).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        let small = [
            AlgebraicValue::I8(-128),
            AlgebraicValue::I8(-1),
            AlgebraicValue::I8(0),
            AlgebraicValue::I8(127),
        ];
        let keys: Vec<u64> = small.iter().map(|v| int_key(v).unwrap()).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert!(
            int_key(&AlgebraicValue::U64(u64::MAX)).unwrap()
                > int_key(&AlgebraicValue::U64(1)).unwrap()
        );
        assert_eq!(int_key(&AlgebraicValue::String("1".into())), None);
    }
}
