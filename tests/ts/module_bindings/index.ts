// Hand-written client bindings for the test module tests/modules/chat, in the
// shape the `spacetimedb@2.10.1` TypeScript SDK expects from generated
// `module_bindings/index.ts` (a `RemoteModule` value plus typed
// `DbConnection` / `DbConnectionBuilder` / `SubscriptionBuilder` classes).
//
// Covered:
//   tables   user, channel, message        (public; private `prune_schedule`
//                                          is omitted, as codegen does for
//                                          tables a client cannot subscribe to)
//   reducers set_name, create_channel, send_message
//            (lifecycle reducers init / client_connected / client_disconnected
//            and the scheduled `prune_messages` are not client-callable and
//            are omitted)
//
// Wire names (table `sourceName`, reducer `name`) are the canonical snake_case
// names the module declares; accessors are camelCase.

import {
  DbConnectionBuilder as __DbConnectionBuilder,
  DbConnectionImpl as __DbConnectionImpl,
  SubscriptionBuilderImpl as __SubscriptionBuilderImpl,
  makeQueryBuilder as __makeQueryBuilder,
  convertToAccessorMap as __convertToAccessorMap,
  procedures as __procedures,
  reducerSchema as __reducerSchema,
  reducers as __reducers,
  schema as __schema,
  table as __table,
  t as __t,
  type DbConnectionConfig as __DbConnectionConfig,
  type ErrorContextInterface as __ErrorContextInterface,
  type EventContextInterface as __EventContextInterface,
  type Infer as __Infer,
  type ReducerEventContextInterface as __ReducerEventContextInterface,
  type RemoteModule as __RemoteModule,
  type SubscriptionEventContextInterface as __SubscriptionEventContextInterface,
  type SubscriptionHandleImpl as __SubscriptionHandleImpl,
} from 'spacetimedb';

import { Channel, Message, User } from './types';
export { Channel, Message, User };

// ---------------------------------------------------------------- tables ---

const tablesSchema = __schema({
  user: __table({ name: 'user', public: true }, User),
  channel: __table({ name: 'channel', public: true }, Channel),
  message: __table({ name: 'message', public: true }, Message),
});

// -------------------------------------------------------------- reducers ---

export const SetNameReducer = { name: __t.string() };
export const CreateChannelReducer = { name: __t.string() };
export const SendMessageReducer = {
  channelId: __t.u64(),
  text: __t.string(),
};

const reducersSchema = __reducers(
  __reducerSchema('set_name', SetNameReducer),
  __reducerSchema('create_channel', CreateChannelReducer),
  __reducerSchema('send_message', SendMessageReducer)
);

const proceduresSchema = __procedures();

// --------------------------------------------------------- remote module ---

const REMOTE_MODULE = {
  // Must be >= 1.4.0 or `DbConnectionBuilder.build()` throws.
  versionInfo: { cliVersion: '2.10.1' as const },
  tables: tablesSchema.schemaType.tables,
  reducers: reducersSchema.reducersType.reducers,
  ...proceduresSchema,
} satisfies __RemoteModule<
  typeof tablesSchema.schemaType,
  typeof reducersSchema.reducersType,
  typeof proceduresSchema
>;

export type RemoteModule = typeof REMOTE_MODULE;

/** Typed query builder over the module's tables (`tables.user.where(...)`). */
export const tables = __makeQueryBuilder(tablesSchema.schemaType);

/** Reducer definitions keyed by accessor name. */
export const reducers = __convertToAccessorMap(
  reducersSchema.reducersType.reducers
);

// Row types as plain TS types.
export type UserRow = __Infer<typeof User>;
export type ChannelRow = __Infer<typeof Channel>;
export type MessageRow = __Infer<typeof Message>;

// ------------------------------------------------------- context aliases ---

export type EventContext = __EventContextInterface<typeof REMOTE_MODULE>;
export type ReducerEventContext = __ReducerEventContextInterface<
  typeof REMOTE_MODULE
>;
export type SubscriptionEventContext = __SubscriptionEventContextInterface<
  typeof REMOTE_MODULE
>;
export type ErrorContext = __ErrorContextInterface<typeof REMOTE_MODULE>;
export type SubscriptionHandle = __SubscriptionHandleImpl<
  typeof REMOTE_MODULE
>;

// ----------------------------------------------------------- connection ---

export class SubscriptionBuilder extends __SubscriptionBuilderImpl<
  typeof REMOTE_MODULE
> {}

export class DbConnectionBuilder extends __DbConnectionBuilder<DbConnection> {}

export class DbConnection extends __DbConnectionImpl<typeof REMOTE_MODULE> {
  static builder = (): DbConnectionBuilder =>
    new DbConnectionBuilder(
      REMOTE_MODULE,
      (config: __DbConnectionConfig<typeof REMOTE_MODULE>) =>
        new DbConnection(config)
    );

  override subscriptionBuilder = (): SubscriptionBuilder =>
    new SubscriptionBuilder(this);
}
