//! Test module `names`: tables, columns, reducers and procedures whose
//! source names differ from their canonical (snake-case) names, and one
//! explicit `name = "..."` override, so that every place a name arrives can
//! be tested with both forms (`add_u8` / `add_u_8`, `t1` / `t_1`,
//! `playerID2` / `player_id_2`).
#![allow(non_snake_case)]

use spacetimedb::{
    procedure, reducer, table, view, AnonymousViewContext, ProcedureContext, Query, ReducerContext,
    Table,
};

/// Canonical name `t_1`; columns `id`, `player_id_2`, `already_snake`.
#[table(accessor = t1, public)]
pub struct T1 {
    #[primary_key]
    #[auto_inc]
    id: u64,
    #[index(btree)]
    playerID2: u32,
    already_snake: String,
}

/// Canonical name `http_server`; column `port_number`.
#[table(accessor = HTTPServer, public)]
pub struct HttpServer {
    portNumber: u16,
}

/// Canonical name `CustomName` (explicit), column `v`.
#[table(accessor = custom, name = "CustomName", public)]
pub struct Custom {
    v: u32,
}

/// Canonical name `add_u_8`.
#[reducer]
pub fn add_u8(ctx: &ReducerContext, playerID2: u32, already_snake: String) {
    ctx.db.t1().insert(T1 {
        id: 0,
        playerID2,
        already_snake,
    });
}

/// Canonical name `set_http_port`.
#[reducer]
pub fn setHTTPPort(ctx: &ReducerContext, portNumber: u16) {
    ctx.db.HTTPServer().insert(HttpServer { portNumber });
}

/// Canonical name `explicitReducer` (explicit).
#[reducer(name = "explicitReducer")]
pub fn explicit_reducer(ctx: &ReducerContext, v: u32) {
    ctx.db.custom().insert(Custom { v });
}

/// Canonical name `double_u_8`.
#[procedure]
pub fn double_u8(_ctx: &mut ProcedureContext, x: u8) -> u16 {
    u16::from(x) * 2
}

/// Canonical name `t_1_high`: a query-builder view, whose SQL names the
/// table and column by their source names (`t1`, `playerID2`).
#[view(accessor = t1_high, public)]
pub fn t1_high(ctx: &AnonymousViewContext) -> impl Query<T1> {
    ctx.from.t1().r#where(|t| t.playerID2.gt(7u32))
}
