//! Typing SQL literals against column types (client-protocol.md §6.1).
//!
//! Owns: which column types SQL can compare, their display names in errors,
//! and turning a [`Literal`] into an [`AlgebraicValue`] of a given column type
//! (range-checked integers up to 256 bits, floats, strings, bytes, Identity,
//! ConnectionId, Timestamp as RFC 3339, UUID).
//! Does not own: where literals appear (`sql::check`).

use spacetimedb_sats::{i256, u256, AlgebraicType, AlgebraicValue};

use super::{Literal, SqlError};

/// Integer literals may not expand to more digits than this (u256 has 78).
const MAX_DIGITS: usize = 100;

/// A short name of `ty` for error messages.
pub fn type_name(ty: &AlgebraicType) -> String {
    use AlgebraicType as T;
    match ty {
        T::Bool => "bool".into(),
        T::I8 => "i8".into(),
        T::U8 => "u8".into(),
        T::I16 => "i16".into(),
        T::U16 => "u16".into(),
        T::I32 => "i32".into(),
        T::U32 => "u32".into(),
        T::I64 => "i64".into(),
        T::U64 => "u64".into(),
        T::I128 => "i128".into(),
        T::U128 => "u128".into(),
        T::I256 => "i256".into(),
        T::U256 => "u256".into(),
        T::F32 => "f32".into(),
        T::F64 => "f64".into(),
        T::String => "string".into(),
        _ if ty.is_bytes() => "bytes".into(),
        _ if ty.is_identity() => "Identity".into(),
        _ if ty.is_connection_id() => "ConnectionId".into(),
        _ if ty.is_timestamp() => "Timestamp".into(),
        _ if ty.is_uuid() => "Uuid".into(),
        _ if ty.is_time_duration() => "TimeDuration".into(),
        T::Array(_) => "array".into(),
        T::Product(_) => "product".into(),
        T::Sum(_) => "sum".into(),
        T::Ref(_) => "type reference".into(),
    }
}

/// Whether SQL may compare values of type `ty`.
pub fn is_comparable(ty: &AlgebraicType) -> bool {
    ty.is_bool()
        || ty.is_integer()
        || ty.is_float()
        || ty.is_string()
        || ty.is_bytes()
        || ty.is_identity()
        || ty.is_connection_id()
        || ty.is_timestamp()
        || ty.is_uuid()
}

fn literal_kind(lit: &Literal) -> &'static str {
    match lit {
        Literal::Number(_) => "number",
        Literal::String(_) => "string",
        Literal::Hex(_) => "hex literal",
        Literal::Bool(_) => "bool",
    }
}

fn mismatch(ty: &AlgebraicType, lit: &Literal) -> SqlError {
    SqlError(format!(
        "cannot compare {} with {}",
        type_name(ty),
        literal_kind(lit)
    ))
}

/// The value `lit` denotes at column type `ty`.
pub fn to_value(lit: &Literal, ty: &AlgebraicType) -> Result<AlgebraicValue, SqlError> {
    use AlgebraicType as T;
    if !is_comparable(ty) {
        return Err(SqlError(format!(
            "values of type {} cannot be used in SQL",
            type_name(ty)
        )));
    }
    match (ty, lit) {
        (T::String, _) => Ok(AlgebraicValue::String(literal_text(lit).into())),
        (T::Bool, Literal::Bool(b)) => Ok(AlgebraicValue::Bool(*b)),
        (T::F32, Literal::Number(n)) => n
            .parse::<f32>()
            .ok()
            .filter(|f| f.is_finite())
            .map(AlgebraicValue::from)
            .ok_or_else(|| SqlError(format!("`{n}` is not a valid f32"))),
        (T::F64, Literal::Number(n)) => n
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(AlgebraicValue::from)
            .ok_or_else(|| SqlError(format!("`{n}` is not a valid f64"))),
        (_, Literal::Number(n)) if ty.is_integer() => integer(n, ty),
        _ if ty.is_bytes() => match lit {
            Literal::Hex(h) => Ok(AlgebraicValue::Bytes(hex_bytes(h)?.into())),
            _ => Err(mismatch(ty, lit)),
        },
        _ if ty.is_identity() => {
            let hex = fixed_hex(lit, 64, "Identity", ty)?;
            let v = u256::from_str_radix(&hex, 16)
                .map_err(|_| SqlError(format!("`{hex}` is not a valid Identity")))?;
            Ok(AlgebraicValue::product([AlgebraicValue::U256(Box::new(v))]))
        }
        _ if ty.is_connection_id() => {
            let hex = fixed_hex(lit, 32, "ConnectionId", ty)?;
            let v = u128::from_str_radix(&hex, 16)
                .map_err(|_| SqlError(format!("`{hex}` is not a valid ConnectionId")))?;
            Ok(AlgebraicValue::product([AlgebraicValue::U128(v.into())]))
        }
        _ if ty.is_uuid() => {
            let hex = match lit {
                Literal::String(s) if s.len() == 36 => s.replace('-', ""),
                _ => fixed_hex(lit, 32, "Uuid", ty)?,
            };
            let v = (hex.len() == 32)
                .then(|| u128::from_str_radix(&hex, 16).ok())
                .flatten()
                .ok_or_else(|| SqlError(format!("`{}` is not a valid Uuid", literal_text(lit))))?;
            Ok(AlgebraicValue::product([AlgebraicValue::U128(v.into())]))
        }
        _ if ty.is_timestamp() => match lit {
            Literal::String(s) => {
                let micros = rfc3339_micros(s)
                    .ok_or_else(|| SqlError(format!("`{s}` is not an RFC 3339 timestamp")))?;
                Ok(AlgebraicValue::product([AlgebraicValue::I64(micros)]))
            }
            _ => Err(mismatch(ty, lit)),
        },
        _ => Err(mismatch(ty, lit)),
    }
}

