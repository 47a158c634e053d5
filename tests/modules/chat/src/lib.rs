//! Test module `chat`: users, channels and messages, with every lifecycle
//! reducer (`init`, `client_connected`, `client_disconnected`) and a scheduled
//! reducer that prunes old messages. The end-to-end workload of the runtime.

use std::time::Duration;

use spacetimedb::{
    reducer, table, Identity, ReducerContext, ScheduleAt, Table, TimeDuration, Timestamp,
};

/// How often `prune_messages` runs.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Messages older than this are deleted by `prune_messages`.
pub const MESSAGE_LIFETIME_MICROS: i64 = 60 * 60 * 1_000_000;

#[table(accessor = user, public)]
pub struct User {
    #[primary_key]
    identity: Identity,
    name: Option<String>,
    online: bool,
}

#[table(accessor = channel, public)]
pub struct Channel {
    #[primary_key]
    #[auto_inc]
    id: u64,
    #[unique]
    name: String,
}

#[table(accessor = message, public)]
pub struct Message {
    #[primary_key]
    #[auto_inc]
    id: u64,
    #[index(btree)]
    channel_id: u64,
    sender: Identity,
    sent: Timestamp,
    text: String,
}

#[table(accessor = prune_schedule, scheduled(prune_messages))]
pub struct PruneSchedule {
    #[primary_key]
    #[auto_inc]
    scheduled_id: u64,
    scheduled_at: ScheduleAt,
}

/// Creates the "general" channel, starts the pruning schedule and logs that
/// it did (the logs of a first publish must reach `logs`).
#[reducer(init)]
pub fn init(ctx: &ReducerContext) {
    ctx.db.channel().insert(Channel {
        id: 0,
        name: "general".to_string(),
    });
    ctx.db.prune_schedule().insert(PruneSchedule {
        scheduled_id: 0,
        scheduled_at: PRUNE_INTERVAL.into(),
    });
    log::info!("chat: init created the general channel");
}

/// Marks the caller online, creating its user row on first connect. A caller
/// whose user row is named "banned" is refused.
#[reducer(client_connected)]
pub fn client_connected(ctx: &ReducerContext) -> Result<(), String> {
    let identity = ctx.sender();
    match ctx.db.user().identity().find(identity) {
        Some(user) if user.name.as_deref() == Some("banned") => {
            Err(format!("user {identity} is banned"))
        }
        Some(user) => {
            ctx.db.user().identity().update(User {
                online: true,
                ..user
            });
            Ok(())
        }
        None => {
            ctx.db.user().insert(User {
                identity,
                name: None,
                online: true,
            });
            Ok(())
        }
    }
}

/// Marks the caller offline.
#[reducer(client_disconnected)]
pub fn client_disconnected(ctx: &ReducerContext) {
    if let Some(user) = ctx.db.user().identity().find(ctx.sender()) {
        ctx.db.user().identity().update(User {
            online: false,
            ..user
        });
    }
}

/// Sets the caller's display name.
#[reducer]
pub fn set_name(ctx: &ReducerContext, name: String) -> Result<(), String> {
    let name = name.trim().to_string();
    if name.is_empty() {
        return Err("name must not be empty".to_string());
    }
    let identity = ctx.sender();
    match ctx.db.user().identity().find(identity) {
        Some(user) => {
            ctx.db.user().identity().update(User {
                name: Some(name),
                ..user
            });
        }
        None => {
            ctx.db.user().insert(User {
                identity,
                name: Some(name),
                online: false,
            });
        }
    }
    Ok(())
}

/// Creates a channel; fails if the name is empty or taken.
#[reducer]
pub fn create_channel(ctx: &ReducerContext, name: String) -> Result<(), String> {
    if name.is_empty() {
        return Err("channel name must not be empty".to_string());
    }
    ctx.db
        .channel()
        .try_insert(Channel { id: 0, name })
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Posts a message to a channel; fails on empty text or an unknown channel.
#[reducer]
pub fn send_message(ctx: &ReducerContext, channel_id: u64, text: String) -> Result<(), String> {
    if text.is_empty() {
        return Err("message text must not be empty".to_string());
    }
    if ctx.db.channel().id().find(channel_id).is_none() {
        return Err(format!("no channel {channel_id}"));
    }
    ctx.db.message().insert(Message {
        id: 0,
        channel_id,
        sender: ctx.sender(),
        sent: ctx.timestamp,
        text,
    });
    Ok(())
}

/// Scheduled: deletes messages older than an hour.
#[reducer]
pub fn prune_messages(ctx: &ReducerContext, _schedule: PruneSchedule) {
    let Some(cutoff) = ctx
        .timestamp
        .checked_sub(TimeDuration::from_micros(MESSAGE_LIFETIME_MICROS))
    else {
        return;
    };
    let old: Vec<Message> = ctx
        .db
        .message()
        .iter()
        .filter(|message| message.sent < cutoff)
        .collect();
    let pruned = old.len();
    for message in old {
        ctx.db.message().id().delete(message.id);
    }
    log::info!("pruned {pruned} messages");
}
