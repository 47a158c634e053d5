//! Passwords: the strength rule and argon2id hashing.
//!
//! Owns: [`check_password_rule`], hashing with the `argon2` crate's defaults
//! (argon2id), verification, and the fixed dummy hash that unknown emails are
//! verified against so that timing does not tell whether an account exists.
//! Hashing is CPU work: callers run it on a blocking thread.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::error::Error;
use crate::ids::random_bytes;

/// Shortest password, in characters.
pub const PASSWORD_CHARS_MIN: usize = 10;
/// Longest password, in bytes (hashing cost is bounded).
pub const PASSWORD_BYTES_MAX: usize = 1024;

/// Checks the password rule: at least 10 characters, at most 1024 bytes, not
/// all of one character class (lowercase, uppercase, digits, others), and not
/// the email itself.
pub fn check_password_rule(password: &str, email: &str) -> Result<(), Error> {
    if password.chars().count() < PASSWORD_CHARS_MIN {
        return Err(Error::WeakPassword("a password has at least 10 characters"));
    }
    if password.len() > PASSWORD_BYTES_MAX {
        return Err(Error::WeakPassword("a password has at most 1024 bytes"));
    }
    let class = |c: char| {
        if c.is_lowercase() {
            0
        } else if c.is_uppercase() {
            1
        } else if c.is_numeric() {
            2
        } else {
            3
        }
    };
    let mut chars = password.chars().map(class);
    let first = chars.next().expect("the password is not empty");
    if chars.all(|c| c == first) {
        return Err(Error::WeakPassword(
            "a password mixes at least two kinds of characters (lowercase, uppercase, digits, others)",
        ));
    }
    if password.trim().eq_ignore_ascii_case(email.trim()) {
        return Err(Error::WeakPassword("a password is not the email"));
    }
    Ok(())
}

/// The argon2id hash of `password` (PHC string) with a fresh random salt.
pub(crate) fn hash_password(password: &str) -> Result<String, Error> {
    let salt = SaltString::encode_b64(&random_bytes(16))
        .map_err(|e| Error::Internal(format!("make a password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Internal(format!("hash a password: {e}")))
}

/// Whether `password` matches the stored PHC hash. `None` (no such account)
/// runs the same work against a dummy hash and answers false. The comparison
/// inside `argon2` is constant time.
pub(crate) fn verify_password(password: &str, stored: Option<&str>) -> bool {
    let (hash, known) = match stored {
        Some(stored) => (stored, true),
        None => (dummy_hash(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    matches && known
}

/// A hash of a password nobody knows, made once per process.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password(&crate::ids::random_hex(32)).expect("hashing a fixed-size password works")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Protects the password rule of the design: length, classes, not the email.
    #[test]
    fn the_password_rule() {
        assert!(check_password_rule("correct horse 7", "a@b.example").is_ok());
        assert!(check_password_rule("Abcdefghij", "a@b.example").is_ok());
        for weak in [
            "short1A",
            "abcdefghijk",
            "ABCDEFGHIJK",
            "12345678901",
            "!!!!!!!!!!!!",
        ] {
            assert!(
                matches!(
                    check_password_rule(weak, "a@b.example"),
                    Err(Error::WeakPassword(_))
                ),
                "{weak}"
            );
        }
        assert!(matches!(
            check_password_rule("Ann@Example.COM", "ann@example.com"),
            Err(Error::WeakPassword(_))
        ));
        assert!(matches!(
            check_password_rule(&"aA".repeat(600), "x@y.example"),
            Err(Error::WeakPassword(_))
        ));
    }

    // Protects hashing and verification, and that the dummy never matches.
    #[test]
    fn hashes_verify_only_their_password() {
        let hash = hash_password("correct horse 7").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse 7", Some(&hash)));
        assert!(!verify_password("correct horse 8", Some(&hash)));
        assert!(!verify_password("correct horse 7", None));
        assert!(!verify_password("x", Some("not a hash")));
    }
}
