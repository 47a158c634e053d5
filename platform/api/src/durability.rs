//! When a committed transaction counts as durable: a database's durability
//! mode (docs/design/object-storage.md).

use std::fmt;
use std::str::FromStr;

/// A database's durability mode, chosen by the control plane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Durable at the fsync on the host; the object store gets it within
    /// the shipping interval, so losing the host loses at most that window.
    #[default]
    Local,
    /// Durable only once the object store acknowledged bytes holding it
    /// (group commit across the uploads): losing the host loses nothing
    /// reported durable.
    ObjectStore,
}

/// What the control plane chose for a database and its hosts apply;
/// `None` leaves each to the host's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatabaseSettings {
    pub durability: Option<Durability>,
    /// Days of point-in-time history kept in the object store (0 keeps
    /// everything; at most [`crate::limits::RETENTION_DAYS_MAX`]).
    pub retention_days: Option<u32>,
}

impl Durability {
    /// Every mode, in the order help texts list them.
    pub const ALL: [Durability; 2] = [Durability::Local, Durability::ObjectStore];

    /// The name used by flags, configuration and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Local => "local",
            Durability::ObjectStore => "object-store",
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Durability, String> {
        Durability::ALL
            .into_iter()
            .find(|mode| mode.as_str() == s)
            .ok_or_else(|| format!("unknown durability mode {s:?}: use `local` or `object-store`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for mode in Durability::ALL {
            assert_eq!(mode.as_str().parse::<Durability>(), Ok(mode));
        }
        let refused = "objectstore".parse::<Durability>().unwrap_err();
        assert!(refused.contains("`local` or `object-store`"), "{refused}");
        assert_eq!(Durability::default(), Durability::Local);
    }
}