/// The text of a literal when compared with a string column.
fn literal_text(lit: &Literal) -> String {
    match lit {
        Literal::Number(n) => n.clone(),
        Literal::String(s) => s.clone(),
        Literal::Hex(h) => h.clone(),
        Literal::Bool(b) => b.to_string(),
    }
}

/// `want` hex digits from a hex literal or a string of hex digits.
fn fixed_hex(
    lit: &Literal,
    want: usize,
    what: &str,
    ty: &AlgebraicType,
) -> Result<String, SqlError> {
    let hex = match lit {
        Literal::Hex(h) => h.as_str(),
        Literal::String(s) => s.strip_prefix("0x").unwrap_or(s),
        _ => return Err(mismatch(ty, lit)),
    };
    if hex.len() != want || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SqlError(format!(
            "a {what} literal needs {want} hex digits, got `{}`",
            hex.chars().take(80).collect::<String>()
        )));
    }
    Ok(hex.to_string())
}

fn hex_bytes(h: &str) -> Result<Vec<u8>, SqlError> {
    hex::decode(h).map_err(|_| SqlError(format!("`{h}` is not valid hex")))
}

/// Expands decimal/scientific text into a plain signed integer string, or
/// fails if it is not integral.
fn integral_digits(n: &str) -> Result<String, SqlError> {
    let not_int = || SqlError(format!("`{n}` is not an integer"));
    let (negative, body) = match n.as_bytes().first() {
        Some(b'-') => (true, &n[1..]),
        Some(b'+') => (false, &n[1..]),
        _ => (false, n),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (
            &body[..i],
            body[i + 1..].parse::<i64>().map_err(|_| not_int())?,
        ),
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(not_int());
    }
    let mut digits: String = format!("{int_part}{frac_part}");
    let point = int_part.len() as i64 + exponent;
    if point > MAX_DIGITS as i64 {
        if digits.bytes().all(|b| b == b'0') {
            return Ok("0".into());
        }
        return Err(SqlError(format!("`{n}` is out of range")));
    }
    if point < 0 {
        return if digits.bytes().all(|b| b == b'0') {
            Ok("0".into())
        } else {
            Err(not_int())
        };
    }
    let point = point as usize;
    if digits.len() < point {
        digits.extend(std::iter::repeat_n('0', point - digits.len()));
    }
    if digits[point..].bytes().any(|b| b != b'0') {
        return Err(not_int());
    }
    digits.truncate(point);
    let trimmed = digits.trim_start_matches('0');
    let trimmed = if trimmed.is_empty() { "0" } else { trimmed };
    if trimmed.len() > MAX_DIGITS {
        return Err(SqlError(format!("`{n}` is out of range")));
    }
    Ok(if negative && trimmed != "0" {
        format!("-{trimmed}")
    } else {
        trimmed.to_string()
    })
}

fn integer(n: &str, ty: &AlgebraicType) -> Result<AlgebraicValue, SqlError> {
    use AlgebraicType as T;
    let digits = integral_digits(n)?;
    let range = || SqlError(format!("`{n}` is out of range for {}", type_name(ty)));
    macro_rules! int {
        ($t:ty, $v:ident) => {
            digits
                .parse::<$t>()
                .map(AlgebraicValue::$v)
                .map_err(|_| range())
        };
    }
    match ty {
        T::I8 => int!(i8, I8),
        T::U8 => int!(u8, U8),
        T::I16 => int!(i16, I16),
        T::U16 => int!(u16, U16),
        T::I32 => int!(i32, I32),
        T::U32 => int!(u32, U32),
        T::I64 => int!(i64, I64),
        T::U64 => int!(u64, U64),
        T::I128 => digits
            .parse::<i128>()
            .map(|v| AlgebraicValue::I128(v.into()))
            .map_err(|_| range()),
        T::U128 => digits
            .parse::<u128>()
            .map(|v| AlgebraicValue::U128(v.into()))
            .map_err(|_| range()),
        T::I256 => i256::from_str_radix(&digits, 10)
            .map(|v| AlgebraicValue::I256(Box::new(v)))
            .map_err(|_| range()),
        T::U256 => u256::from_str_radix(&digits, 10)
            .map(|v| AlgebraicValue::U256(Box::new(v)))
            .map_err(|_| range()),
        _ => Err(range()),
    }
}

/// Microseconds since the Unix epoch of an RFC 3339 timestamp
/// (`YYYY-MM-DD[T ]HH:MM:SS[.frac](Z|±HH:MM)`).
pub fn rfc3339_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &s[start..i];
        let six: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
        micros = six.parse().ok()?;
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let m = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if *sign == b'+' {
                m
            } else {
                -m
            }
        }
        _ => return None,
    };
    // Days from civil (proleptic Gregorian).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset * 60;
    Some(secs * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Protects byte-string literals: plain hex digits of either case decode;
    // odd lengths, non-digits and a sign (which `u8::from_str_radix` took
    // as part of a pair) are refused with the literal in the message.
    #[test]
    fn hex_bytes_decodes_plain_hex_only() {
        assert_eq!(hex_bytes("0aFF").unwrap(), vec![0x0a, 0xff]);
        assert_eq!(hex_bytes("").unwrap(), Vec::<u8>::new());
        for bad in ["abc", "zz", "+f", "0é"] {
            let error = hex_bytes(bad).unwrap_err();
            assert!(error.0.contains(bad), "{bad}: {}", error.0);
        }
    }
}
