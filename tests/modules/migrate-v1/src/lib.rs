//! Test module `migrate-v1`: the first version of a schema whose next
//! version (`migrate-v2`) makes every change the reference migrates
//! automatically: an enum variant appended to a column's type, a sequence
//! added to a column, a primary key removed, and an event table's columns
//! changed.

use spacetimedb::{reducer, table, ReducerContext, SpacetimeType, Table};

#[derive(SpacetimeType, Clone, Copy, PartialEq, Debug)]
pub enum Color {
    Red,
    Green,
}

/// `color` gains the variant `Blue` in v2.
#[table(accessor = paint, public)]
pub struct Paint {
    #[primary_key]
    id: u32,
    color: Color,
}

/// `n` becomes `#[auto_inc]` in v2; rows keep 0 in it (the reference
/// refuses a new sequence over values in its range).
#[table(accessor = counter, public)]
pub struct Counter {
    n: u64,
    label: String,
}

/// `key` stops being the primary key in v2.
#[table(accessor = keyed, public)]
pub struct Keyed {
    #[primary_key]
    key: u32,
    value: String,
}

/// An event table whose columns all change in v2.
#[table(accessor = ping, public, event)]
pub struct Ping {
    text: String,
}

#[reducer]
pub fn add_paint(ctx: &ReducerContext, id: u32, green: bool) {
    let color = if green { Color::Green } else { Color::Red };
    ctx.db.paint().insert(Paint { id, color });
}

#[reducer]
pub fn add_counter(ctx: &ReducerContext, label: String) {
    ctx.db.counter().insert(Counter { n: 0, label });
}

#[reducer]
pub fn add_counter_n(ctx: &ReducerContext, n: u64, label: String) {
    ctx.db.counter().insert(Counter { n, label });
}

#[reducer]
pub fn add_keyed(ctx: &ReducerContext, key: u32, value: String) {
    ctx.db.keyed().insert(Keyed { key, value });
}

#[reducer]
pub fn send_ping(ctx: &ReducerContext, text: String) {
    ctx.db.ping().insert(Ping { text });
}
