//! Typespace resolution and structural recognition of special types.
//!
//! Owns: replacing every `AlgebraicType::Ref` by the type it names, recursively
//! ([`resolve`], [`resolve_product`]), with a nesting limit that turns cyclic
//! refs into [`TypeError::TooDeep`]; checking that all refs in the typespace are
//! in range ([`check_typespace`]); recognising `ScheduleAt` ([`is_schedule_at`])
//! and the option sum ([`option_inner`]) by structure.
//! Does not own: deciding where a type is required to be a product or a
//! `ScheduleAt` (see `build.rs`).
//! Entry points: the free functions below.

use spacetimedb_sats::{
    AlgebraicType, AlgebraicTypeRef, ArrayType, ProductType, ProductTypeElement, SumType,
    SumTypeVariant, Typespace,
};

use super::error::TypeError;

/// Maximum nesting while resolving (`limits::MODULE_TYPE_DEPTH_MAX`).
pub const MAX_TYPE_DEPTH: usize = orrery_api::limits::MODULE_TYPE_DEPTH_MAX;

/// Checks that every `Ref` anywhere in the typespace points inside it.
pub(crate) fn check_typespace(typespace: &Typespace) -> Result<(), (usize, TypeError)> {
    let len = typespace.types.len();
    for (i, ty) in typespace.types.iter().enumerate() {
        check_refs(ty, len, 0).map_err(|e| (i, e))?;
    }
    Ok(())
}

/// Checks that the refs inside `ty` are in range, without following them.
pub(crate) fn check_refs(ty: &AlgebraicType, len: usize, depth: usize) -> Result<(), TypeError> {
    match ty {
        AlgebraicType::Ref(r) if (r.0 as usize) < len => Ok(()),
        AlgebraicType::Ref(r) => Err(TypeError::RefOutOfRange {
            reference: r.0,
            len,
        }),
        _ if depth > MAX_TYPE_DEPTH => Err(TypeError::TooDeep {
            reference: u32::MAX,
            limit: MAX_TYPE_DEPTH,
        }),
        AlgebraicType::Sum(sum) => sum
            .variants
            .iter()
            .try_for_each(|v| check_refs(&v.algebraic_type, len, depth + 1)),
        AlgebraicType::Product(product) => product
            .elements
            .iter()
            .try_for_each(|e| check_refs(&e.algebraic_type, len, depth + 1)),
        AlgebraicType::Array(array) => check_refs(&array.elem_ty, len, depth + 1),
        _ => Ok(()),
    }
}

/// `ty` with every `Ref` replaced by its target, recursively.
pub(crate) fn resolve(
    typespace: &Typespace,
    ty: &AlgebraicType,
) -> Result<AlgebraicType, TypeError> {
    resolve_at(typespace, ty, 0, None)
}

/// Every element of `product` resolved; element names are kept.
pub(crate) fn resolve_product(
    typespace: &Typespace,
    product: &ProductType,
) -> Result<ProductType, TypeError> {
    resolve_elements(typespace, product, 0, None)
}

fn resolve_elements(
    typespace: &Typespace,
    product: &ProductType,
    depth: usize,
    last_ref: Option<u32>,
) -> Result<ProductType, TypeError> {
    let elements = product
        .elements
        .iter()
        .map(|e| {
            Ok(ProductTypeElement {
                name: e.name.clone(),
                algebraic_type: resolve_at(typespace, &e.algebraic_type, depth + 1, last_ref)?,
            })
        })
        .collect::<Result<Vec<_>, TypeError>>()?;
    Ok(ProductType::new(elements.into_boxed_slice()))
}

fn resolve_at(
    typespace: &Typespace,
    ty: &AlgebraicType,
    depth: usize,
    last_ref: Option<u32>,
) -> Result<AlgebraicType, TypeError> {
    if depth > MAX_TYPE_DEPTH {
        return Err(TypeError::TooDeep {
            reference: last_ref.unwrap_or(u32::MAX),
            limit: MAX_TYPE_DEPTH,
        });
    }
    Ok(match ty {
        AlgebraicType::Ref(r) => {
            let target = typespace
                .types
                .get(r.0 as usize)
                .ok_or(TypeError::RefOutOfRange {
                    reference: r.0,
                    len: typespace.types.len(),
                })?;
            resolve_at(typespace, target, depth + 1, Some(r.0))?
        }
        AlgebraicType::Sum(sum) => {
            let variants = sum
                .variants
                .iter()
                .map(|v| {
                    Ok(SumTypeVariant {
                        name: v.name.clone(),
                        algebraic_type: resolve_at(
                            typespace,
                            &v.algebraic_type,
                            depth + 1,
                            last_ref,
                        )?,
                    })
                })
                .collect::<Result<Vec<_>, TypeError>>()?;
            AlgebraicType::Sum(SumType::new(variants.into_boxed_slice()))
        }
        AlgebraicType::Product(product) => {
            AlgebraicType::Product(resolve_elements(typespace, product, depth, last_ref)?)
        }
        AlgebraicType::Array(array) => AlgebraicType::Array(ArrayType {
            elem_ty: Box::new(resolve_at(typespace, &array.elem_ty, depth + 1, last_ref)?),
        }),
        other => other.clone(),
    })
}

