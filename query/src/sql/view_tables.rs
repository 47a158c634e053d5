//! Names of the storage tables that hold materialised views.
//!
//! A view appears to clients as a table named after the view (its canonical
//! name). The host keeps each materialisation in a storage table of its own:
//! `<view>@` for an anonymous view, `<view>@<sender identity hex>` for a
//! sender-aware view (one per caller). `@` never occurs in module names, so
//! these names cannot collide with module tables, and SQL never resolves a
//! name containing `@` as written: a caller reaches the materialisations only
//! through the view's own name, and only its own.

use spacetimedb_lib::Identity;

/// Separates the view name from the sender part.
pub const SEPARATOR: char = '@';

/// The table holding anonymous view `view`.
pub fn anonymous(view: &str) -> String {
    format!("{view}{SEPARATOR}")
}

/// The table holding sender-aware view `view` for `sender`.
pub fn per_sender(view: &str, sender: Identity) -> String {
    format!("{view}{SEPARATOR}{}", sender.to_hex())
}

/// True if `table` holds a materialised view.
pub fn is_view_table(table: &str) -> bool {
    table.contains(SEPARATOR)
}

/// True if `table` holds one caller's materialisation of a sender-aware view.
pub fn is_per_sender(table: &str) -> bool {
    table
        .split_once(SEPARATOR)
        .is_some_and(|(_, sender)| !sender.is_empty())
}

/// The name clients know a table by: the view's name for a view table, the
/// table's own name otherwise.
pub fn client_name(table: &str) -> &str {
    table.split_once(SEPARATOR).map_or(table, |(view, _)| view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_table_names_round_trip_to_the_view_name() {
        let sender = Identity::from_byte_array([7; 32]);
        let anon = anonymous("note_count");
        let mine = per_sender("my_notes", sender);
        assert_eq!(anon, "note_count@");
        assert_eq!(mine, format!("my_notes@{}", sender.to_hex()));
        assert!(is_view_table(&anon) && is_view_table(&mine) && !is_view_table("note"));
        assert!(!is_per_sender(&anon) && is_per_sender(&mine) && !is_per_sender("note"));
        assert_eq!(client_name(&anon), "note_count");
        assert_eq!(client_name(&mine), "my_notes");
        assert_eq!(client_name("note"), "note");
    }
}
