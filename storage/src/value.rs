//! Values, rows and index keys: type checks, BSATN decoding at a table's types,
//! key projection and the translation of ABI range bounds into B-tree bounds.
//!
//! Owns: [`Row`], the rule that keys order by value (sats `AlgebraicValue`'s
//! `Ord`, never by bytes), and the exact byte shapes of point keys and
//! `Bound`s that modules send (module-abi §7.4).
//! Does not own: which index serves a query (`table`), or row storage.
//!
//! Invariant: a single-column index key is the column value itself; a
//! multi-column key is a `Product` of the column values in index order.

use std::ops::Bound;
use std::sync::Arc;

use spacetimedb_primitives::ColId;
use spacetimedb_sats::buffer::BufReader;
use spacetimedb_sats::{i256, u256, AlgebraicType, AlgebraicValue, ArrayValue, ProductValue};

use crate::error::TxError;
use crate::schema::TableSchema;

/// An immutable row, shared cheaply between the table, deltas and iterators.
pub type Row = Arc<[AlgebraicValue]>;

/// Converts a sats `ProductValue` into a [`Row`].
pub fn row_from_product(value: ProductValue) -> Row {
    Arc::from(value.elements)
}

/// Converts a [`Row`] back into a sats `ProductValue`.
pub fn row_to_product(row: &Row) -> ProductValue {
    ProductValue {
        elements: row.iter().cloned().collect(),
    }
}

/// Appends the BSATN encoding of `row` (its columns back to back) to `out`.
pub fn encode_row(row: &[AlgebraicValue], out: &mut Vec<u8>) {
    for value in row {
        spacetimedb_sats::bsatn::to_writer(out, value)
            .expect("encoding a type-checked row into a Vec cannot fail");
    }
}

/// Decodes exactly one row of `schema` from `bytes` (no trailing bytes).
pub fn decode_row(schema: &TableSchema, bytes: &[u8]) -> Result<Row, TxError> {
    let mut reader = bytes;
    let row = read_row(&schema.columns, &mut reader).map_err(|reason| TxError::Decode {
        what: "row",
        reason,
    })?;
    if !reader.is_empty() {
        return Err(TxError::Decode {
            what: "row",
            reason: format!("{} trailing bytes", reader.len()),
        });
    }
    Ok(row)
}

/// Reads one row of type `columns` from the front of `reader` straight into
/// its shared allocation (one allocation per row: this is the replay and
/// snapshot-load hot path).
pub(crate) fn read_row(
    columns: &spacetimedb_sats::ProductType,
    reader: &mut &[u8],
) -> Result<Row, String> {
    let mut error = None;
    // `Range::map` has an exact length, so `Arc<[_]>` is allocated once; a
    // failed column leaves a placeholder and the error is returned instead.
    let row: Row = (0..columns.elements.len())
        .map(|i| {
            if error.is_some() {
                return AlgebraicValue::Min;
            }
            AlgebraicValue::decode(&columns.elements[i].algebraic_type, reader).unwrap_or_else(
                |e| {
                    error = Some(e.to_string());
                    AlgebraicValue::Min
                },
            )
        })
        .collect();
    match error {
        Some(reason) => Err(reason),
        None => Ok(row),
    }
}

/// Decodes exactly one value of type `ty`.
fn decode_exact(
    ty: &AlgebraicType,
    bytes: &[u8],
    what: &'static str,
) -> Result<AlgebraicValue, TxError> {
    let mut reader = bytes;
    let value = decode_one(ty, &mut reader, what)?;
    if !reader.is_empty() {
        return Err(TxError::Decode {
            what,
            reason: format!("{} trailing bytes", reader.len()),
        });
    }
    Ok(value)
}

fn decode_one(
    ty: &AlgebraicType,
    reader: &mut &[u8],
    what: &'static str,
) -> Result<AlgebraicValue, TxError> {
    AlgebraicValue::decode(ty, reader).map_err(|e| TxError::Decode {
        what,
        reason: e.to_string(),
    })
}