/// A one-field product whose field has the given magic name and type.
fn is_special_product(ty: &AlgebraicType, field: &str, inner: &AlgebraicType) -> bool {
    match ty {
        AlgebraicType::Product(p) => {
            p.elements.len() == 1
                && p.elements[0].name.as_deref() == Some(field)
                && &p.elements[0].algebraic_type == inner
        }
        _ => false,
    }
}

/// `ScheduleAt` = sum `[Interval: {__time_duration_micros__: I64},
/// Time: {__timestamp_micros_since_unix_epoch__: I64}]`, in that order.
/// `ty` must already be resolved.
pub fn is_schedule_at(ty: &AlgebraicType) -> bool {
    let AlgebraicType::Sum(sum) = ty else {
        return false;
    };
    let [interval, time] = &*sum.variants else {
        return false;
    };
    interval.name.as_deref() == Some("Interval")
        && is_special_product(
            &interval.algebraic_type,
            "__time_duration_micros__",
            &AlgebraicType::I64,
        )
        && time.name.as_deref() == Some("Time")
        && is_special_product(
            &time.algebraic_type,
            "__timestamp_micros_since_unix_epoch__",
            &AlgebraicType::I64,
        )
}

/// If `ty` is the option sum `{some: T, none: ()}`, returns `T`.
pub fn option_inner(ty: &AlgebraicType) -> Option<&AlgebraicType> {
    let AlgebraicType::Sum(sum) = ty else {
        return None;
    };
    let [some, none] = &*sum.variants else {
        return None;
    };
    let none_is_unit =
        matches!(&none.algebraic_type, AlgebraicType::Product(p) if p.elements.is_empty());
    (some.name.as_deref() == Some("some") && none.name.as_deref() == Some("none") && none_is_unit)
        .then_some(&some.algebraic_type)
}

/// A plain enum: a sum whose variants all carry `()`.
pub(crate) fn is_plain_enum(ty: &AlgebraicType) -> bool {
    matches!(ty, AlgebraicType::Sum(sum) if sum.variants.iter().all(|v|
        matches!(&v.algebraic_type, AlgebraicType::Product(p) if p.elements.is_empty())))
}

/// A short human-readable rendering of a type for error messages.
pub(crate) fn describe(ty: &AlgebraicType) -> String {
    let text = format!("{ty:?}");
    if text.chars().count() > 120 {
        let mut short: String = text.chars().take(117).collect();
        short.push('…');
        short
    } else {
        text
    }
}

