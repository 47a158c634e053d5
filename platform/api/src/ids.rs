//! Id newtypes: every id is its own type, made by one macro, so a bare `u64`
//! never stands for something that has a name.
//!
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