/// Checks that `row` has the column types of `schema`.
pub fn check_row(schema: &TableSchema, row: &[AlgebraicValue]) -> Result<(), TxError> {
    let columns = &schema.columns.elements;
    if row.len() != columns.len() {
        return Err(TxError::RowType {
            table: schema.name.clone(),
            reason: format!("{} values for {} columns", row.len(), columns.len()),
        });
    }
    for (i, (value, column)) in row.iter().zip(columns.iter()).enumerate() {
        if !value_has_type(value, &column.algebraic_type) {
            return Err(TxError::RowType {
                table: schema.name.clone(),
                reason: format!(
                    "column {i} (`{}`) does not hold a {:?}",
                    schema.column_name(ColId(i as u16)),
                    column.algebraic_type
                ),
            });
        }
    }
    Ok(())
}

/// Whether `value` is a value of the fully resolved type `ty`.
pub fn value_has_type(value: &AlgebraicValue, ty: &AlgebraicType) -> bool {
    use AlgebraicType as T;
    use AlgebraicValue as V;
    match (value, ty) {
        (V::Sum(sum), T::Sum(sum_ty)) => sum_ty
            .variants
            .get(sum.tag as usize)
            .is_some_and(|variant| value_has_type(&sum.value, &variant.algebraic_type)),
        (V::Product(product), T::Product(product_ty)) => {
            product.elements.len() == product_ty.elements.len()
                && product
                    .elements
                    .iter()
                    .zip(product_ty.elements.iter())
                    .all(|(v, e)| value_has_type(v, &e.algebraic_type))
        }
        (V::Array(array), T::Array(array_ty)) => array_has_type(array, &array_ty.elem_ty),
        (V::Bool(_), T::Bool)
        | (V::I8(_), T::I8)
        | (V::U8(_), T::U8)
        | (V::I16(_), T::I16)
        | (V::U16(_), T::U16)
        | (V::I32(_), T::I32)
        | (V::U32(_), T::U32)
        | (V::I64(_), T::I64)
        | (V::U64(_), T::U64)
        | (V::I128(_), T::I128)
        | (V::U128(_), T::U128)
        | (V::I256(_), T::I256)
        | (V::U256(_), T::U256)
        | (V::F32(_), T::F32)
        | (V::F64(_), T::F64)
        | (V::String(_), T::String) => true,
        _ => false,
    }
}

fn array_has_type(array: &ArrayValue, elem: &AlgebraicType) -> bool {
    use AlgebraicType as T;
    use ArrayValue as A;
    if array.is_empty() {
        return true;
    }
    match (array, elem) {
        (A::Sum(values), T::Sum(_)) => values
            .iter()
            .all(|v| value_has_type(&AlgebraicValue::Sum(v.clone()), elem)),
        (A::Product(values), T::Product(_)) => values
            .iter()
            .all(|v| value_has_type(&AlgebraicValue::Product(v.clone()), elem)),
        (A::Array(values), T::Array(inner)) => {
            values.iter().all(|v| array_has_type(v, &inner.elem_ty))
        }
        (A::Bool(_), T::Bool)
        | (A::I8(_), T::I8)
        | (A::U8(_), T::U8)
        | (A::I16(_), T::I16)
        | (A::U16(_), T::U16)
        | (A::I32(_), T::I32)
        | (A::U32(_), T::U32)
        | (A::I64(_), T::I64)
        | (A::U64(_), T::U64)
        | (A::I128(_), T::I128)
        | (A::U128(_), T::U128)
        | (A::I256(_), T::I256)
        | (A::U256(_), T::U256)
        | (A::F32(_), T::F32)
        | (A::F64(_), T::F64)
        | (A::String(_), T::String) => true,
        _ => false,
    }
}

/// Projects `row` onto index columns: the value itself for one column, a
/// `Product` for several.
pub fn project_key(row: &[AlgebraicValue], columns: &[ColId]) -> AlgebraicValue {
    match columns {
        [col] => row[col.idx()].clone(),
        cols => AlgebraicValue::product(
            cols.iter()
                .map(|c| row[c.idx()].clone())
                .collect::<Vec<_>>(),
        ),
    }
}

/// Decodes a point key as the ABI sends it: the key columns' BSATN back to back.
pub fn decode_point(
    schema: &TableSchema,
    columns: &[ColId],
    bytes: &[u8],
) -> Result<AlgebraicValue, TxError> {
    match columns {
        [col] => decode_exact(schema.column_type(*col), bytes, "index key"),
        cols => {
            let mut reader = bytes;
            let mut values = Vec::with_capacity(cols.len());
            for col in cols {
                values.push(decode_one(
                    schema.column_type(*col),
                    &mut reader,
                    "index key",
                )?);
            }
            if !reader.is_empty() {
                return Err(TxError::Decode {
                    what: "index key",
                    reason: format!("{} trailing bytes", reader.len()),
                });
            }
            Ok(AlgebraicValue::product(values))
        }
    }
}