/// How a type reads in messages and descriptions, Rust-like: `u32`,
/// `string`, `bytes`, `Vec<T>`, `Option<T>`, `Result<T, E>`, `Identity`
/// (and the other special types), `()`, `{ a: u8, b: bool }` for an
/// anonymous product, `A | B(u8)` for an anonymous sum; a ref reads as
/// `ref_text` says (a declared name, say).
pub fn type_text(ty: &AlgebraicType, ref_text: &dyn Fn(AlgebraicTypeRef) -> String) -> String {
    let inner = |t: &AlgebraicType| type_text(t, ref_text);
    let simple = match ty {
        AlgebraicType::Bool => "bool",
        AlgebraicType::String => "string",
        AlgebraicType::I8 => "i8",
        AlgebraicType::U8 => "u8",
        AlgebraicType::I16 => "i16",
        AlgebraicType::U16 => "u16",
        AlgebraicType::I32 => "i32",
        AlgebraicType::U32 => "u32",
        AlgebraicType::I64 => "i64",
        AlgebraicType::U64 => "u64",
        AlgebraicType::I128 => "i128",
        AlgebraicType::U128 => "u128",
        AlgebraicType::I256 => "i256",
        AlgebraicType::U256 => "u256",
        AlgebraicType::F32 => "f32",
        AlgebraicType::F64 => "f64",
        _ if ty.is_bytes() => "bytes",
        _ if ty.is_identity() => "Identity",
        _ if ty.is_connection_id() => "ConnectionId",
        _ if ty.is_timestamp() => "Timestamp",
        _ if ty.is_time_duration() => "TimeDuration",
        _ if ty.is_uuid() => "Uuid",
        _ if is_schedule_at(ty) => "ScheduleAt",
        _ if ty.is_unit() => "()",
        _ => "",
    };
    if !simple.is_empty() {
        return simple.to_owned();
    }
    if let Some(some) = option_inner(ty) {
        return format!("Option<{}>", inner(some));
    }
    if let Some((ok, err)) = ty.as_result() {
        return format!("Result<{}, {}>", inner(ok), inner(err));
    }
    match ty {
        AlgebraicType::Ref(r) => ref_text(*r),
        AlgebraicType::Array(a) => format!("Vec<{}>", inner(&a.elem_ty)),
        AlgebraicType::Product(p) => {
            let fields: Vec<String> = p
                .elements
                .iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.name.as_deref().unwrap_or("_"),
                        inner(&e.algebraic_type)
                    )
                })
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        AlgebraicType::Sum(s) => {
            let variants: Vec<String> = s
                .variants
                .iter()
                .map(|v| {
                    let name = v.name.as_deref().unwrap_or("_");
                    if v.algebraic_type.is_unit() {
                        name.to_owned()
                    } else {
                        format!("{name}({})", inner(&v.algebraic_type))
                    }
                })
                .collect();
            variants.join(" | ")
        }
        _ => format!("{ty:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spacetimedb_sats::AlgebraicTypeRef;

    fn schedule_at() -> AlgebraicType {
        AlgebraicType::sum([
            (
                "Interval",
                AlgebraicType::product([("__time_duration_micros__", AlgebraicType::I64)]),
            ),
            (
                "Time",
                AlgebraicType::product([(
                    "__timestamp_micros_since_unix_epoch__",
                    AlgebraicType::I64,
                )]),
            ),
        ])
    }

    // Protects nested ref resolution: refs inside products, sums, arrays and
    // options are all replaced, and names are kept.
    #[test]
    fn resolves_nested_refs() {
        let point = AlgebraicType::product([("x", AlgebraicType::I32), ("y", AlgebraicType::I32)]);
        let shape = AlgebraicType::sum([
            ("Circle", AlgebraicType::U32),
            ("Rect", AlgebraicType::Ref(AlgebraicTypeRef(0))),
        ]);
        let ts = Typespace::new(vec![point.clone(), shape]);
        let ty = AlgebraicType::product([
            ("shape", AlgebraicType::Ref(AlgebraicTypeRef(1))),
            (
                "pts",
                AlgebraicType::array(AlgebraicType::Ref(AlgebraicTypeRef(0))),
            ),
            (
                "maybe",
                AlgebraicType::option(AlgebraicType::Ref(AlgebraicTypeRef(0))),
            ),
        ]);
        let resolved = resolve(&ts, &ty).expect("resolves");
        let expected = AlgebraicType::product([
            (
                "shape",
                AlgebraicType::sum([("Circle", AlgebraicType::U32), ("Rect", point.clone())]),
            ),
            ("pts", AlgebraicType::array(point.clone())),
            ("maybe", AlgebraicType::option(point)),
        ]);
        assert_eq!(resolved, expected);
    }

    // Protects against infinite recursion on cyclic refs and reports
    // out-of-range refs precisely.
    #[test]
    fn cyclic_and_out_of_range_refs() {
        let ts = Typespace::new(vec![
            AlgebraicType::product([("next", AlgebraicType::Ref(AlgebraicTypeRef(1)))]),
            AlgebraicType::product([("back", AlgebraicType::Ref(AlgebraicTypeRef(0)))]),
        ]);
        let err = resolve(&ts, &AlgebraicType::Ref(AlgebraicTypeRef(0))).unwrap_err();
        assert!(
            matches!(
                err,
                TypeError::TooDeep {
                    limit: MAX_TYPE_DEPTH,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = resolve(&ts, &AlgebraicType::Ref(AlgebraicTypeRef(7))).unwrap_err();
        assert_eq!(
            err,
            TypeError::RefOutOfRange {
                reference: 7,
                len: 2
            }
        );
        let bad = Typespace::new(vec![AlgebraicType::array(AlgebraicType::Ref(
            AlgebraicTypeRef(3),
        ))]);
        assert_eq!(
            check_typespace(&bad),
            Err((
                0,
                TypeError::RefOutOfRange {
                    reference: 3,
                    len: 1
                }
            ))
        );
        assert_eq!(check_typespace(&ts), Ok(()));
    }

    // Protects the structural recognition of ScheduleAt and Option, which
    // must agree with what `spacetimedb-sats` itself builds.
    #[test]
    fn recognises_special_types() {
        assert!(is_schedule_at(&schedule_at()));
        assert!(is_schedule_at(&spacetimedb_lib::ScheduleAt::get_type()));
        assert!(!is_schedule_at(&AlgebraicType::timestamp()));
        let opt = AlgebraicType::option(AlgebraicType::U8);
        assert_eq!(option_inner(&opt), Some(&AlgebraicType::U8));
        assert_eq!(option_inner(&schedule_at()), None);
        assert!(is_plain_enum(&AlgebraicType::simple_enum(
            ["A", "B"].into_iter()
        )));
        assert!(!is_plain_enum(&opt));
    }
}
