//! Test module `migrate-v2`: `migrate-v1` with every change the reference
//! migrates automatically (see `migrate-v1`).

use spacetimedb::{reducer, table, ReducerContext, SpacetimeType, Table};

#[derive(SpacetimeType, Clone, Copy, PartialEq, Debug)]
pub enum Color {
    Red,
    Green,
    Blue,
}

#[table(accessor = paint, public)]
pub struct Paint {
    #[primary_key]
    id: u32,
    color: Color,
}

#[table(accessor = counter, public)]
pub struct Counter {
    #[auto_inc]
    n: u64,
    label: String,
}

/// No primary key any more: rows may repeat a key.
#[table(accessor = keyed, public)]
pub struct Keyed {
    key: u32,
    value: String,
}

#[table(accessor = ping, public, event)]
pub struct Ping {
    seq: u64,
    body: String,
}

#[reducer]
pub fn add_paint(ctx: &ReducerContext, id: u32, blue: bool) {
    let color = if blue { Color::Blue } else { Color::Red };
    ctx.db.paint().insert(Paint { id, color });
}

#[reducer]
pub fn add_counter(ctx: &ReducerContext, label: String) {
    ctx.db.counter().insert(Counter { n: 0, label });
}

#[reducer]
pub fn add_keyed(ctx: &ReducerContext, key: u32, value: String) {
    ctx.db.keyed().insert(Keyed { key, value });
}

#[reducer]
pub fn send_ping(ctx: &ReducerContext, seq: u64, body: String) {
    ctx.db.ping().insert(Ping { seq, body });
}