/// A range over an index as the ABI gives it: equal values for the first
/// `prefix.len()` key columns, then bounds on the next column; later columns free.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexRange {
    pub prefix: Vec<AlgebraicValue>,
    pub start: Bound<AlgebraicValue>,
    pub end: Bound<AlgebraicValue>,
}

/// Decodes `prefix` (`prefix_elems` values) and the BSATN `Bound`s `rstart`
/// and `rend` at the types of the index columns (module-abi §7.4).
pub fn decode_range(
    schema: &TableSchema,
    columns: &[ColId],
    prefix: &[u8],
    prefix_elems: usize,
    rstart: &[u8],
    rend: &[u8],
) -> Result<IndexRange, TxError> {
    if prefix_elems >= columns.len() {
        return Err(TxError::Decode {
            what: "range prefix",
            reason: format!(
                "{prefix_elems} prefix values for an index of {} columns",
                columns.len()
            ),
        });
    }
    let mut reader = if prefix_elems == 0 { &[][..] } else { prefix };
    let mut values = Vec::with_capacity(prefix_elems);
    for col in &columns[..prefix_elems] {
        values.push(decode_one(
            schema.column_type(*col),
            &mut reader,
            "range prefix",
        )?);
    }
    if !reader.is_empty() {
        return Err(TxError::Decode {
            what: "range prefix",
            reason: format!("{} trailing bytes", reader.len()),
        });
    }
    let bound_ty = schema.column_type(columns[prefix_elems]);
    Ok(IndexRange {
        prefix: values,
        start: decode_bound(bound_ty, rstart)?,
        end: decode_bound(bound_ty, rend)?,
    })
}

/// `Bound<T>` in BSATN is the sum `[included: T, excluded: T, unbounded: ()]`.
fn decode_bound(ty: &AlgebraicType, bytes: &[u8]) -> Result<Bound<AlgebraicValue>, TxError> {
    let mut reader = bytes;
    let tag = reader.get_u8().map_err(|e| TxError::Decode {
        what: "range bound",
        reason: e.to_string(),
    })?;
    let bound = match tag {
        0 => Bound::Included(decode_one(ty, &mut reader, "range bound")?),
        1 => Bound::Excluded(decode_one(ty, &mut reader, "range bound")?),
        2 => Bound::Unbounded,
        tag => {
            return Err(TxError::Decode {
                what: "range bound",
                reason: format!("unknown Bound tag {tag}"),
            })
        }
    };
    if !reader.is_empty() {
        return Err(TxError::Decode {
            what: "range bound",
            reason: format!("{} trailing bytes", reader.len()),
        });
    }
    Ok(bound)
}

/// Turns an [`IndexRange`] into bounds on whole keys of an index with `arity`
/// columns. Free trailing columns are filled with the `Min`/`Max` sentinels
/// of `AlgebraicValue`, which sort below/above every real value. Returns
/// `None` when the range is empty (B-tree ranges must not be inverted).
pub fn key_bounds(
    range: &IndexRange,
    arity: usize,
) -> Option<(Bound<AlgebraicValue>, Bound<AlgebraicValue>)> {
    assert!(
        range.prefix.len() < arity,
        "prefix must leave the bound column"
    );
    if arity == 1 {
        let bounds = (range.start.clone(), range.end.clone());
        return (!bounds_empty(&bounds.0, &bounds.1)).then_some(bounds);
    }
    let free = arity - range.prefix.len() - 1;
    let key = |value: AlgebraicValue, fill: AlgebraicValue| {
        let mut elements = Vec::with_capacity(arity);
        elements.extend(range.prefix.iter().cloned());
        elements.push(value);
        elements.extend(std::iter::repeat_n(fill, free));
        AlgebraicValue::product(elements)
    };
    // Whole-key bounds: with free columns, the sentinel fill decides inclusion,
    // so both ends become inclusive of the filled key.
    let start = match &range.start {
        Bound::Included(v) => Bound::Included(key(v.clone(), AlgebraicValue::Min)),
        Bound::Excluded(v) if free > 0 => Bound::Excluded(key(v.clone(), AlgebraicValue::Max)),
        Bound::Excluded(v) => Bound::Excluded(key(v.clone(), AlgebraicValue::Min)),
        Bound::Unbounded => Bound::Included(key(AlgebraicValue::Min, AlgebraicValue::Min)),
    };
    let end = match &range.end {
        Bound::Included(v) => Bound::Included(key(v.clone(), AlgebraicValue::Max)),
        Bound::Excluded(v) if free > 0 => Bound::Excluded(key(v.clone(), AlgebraicValue::Min)),
        Bound::Excluded(v) => Bound::Excluded(key(v.clone(), AlgebraicValue::Max)),
        Bound::Unbounded => Bound::Included(key(AlgebraicValue::Max, AlgebraicValue::Max)),
    };
    // The bound column itself decides emptiness; compare on it, not on the
    // filled keys, to keep `Excluded(x)..Excluded(x)` empty for any arity.
    if bounds_empty(&range.start, &range.end) {
        return None;
    }
    Some((start, end))
}

