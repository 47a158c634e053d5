//! Id newtypes: every id is its own type, made by one macro, so a bare `u64`
//! never stands for something that has a name.
//!
//! Also the one UUIDv4 formatting and the secure random bytes ids are made of.
//! Only ids some crate uses live here; the platform's ids (databases,
//! hosts, accounts, lease generations) join when the code that needs them
//! does. Identities and connection ids of the client protocol are the sats
//! `Identity` and `ConnectionId` types.

/// Declares a `Copy` newtype over an unsigned integer with ordering, `Display`
/// and explicit conversions (no `From<u64>`: constructing an id is deliberate).
macro_rules! id_newtype {
    ($(#[$meta:meta])* $name:ident($inner:ty)) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
        pub struct $name(pub $inner);

        impl $name {
            /// The raw integer, for formats and wire messages.
            pub const fn get(self) -> $inner {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id_newtype!(
    /// Position of a committed transaction in a database's commit log.
    /// Offsets are dense and start at 0; offset `n` is the `n+1`-th record.
    TxOffset(u64)
);

impl TxOffset {
    /// The offset that follows this one.
    pub const fn next(self) -> TxOffset {
        TxOffset(self.0 + 1)
    }
}

/// A random UUIDv4 in its text form.
pub fn uuid_v4() -> String {
    uuid_v4_from(random_bytes::<16>())
}

/// The UUIDv4 text form of 16 random bytes (their version and variant bits
/// are set): the one formatting of the workspace, for callers with their own
/// random source.
pub fn uuid_v4_from(random: [u8; 16]) -> String {
    let mut b = random;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::manifest::to_hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `N` bytes from the system's secure random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).expect("the system random source works");
    bytes
}

#[cfg(test)]
mod uuid_tests {
    use super::*;

    // Protects the one UUIDv4 formatting: 8-4-4-4-12 lowercase hex with the
    // version nibble 4 and the variant bits 10, whatever the random bytes.
    #[test]
    fn uuid_v4_sets_version_and_variant() {
        assert_eq!(
            uuid_v4_from([0xff; 16]),
            "ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
        assert_eq!(
            uuid_v4_from([0; 16]),
            "00000000-0000-4000-8000-000000000000"
        );
        let random = uuid_v4();
        assert_eq!(random.len(), 36);
        assert_eq!(&random[14..15], "4");
    }
}
