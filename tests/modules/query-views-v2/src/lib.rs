//! A compatible update of `query-views` (same tables and views, plus the
//! `badge` table and the `badges` view): its `fragile` view traps once the
//! `flag` table holds a row, so publishing it over a database whose
//! materialised `fragile` would trap must be refused.

include!("../../query-views/src/common.rs");

/// New in v2: adding a table is an automatic migration.
#[table(accessor = badge, public)]
pub struct Badge {
    #[primary_key]
    id: u32,
}

/// New in v2.
#[view(accessor = badges, public)]
pub fn badges(ctx: &AnonymousViewContext) -> impl Query<Badge> {
    ctx.from.badge()
}

/// Open guilds; traps when `flag` holds a row.
#[view(accessor = fragile, public)]
pub fn fragile(ctx: &AnonymousViewContext) -> Vec<Guild> {
    if ctx.db.flag().count() > 0 {
        panic!("fragile view trapped");
    }
    ctx.db.guild().rank().filter(0u32..).filter(|g| g.open).collect()
}