/// Whether no value lies between the two bounds.
fn bounds_empty(start: &Bound<AlgebraicValue>, end: &Bound<AlgebraicValue>) -> bool {
    match (start, end) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b))
        | (Bound::Excluded(a), Bound::Excluded(b)) => a >= b,
        _ => false,
    }
}

/// The integer in `value`, if it is one that fits an `i128`.
pub(crate) fn integer_value(value: &AlgebraicValue) -> Option<i128> {
    Some(match value {
        AlgebraicValue::I8(x) => *x as i128,
        AlgebraicValue::U8(x) => *x as i128,
        AlgebraicValue::I16(x) => *x as i128,
        AlgebraicValue::U16(x) => *x as i128,
        AlgebraicValue::I32(x) => *x as i128,
        AlgebraicValue::U32(x) => *x as i128,
        AlgebraicValue::I64(x) => *x as i128,
        AlgebraicValue::U64(x) => *x as i128,
        AlgebraicValue::I128(x) => x.0,
        AlgebraicValue::U128(x) => i128::try_from(x.0).ok()?,
        AlgebraicValue::I256(x) => i128::try_from(**x).ok()?,
        AlgebraicValue::U256(x) => i128::try_from(**x).ok()?,
        _ => return None,
    })
}

/// An integer value of type `ty`; `n` must be in the type's range (checked by
/// the sequence, whose bounds come from [`crate::schema::integer_range`]).
pub(crate) fn integer_of_type(ty: &AlgebraicType, n: i128) -> AlgebraicValue {
    let narrow = "sequence value is within the column type's range";
    match ty {
        AlgebraicType::I8 => AlgebraicValue::I8(n.try_into().expect(narrow)),
        AlgebraicType::U8 => AlgebraicValue::U8(n.try_into().expect(narrow)),
        AlgebraicType::I16 => AlgebraicValue::I16(n.try_into().expect(narrow)),
        AlgebraicType::U16 => AlgebraicValue::U16(n.try_into().expect(narrow)),
        AlgebraicType::I32 => AlgebraicValue::I32(n.try_into().expect(narrow)),
        AlgebraicType::U32 => AlgebraicValue::U32(n.try_into().expect(narrow)),
        AlgebraicType::I64 => AlgebraicValue::I64(n.try_into().expect(narrow)),
        AlgebraicType::U64 => AlgebraicValue::U64(n.try_into().expect(narrow)),
        AlgebraicType::I128 => AlgebraicValue::I128(spacetimedb_sats::algebraic_value::Packed(n)),
        AlgebraicType::U128 => AlgebraicValue::U128(spacetimedb_sats::algebraic_value::Packed(
            n.try_into().expect(narrow),
        )),
        AlgebraicType::I256 => AlgebraicValue::I256(Box::new(i256::from(n))),
        AlgebraicType::U256 => {
            AlgebraicValue::U256(Box::new(u256::from(u128::try_from(n).expect(narrow))))
        }
        other => panic!("sequence on non-integer column type {other:?} passed schema validation"),
    }
}

/// A short printable form of a key for error messages.
pub(crate) fn display_value(value: &AlgebraicValue) -> String {
    let mut text = format!("{value:?}");
    if text.len() > 200 {
        let mut cut = 200;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}
