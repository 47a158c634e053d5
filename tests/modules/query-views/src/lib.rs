//! Query-builder views and views' observable behaviour (issue 13 items 2
//! and 7); see `common.rs`. This version's `fragile` view never fails;
//! `query-views-v2` is a compatible update whose `fragile` traps once the
//! `flag` table holds a row.

include!("common.rs");

/// Open guilds, evaluated by the module.
#[view(accessor = fragile, public)]
pub fn fragile(ctx: &AnonymousViewContext) -> Vec<Guild> {
    ctx.db.guild().rank().filter(0u32..).filter(|g| g.open).collect()
}
