//! Ids of the control plane's records: text made by the application, a
//! prefix plus 16 random bytes in hex (`acc_…`, `ses_…`, `tok_…`, `db_…`).

use rand::RngCore;

/// Declares a text id newtype with its prefix. Constructing one from a string
/// is deliberate (`from_stored`), never a silent `From`.
macro_rules! text_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh random id.
            pub(crate) fn generate() -> $name {
                $name(format!("{}{}", $prefix, random_hex(16)))
            }

            /// An id read from the store or from a request.
            pub fn from_stored(text: impl Into<String>) -> $name {
                $name(text.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Whether `text` has this id's shape (prefix and 32 hex digits).
            pub fn is_well_formed(text: &str) -> bool {
                text.strip_prefix($prefix).is_some_and(|hex| {
                    hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// An account; its identity is `Identity::from_claims(PLATFORM_ISSUER, id)`.
    AccountId,
    "acc_"
);
text_id!(
    /// A login session (not its secret, which is never stored).
    SessionId,
    "ses_"
);
text_id!(
    /// An API token (the token's `jti`).
    TokenId,
    "tok_"
);
text_id!(
    /// A database; stable across renames.
    DatabaseId,
    "db_"
);
text_id!(
    /// An operator's invitation to sign up.
    InviteId,
    "inv_"
);
text_id!(
    /// An audit log entry.
    AuditId,
    "aud_"
);

/// `bytes` random bytes from the operating system's generator, in hex.
pub(crate) fn random_hex(bytes: usize) -> String {
    hex::encode(random_bytes(bytes))
}

/// `bytes` random bytes from `rand`'s thread-local generator (a CSPRNG seeded
/// and reseeded from the operating system).
pub(crate) fn random_bytes(bytes: usize) -> Vec<u8> {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    buffer
}

#[cfg(test)]
mod tests {
    use super::*;

    // Protects the id shape of the design (prefix + 16 bytes in hex).
    #[test]
    fn generated_ids_are_well_formed_and_distinct() {
        let a = AccountId::generate();
        let b = AccountId::generate();
        assert_ne!(a, b);
        assert!(AccountId::is_well_formed(a.as_str()), "{a}");
        assert!(!AccountId::is_well_formed(TokenId::generate().as_str()));
        assert!(!AccountId::is_well_formed("acc_ABCDEF"));
    }
}
