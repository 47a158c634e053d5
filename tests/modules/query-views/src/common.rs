// The part of the `query-views` module that `query-views-v2` shares
// (included by both, so a republish between them is a compatible update).
//
// Players belong to guilds. Query-builder views (`impl Query<T>`) cover
// every shape the `spacetimedb` 2.10.1 query builder produces: a plain
// filter, a left semijoin, a right semijoin, filters on both sides of a
// right semijoin, sender-aware and anonymous; `open_guilds` and
// `online_players` are views over primary-keyed tables that clients join
// with each other and with tables. Procedural views log each evaluation,
// so tests can count them. A reducer, a scheduled reducer and a procedure
// write the tables.

use spacetimedb::{
    procedure, reducer, table, view, AnonymousViewContext, Identity, ProcedureContext, Query,
    ReducerContext, ScheduleAt, Table, ViewContext,
};

#[table(accessor = player, public)]
#[derive(Clone)]
pub struct Player {
    #[primary_key]
    id: u32,
    name: String,
    online: bool,
    #[index(btree)]
    guild: u32,
    #[index(btree)]
    owner: Identity,
}

#[table(accessor = guild, public)]
#[derive(Clone)]
pub struct Guild {
    #[primary_key]
    id: u32,
    #[index(btree)]
    rank: u32,
    open: bool,
}

/// When it holds a row, v2's `fragile` view traps.
#[table(accessor = flag, public)]
pub struct Flag {
    #[primary_key]
    id: u32,
}

/// Schedule of `scheduled_set_online`.
#[table(accessor = online_schedule, scheduled(scheduled_set_online))]
pub struct OnlineSchedule {
    #[primary_key]
    #[auto_inc]
    scheduled_id: u64,
    scheduled_at: ScheduleAt,
    player: u32,
    online: bool,
}

fn set_online_in(ctx: &ReducerContext, id: u32, online: bool) -> Result<(), String> {
    let mut row = ctx
        .db
        .player()
        .id()
        .find(id)
        .ok_or_else(|| format!("no player {id}"))?;
    row.online = online;
    ctx.db.player().id().update(row);
    Ok(())
}

