//! Test module `rls-v2`: the next version of `rls` with one visibility
//! filter changed (everyone also sees the memberships of team 0), so
//! republishing `rls` as `rls-v2` changes the rules and nothing else.

use spacetimedb::{client_visibility_filter, reducer, table, Filter, Identity, ReducerContext, Table};

#[table(accessor = doc, public)]
pub struct Doc {
    #[primary_key]
    #[auto_inc]
    id: u64,
    #[index(btree)]
    owner: Identity,
    #[index(btree)]
    team: u32,
    title: String,
}

#[table(accessor = member, public)]
pub struct Member {
    #[primary_key]
    #[auto_inc]
    id: u64,
    #[index(btree)]
    identity: Identity,
    #[index(btree)]
    team: u32,
}

#[table(accessor = notice, public)]
pub struct Notice {
    #[primary_key]
    #[auto_inc]
    id: u64,
    text: String,
}

/// A client's own documents.
#[client_visibility_filter]
const OWN_DOCS: Filter = Filter::Sql("SELECT * FROM doc WHERE owner = :sender");

/// Documents of the client's teams.
#[client_visibility_filter]
const TEAM_DOCS: Filter = Filter::Sql(
    "SELECT doc.* FROM doc JOIN member ON doc.team = member.team WHERE member.identity = :sender",
);

/// A client's own memberships, and everyone's in team 0.
#[client_visibility_filter]
const OWN_AND_LOBBY_MEMBERSHIPS: Filter =
    Filter::Sql("SELECT * FROM member WHERE identity = :sender OR team = 0");

#[reducer]
pub fn add_doc(ctx: &ReducerContext, team: u32, title: String) {
    ctx.db.doc().insert(Doc {
        id: 0,
        owner: ctx.sender(),
        team,
        title,
    });
}

#[reducer]
pub fn join_team(ctx: &ReducerContext, team: u32) {
    ctx.db.member().insert(Member {
        id: 0,
        identity: ctx.sender(),
        team,
    });
}

#[reducer]
pub fn leave_team(ctx: &ReducerContext, team: u32) {
    let mine: Vec<Member> = ctx
        .db
        .member()
        .identity()
        .filter(ctx.sender())
        .filter(|m| m.team == team)
        .collect();
    for m in mine {
        ctx.db.member().id().delete(m.id);
    }
}

#[reducer]
pub fn post_notice(ctx: &ReducerContext, text: String) {
    ctx.db.notice().insert(Notice { id: 0, text });
}
