// Hand-written client bindings for tests/modules/chat (row types).
//
// Field order MUST match the Rust structs in tests/modules/chat/src/lib.rs:
// BSATN is positional, the names only matter for SQL built by the query
// builder (hence `.name(...)` on the snake_case columns).
import { t } from 'spacetimedb';

/** `#[table(accessor = user, public)] struct User` */
export const User = t.row('User', {
  identity: t.identity().primaryKey(),
  name: t.option(t.string()),
  online: t.bool(),
});
export type User = typeof User;

/** `#[table(accessor = channel, public)] struct Channel` */
export const Channel = t.row('Channel', {
  id: t.u64().primaryKey().autoInc(),
  name: t.string().unique(),
});
export type Channel = typeof Channel;

/** `#[table(accessor = message, public)] struct Message` */
export const Message = t.row('Message', {
  id: t.u64().primaryKey().autoInc(),
  channelId: t.u64().name('channel_id').index('btree'),
  sender: t.identity(),
  sent: t.timestamp(),
  text: t.string(),
});
export type Message = typeof Message;