#[reducer]
pub fn add_player(
    ctx: &ReducerContext,
    id: u32,
    name: String,
    online: bool,
    guild: u32,
) -> Result<(), String> {
    ctx.db
        .player()
        .try_insert(Player {
            id,
            name,
            online,
            guild,
            owner: ctx.sender(),
        })
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[reducer]
pub fn set_online(ctx: &ReducerContext, id: u32, online: bool) -> Result<(), String> {
    set_online_in(ctx, id, online)
}

#[reducer]
pub fn set_guild(ctx: &ReducerContext, id: u32, guild: u32) -> Result<(), String> {
    let mut row = ctx
        .db
        .player()
        .id()
        .find(id)
        .ok_or_else(|| format!("no player {id}"))?;
    row.guild = guild;
    ctx.db.player().id().update(row);
    Ok(())
}

#[reducer]
pub fn delete_player(ctx: &ReducerContext, id: u32) {
    ctx.db.player().id().delete(id);
}

#[reducer]
pub fn add_guild(ctx: &ReducerContext, id: u32, rank: u32, open: bool) -> Result<(), String> {
    ctx.db
        .guild()
        .try_insert(Guild { id, rank, open })
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[reducer]
pub fn set_guild_open(ctx: &ReducerContext, id: u32, open: bool) -> Result<(), String> {
    let mut row = ctx
        .db
        .guild()
        .id()
        .find(id)
        .ok_or_else(|| format!("no guild {id}"))?;
    row.open = open;
    ctx.db.guild().id().update(row);
    Ok(())
}

#[reducer]
pub fn delete_guild(ctx: &ReducerContext, id: u32) {
    ctx.db.guild().id().delete(id);
}

#[reducer]
pub fn set_flag(ctx: &ReducerContext) {
    if ctx.db.flag().id().find(0).is_none() {
        ctx.db.flag().insert(Flag { id: 0 });
    }
}

/// Schedules `scheduled_set_online(id, online)` to run now.
#[reducer]
pub fn schedule_set_online(ctx: &ReducerContext, id: u32, online: bool) {
    ctx.db.online_schedule().insert(OnlineSchedule {
        scheduled_id: 0,
        scheduled_at: ScheduleAt::Time(ctx.timestamp),
        player: id,
        online,
    });
}

#[reducer]
pub fn scheduled_set_online(ctx: &ReducerContext, row: OnlineSchedule) -> Result<(), String> {
    set_online_in(ctx, row.player, row.online)
}

/// Sets a player's `online` in a transaction of the procedure's own.
#[procedure]
pub fn set_online_proc(ctx: &mut ProcedureContext, id: u32, online: bool) {
    ctx.with_tx(|tx| {
        if let Some(mut row) = tx.db.player().id().find(id) {
            row.online = online;
            tx.db.player().id().update(row);
        }
    });
}

// ---------------------------------------------------------------------------
// Query-builder views
// ---------------------------------------------------------------------------

/// Plain filter.
#[view(accessor = online_players, public)]
pub fn online_players(ctx: &AnonymousViewContext) -> impl Query<Player> {
    ctx.from.player().r#where(|p| p.online)
}

/// Left semijoin: players whose guild exists.
#[view(accessor = players_in_guilds, public)]
pub fn players_in_guilds(ctx: &AnonymousViewContext) -> impl Query<Player> {
    ctx.from
        .player()
        .left_semijoin(ctx.from.guild(), |p, g| p.guild.eq(g.id))
}

/// Left semijoin with filters on the left before and after the join.
#[view(accessor = online_members, public)]
pub fn online_members(ctx: &AnonymousViewContext) -> impl Query<Player> {
    ctx.from
        .player()
        .r#where(|p| p.online)
        .left_semijoin(ctx.from.guild(), |p, g| p.guild.eq(g.id))
        .r#where(|p| p.name.ne("nobody".to_string()))
}

/// Right semijoin: guilds that have a player.
#[view(accessor = guilds_with_players, public)]
pub fn guilds_with_players(ctx: &AnonymousViewContext) -> impl Query<Guild> {
    ctx.from
        .player()
        .right_semijoin(ctx.from.guild(), |p, g| p.guild.eq(g.id))
}

/// Right semijoin with filters on both sides.
#[view(accessor = open_guilds_of_online_players, public)]
pub fn open_guilds_of_online_players(ctx: &AnonymousViewContext) -> impl Query<Guild> {
    ctx.from
        .player()
        .r#where(|p| p.online)
        .right_semijoin(ctx.from.guild(), |p, g| p.guild.eq(g.id))
        .r#where(|g| g.open.eq(true).and(g.rank.gte(2)))
}

/// A filter over a primary-keyed table (joined by clients).
#[view(accessor = open_guilds, public)]
pub fn open_guilds(ctx: &AnonymousViewContext) -> impl Query<Guild> {
    ctx.from.guild().r#where(|g| g.open)
}

/// Sender-aware filter: the caller's players.
#[view(accessor = my_players, public)]
pub fn my_players(ctx: &ViewContext) -> impl Query<Player> {
    ctx.from.player().r#where(|p| p.owner.eq(ctx.sender()))
}

/// Sender-aware right semijoin: the guilds of the caller's players.
#[view(accessor = my_guilds, public)]
pub fn my_guilds(ctx: &ViewContext) -> impl Query<Guild> {
    ctx.from
        .player()
        .r#where(|p| p.owner.eq(ctx.sender()))
        .right_semijoin(ctx.from.guild(), |p, g| p.guild.eq(g.id))
}

// ---------------------------------------------------------------------------
// Procedural views that log each evaluation
// ---------------------------------------------------------------------------

/// Reads one key of `player`'s primary key.
#[view(accessor = first_player, public)]
pub fn first_player(ctx: &ViewContext) -> Option<Player> {
    log::info!("first_player evaluated");
    ctx.db.player().id().find(1)
}

/// Reads one key of `guild`'s `rank` index.
#[view(accessor = rank_three, public)]
pub fn rank_three(ctx: &AnonymousViewContext) -> Vec<Guild> {
    log::info!("rank_three evaluated");
    ctx.db.guild().rank().filter(3u32).collect()
}

/// Every player, highest id first: the order a view returns is the order
/// `SELECT *` over it shows.
#[view(accessor = players_by_id_desc, public)]
pub fn players_by_id_desc(ctx: &AnonymousViewContext) -> Vec<Player> {
    let mut rows: Vec<Player> = ctx.db.player().guild().filter(0u32..).collect();
    rows.sort_by(|a, b| b.id.cmp(&a.id));
    rows
}
