//! Database names: valid DNS labels, so every database is reachable at
//! `<name>.<domain>`; unique platform-wide (the store's UNIQUE constraint).

use crate::error::Error;

/// Longest DNS label (RFC 1035).
pub const DATABASE_NAME_BYTES_MAX: usize = 63;

/// Checks that `name` is a lowercase DNS label: 1 to 63 of `a-z`, `0-9` and
/// `-`, neither starting nor ending with `-`. Uppercase is refused rather
/// than folded, so a name has one spelling.
pub fn validate_database_name(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        Some("a name is 1 to 63 characters")
    } else if name.len() > DATABASE_NAME_BYTES_MAX {
        Some("a name is at most 63 characters (a DNS label)")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("a name holds only lowercase letters a-z, digits and '-'")
    } else if name.starts_with('-') || name.ends_with('-') {
        Some("a name neither starts nor ends with '-'")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Protects the DNS label rule, including its edges.
    #[test]
    fn names_are_dns_labels() {
        for good in ["a", "chat", "my-app-2", "0", &"a".repeat(63)] {
            assert!(validate_database_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "My-App",
            "a.b",
            "a_b",
            "é",
            "a b",
            &"a".repeat(64),
        ] {
            let error = validate_database_name(bad).expect_err(bad);
            assert!(matches!(error, Error::InvalidName { .. }), "{bad}: {error}");
        }
    }
}
