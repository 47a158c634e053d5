// Real-client test: the stock `spacetimedb@2.10.1` TypeScript SDK against an
// Orrery server hosting a freshly published `tests/modules/chat` database.
//
//   ORRERY_URL=http://127.0.0.1:3000 ORRERY_DB=chat-xyz npx tsx chat.test.ts
//
// Optional: ORRERY_TEST_TIMEOUT_MS (whole test, default 60000),
//           ORRERY_STEP_TIMEOUT_MS (each wait, default 10000),
//           ORRERY_SDK_LOG=trace|debug|info|warn|error (SDK logging).
//
// Prints one `ok - ...` line per passed check; on the first failure prints
// `FAIL [step]: reason` to stderr and exits with status 1.

import './websocket-polyfill'; // must stay first: installs globalThis.WebSocket
import { setGlobalLogLevel, type Identity, type LogLevel } from 'spacetimedb';
import {
  DbConnection,
  tables,
  type ChannelRow,
  type EventContext,
  type MessageRow,
  type SubscriptionHandle,
  type UserRow,
} from './generated/chat';

// ------------------------------------------------------------- settings ---

const SERVER_URL = process.env.ORRERY_URL ?? '';
const DB_NAME = process.env.ORRERY_DB ?? '';
const OWNER_TOKEN = process.env.ORRERY_OWNER_TOKEN ?? '';
const TEST_TIMEOUT_MS = Number(process.env.ORRERY_TEST_TIMEOUT_MS ?? 60_000);
const STEP_TIMEOUT_MS = Number(process.env.ORRERY_STEP_TIMEOUT_MS ?? 10_000);

if (!SERVER_URL || !DB_NAME) {
  console.error(
    'FAIL [setup]: set ORRERY_URL (e.g. http://127.0.0.1:3000) and ORRERY_DB ' +
      '(name of a freshly published tests/modules/chat database)'
  );
  process.exit(2);
}
setGlobalLogLevel((process.env.ORRERY_SDK_LOG as LogLevel | undefined) ?? 'error');

// ------------------------------------------------------------- plumbing ---

let currentStep = 'startup';
let passed = 0;
const liveClients = new Set<Client>();

function fail(reason: string): never {
  console.error(`FAIL [${currentStep}]: ${reason}`);
  console.error(`(${passed} checks passed before the failure)`);
  for (const c of liveClients) {
    c.expectClose = true;
    try {
      c.conn.disconnect();
    } catch {
      /* ignore */
    }
  }
  process.exit(1);
}

function pass(what: string): void {
  passed += 1;
  console.log(`ok - ${what}`);
}

function skip(what: string): void {
  console.log(`skip - ${what}`);
}

function step(name: string): void {
  currentStep = name;
}

function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}

function describeErr(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    const causeText =
      cause instanceof Error
        ? ` (cause: ${cause.message}${(cause as { code?: string }).code ? ' ' + (cause as { code?: string }).code : ''})`
        : '';
    return `${e.name}: ${e.message}${causeText}`;
  }
  return String(e);
}

process.on('uncaughtException', e =>
  fail(`uncaught exception (likely thrown by the SDK while decoding a server message): ${describeErr(e)}\n${(e as Error)?.stack ?? ''}`)
);
process.on('unhandledRejection', e =>
  fail(`unhandled promise rejection: ${describeErr(e)}`)
);

const wholeTestTimer = setTimeout(
  () => fail(`whole test exceeded ${TEST_TIMEOUT_MS} ms`),
  TEST_TIMEOUT_MS
);

/**
 * Waits until `register` calls `resolve` (or `reject`), or times out.
 * `register` may return a cleanup function (e.g. to remove a callback).
 */
function waitFor<T>(
  what: string,
  register: (
    resolve: (v: T) => void,
    reject: (e: Error) => void
  ) => void | (() => void),
  ms: number = STEP_TIMEOUT_MS
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let cleanup: void | (() => void);
    let done = false;
    const finish = () => {
      done = true;
      clearTimeout(timer);
      if (cleanup) cleanup();
    };
    const timer = setTimeout(() => {
      if (done) return;
      finish();
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    try {
      cleanup = register(
        v => {
          if (done) return;
          finish();
          resolve(v);
        },
        e => {
          if (done) return;
          finish();
          reject(e);
        }
      );
      if (done && cleanup) cleanup();
    } catch (e) {
      finish();
      reject(e instanceof Error ? e : new Error(String(e)));
    }
  });
}

/** Awaits a promise with a timeout. */
function within<T>(what: string, p: Promise<T>, ms = STEP_TIMEOUT_MS): Promise<T> {
  return waitFor<T>(what, (resolve, reject) => {
    p.then(resolve, reject);
  }, ms);
}

function httpBase(): string {
  const u = new URL(SERVER_URL);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  if (u.protocol === 'wss:') u.protocol = 'https:';
  return u.toString().replace(/\/$/, '');
}

/** Best-effort explanation of why the WebSocket upgrade failed. */
async function diagnoseConnectFailure(): Promise<string> {
  const url = `${httpBase()}/v1/database/${encodeURIComponent(DB_NAME)}`;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    return `server reachable; GET ${url} -> HTTP ${res.status}`;
  } catch (e) {
    return `GET ${url} failed: ${describeErr(e)} (is the server running at ${SERVER_URL}?)`;
  }
}

// --------------------------------------------------------------- client ---

interface Client {
  label: string;
  conn: DbConnection;
  identity: Identity;
  token: string;
  expectClose: boolean;
  closed: Promise<Error | undefined>;
}

async function connect(label: string, token?: string): Promise<Client> {
  let connected = false;
  let client: Client | undefined;
  let resolveClosed!: (e: Error | undefined) => void;
  const closed = new Promise<Error | undefined>(r => (resolveClosed = r));
  let conn!: DbConnection;
  let connectError: Error | undefined;
  try {
    const got = await waitFor<{ identity: Identity; token: string }>(
      `${label}: onConnect (InitialConnection)`,
      (resolve, reject) => {
        conn = DbConnection.builder()
          .withUri(SERVER_URL)
          .withDatabaseName(DB_NAME)
          .withToken(token)
          .onConnect((_conn, identity, tok) => {
            connected = true;
            resolve({ identity, token: tok });
          })
          .onConnectError((_ctx, err) => {
            connectError = err;
            reject(new Error(`onConnectError: ${describeErr(err)}`));
          })
          .onDisconnect((_ctx, err) => {
            resolveClosed(err);
            if (!connected) {
              reject(
                new Error(
                  `socket closed before InitialConnection${err ? `: ${describeErr(err)}` : ''}` +
                    (connectError ? ` (after ${describeErr(connectError)})` : '')
                )
              );
              return;
            }
            if (client) liveClients.delete(client);
            if (client && !client.expectClose) {
              fail(`${label} was disconnected unexpectedly${err ? `: ${describeErr(err)}` : ''}`);
            }
          })
          .build();
      }
    );
    client = {
      label,
      conn,
      identity: got.identity,
      token: got.token,
      expectClose: false,
      closed,
    };
    liveClients.add(client);
    return client;
  } catch (e) {
    try {
      conn?.disconnect();
    } catch {
      /* ignore */
    }
    const diag = await diagnoseConnectFailure();
    throw new Error(
      `${label} could not connect to ${SERVER_URL} database "${DB_NAME}"` +
        `${token ? ' with a saved token' : ' anonymously'}: ${(e as Error).message}; ${diag}`
    );
  }
}

async function disconnect(c: Client): Promise<void> {
  c.expectClose = true;
  c.conn.disconnect();
  await within(`${c.label}: onDisconnect after disconnect()`, c.closed);
  liveClients.delete(c);
}

function subscribeAll(c: Client): Promise<void> {
  return waitFor<void>(`${c.label}: onApplied for subscribeToAllTables`, (resolve, reject) => {
    c.conn
      .subscriptionBuilder()
      .onApplied(() => resolve())
      .onError(ctx =>
        reject(new Error(`subscription error: ${ctx.event ? describeErr(ctx.event) : '(no detail)'}`))
      )
      .subscribeToAllTables();
  });
}

function subscribe(c: Client, queries: string[]): Promise<SubscriptionHandle> {
  return waitFor<SubscriptionHandle>(
    `${c.label}: onApplied for ${JSON.stringify(queries)}`,
    (resolve, reject) => {
      let handle: SubscriptionHandle | undefined;
      let applied = false;
      handle = c.conn
        .subscriptionBuilder()
        .onApplied(() => {
          applied = true;
          if (handle) resolve(handle);
        })
        .onError(ctx =>
          reject(
            new Error(
              `subscription error for ${JSON.stringify(queries)}: ${ctx.event ? describeErr(ctx.event) : '(no detail)'}`
            )
          )
        )
        .subscribe(queries);
      if (applied) resolve(handle);
    }
  );
}

/** Expects a reducer call to be rejected with an error of the given SDK class. */
async function expectReducerError(
  what: string,
  call: Promise<void>,
  errorName: 'SenderError' | 'InternalError',
  message?: string | RegExp
): Promise<string> {
  let outcome: { ok: true } | { ok: false; err: unknown };
  try {
    await within(`reducer result for ${what}`, call);
    outcome = { ok: true };
  } catch (err) {
    if (err instanceof Error && err.message.startsWith('timed out')) throw err;
    outcome = { ok: false, err };
  }
  if (outcome.ok) throw new Error(`${what}: expected the reducer call to fail, but it succeeded`);
  const err = outcome.err as Error;
  check(
    err instanceof Error && err.name === errorName,
    `${what}: expected ${errorName}, got ${describeErr(err)}`
  );
  if (typeof message === 'string') {
    check(err.message === message, `${what}: expected message ${JSON.stringify(message)}, got ${JSON.stringify(err.message)}`);
  } else if (message) {
    check(message.test(err.message), `${what}: expected message matching ${message}, got ${JSON.stringify(err.message)}`);
  }
  return err.message;
}

function userOf(c: Client, id: Identity): UserRow | null {
  return c.conn.db.user.identity.find(id);
}

function sameId(a: Identity, b: Identity): boolean {
  return a.isEqual(b);
}

// ----------------------------------------------------------------- test ---

async function main(): Promise<void> {
  const suffix = Date.now().toString(36);

  // 1. Anonymous connect.
  step('A: anonymous connect');
  const a = await connect('A');
  check(a.identity.toHexString().length === 64, 'identity is 32 bytes');
  check(typeof a.token === 'string' && a.token.length > 0, 'token received in onConnect');
  check(a.token.split('.').length === 3, `token looks like a JWT (got ${a.token.slice(0, 20)}...)`);
  check(a.conn.identity && sameId(a.conn.identity, a.identity), 'conn.identity set');
  pass(
    `A connected anonymously: identity ${a.identity.toHexString()}, token received, connection id ${a.conn.connectionId.toHexString()}`
  );

  // 2. Subscribe to everything.
  step('A: subscribeToAllTables');
  await subscribeAll(a);
  const general = [...a.conn.db.channel.iter()].find(ch => ch.name === 'general');
  check(general, `init created channel "general" (A's cache has ${a.conn.db.channel.count()} channel rows)`);
  const aSelf = userOf(a, a.identity);
  check(aSelf, "A's own user row (inserted by client_connected) is in A's cache");
  check(aSelf.online === true && aSelf.name === undefined, `A's user row is {online: true, name: none}, got ${JSON.stringify({ online: aSelf.online, name: aSelf.name })}`);
  pass(`A subscribed to all tables, onApplied: channel "general" id=${general.id}, own user row online`);

  // 3. A calls set_name and sees its own update.
  step('A: set_name("alice")');
  const aOwnUpdate = waitFor<{ ctx: EventContext; oldRow: UserRow; newRow: UserRow }>(
    "A's onUpdate(user) for its own set_name",
    resolve => {
      const cb = (ctx: EventContext, oldRow: UserRow, newRow: UserRow) => {
        if (sameId(newRow.identity, a.identity) && newRow.name === 'alice') resolve({ ctx, oldRow, newRow });
      };
      a.conn.db.user.onUpdate(cb);
      return () => a.conn.db.user.removeOnUpdate(cb);
    }
  );
  await within('A set_name("alice") reducer promise', a.conn.reducers.setName({ name: 'alice' }));
  {
    const { ctx, oldRow } = await aOwnUpdate;
    check(oldRow.name === undefined, `old row had no name (got ${JSON.stringify(oldRow.name)})`);
    check(ctx.event.tag === 'Reducer', `caller's event is a Reducer event (got ${ctx.event.tag})`);
    if (ctx.event.tag === 'Reducer') {
      check(ctx.event.value.reducer.name === 'set_name', `reducer name set_name (got ${ctx.event.value.reducer.name})`);
      check(ctx.event.value.outcome.tag === 'Ok', `outcome Ok (got ${ctx.event.value.outcome.tag})`);
    }
    check(userOf(a, a.identity)?.name === 'alice', "A's cache has name alice after the promise resolved");
  }
  pass('A set_name("alice"): promise resolved, onUpdate(user) old.name=none new.name=alice, event=Reducer(set_name)');

  // 4. Second client; A sees it arrive.
  step('B: anonymous connect');
  let bIdentityHex = '';
  const aSeesBInsert = waitFor<{ ctx: EventContext; row: UserRow }>(
    "A's onInsert(user) for B's client_connected",
    resolve => {
      const cb = (ctx: EventContext, row: UserRow) => {
        if (!sameId(row.identity, a.identity)) resolve({ ctx, row });
      };
      a.conn.db.user.onInsert(cb);
      return () => a.conn.db.user.removeOnInsert(cb);
    }
  );
  const b = await connect('B');
  bIdentityHex = b.identity.toHexString();
  check(!sameId(a.identity, b.identity), 'B has a different identity than A');
  check(a.token !== b.token, 'B has a different token');
  pass(`B connected anonymously: identity ${bIdentityHex}`);
  {
    const { ctx, row } = await aSeesBInsert;
    check(sameId(row.identity, b.identity), `inserted user is B (got ${row.identity.toHexString()})`);
    check(row.online === true, 'B is online');
    check(ctx.event.tag === 'Transaction', `non-caller event is Transaction (got ${ctx.event.tag})`);
  }
  pass("A received B's user row insert (client_connected) as a Transaction event");

  // 5. B subscribes with explicit queries, channel in its own query set.
  step('B: subscribe');
  await subscribe(b, ['SELECT * FROM user', 'SELECT * FROM message']);
  const bChannelHandle = await subscribe(b, ['SELECT * FROM channel']);
  check(userOf(b, a.identity)?.name === 'alice', "B's initial rows include A's name alice");
  check(userOf(b, b.identity)?.online === true, "B's initial rows include its own online user row");
  check([...b.conn.db.channel.iter()].some(ch => ch.name === 'general'), 'B sees channel general');
  pass('B subscribed (two query sets), onApplied: sees A\'s earlier write (name alice) and channel general');

  // 6. B writes, A sees.
  step('B: set_name("bob")');
  const aSeesBob = waitFor<UserRow>("A's onUpdate(user) for B's set_name", resolve => {
    const cb = (_ctx: EventContext, _old: UserRow, row: UserRow) => {
      if (sameId(row.identity, b.identity) && row.name === 'bob') resolve(row);
    };
    a.conn.db.user.onUpdate(cb);
    return () => a.conn.db.user.removeOnUpdate(cb);
  });
  await within('B set_name("bob") reducer promise', b.conn.reducers.setName({ name: 'bob' }));
  check(userOf(b, b.identity)?.name === 'bob', "B's own cache updated");
  await aSeesBob;
  check(userOf(a, b.identity)?.name === 'bob', "A's cache has B named bob");
  pass('B set_name("bob"): A received onUpdate(user) with name bob');

  step('B: create_channel');
  const chanName = `random-${suffix}`;
  const aSeesChannel = waitFor<ChannelRow>("A's onInsert(channel) for B's create_channel", resolve => {
    const cb = (_ctx: EventContext, row: ChannelRow) => {
      if (row.name === chanName) resolve(row);
    };
    a.conn.db.channel.onInsert(cb);
    return () => a.conn.db.channel.removeOnInsert(cb);
  });
  await within('B create_channel reducer promise', b.conn.reducers.createChannel({ name: chanName }));
  const newChannel = await aSeesChannel;
  check(newChannel.id !== general.id, 'auto_inc gave the new channel a new id');
  pass(`B create_channel("${chanName}"): A received onInsert(channel) id=${newChannel.id}`);

  // 7. A writes, B sees.
  step('A: send_message');
  const textA = `hello from A ${suffix}`;
  const bSeesMsg = waitFor<{ ctx: EventContext; row: MessageRow }>(
    "B's onInsert(message) for A's send_message",
    resolve => {
      const cb = (ctx: EventContext, row: MessageRow) => {
        if (row.text === textA) resolve({ ctx, row });
      };
      b.conn.db.message.onInsert(cb);
      return () => b.conn.db.message.removeOnInsert(cb);
    }
  );
  const aSeesOwnMsg = waitFor<MessageRow>("A's onInsert(message) for its own send_message", resolve => {
    const cb = (_ctx: EventContext, row: MessageRow) => {
      if (row.text === textA) resolve(row);
    };
    a.conn.db.message.onInsert(cb);
    return () => a.conn.db.message.removeOnInsert(cb);
  });
  const before = Date.now();
  await within('A send_message reducer promise', a.conn.reducers.sendMessage({ channelId: general.id, text: textA }));
  await aSeesOwnMsg;
  {
    const { ctx, row } = await bSeesMsg;
    check(sameId(row.sender, a.identity), 'message sender is A');
    check(row.channelId === general.id, `message channel is general (got ${row.channelId})`);
    const sentMs = Number(row.sent.microsSinceUnixEpoch / 1000n);
    check(Math.abs(sentMs - before) < 5 * 60_000, `message timestamp ${row.sent.toISOString()} is close to now`);
    check(ctx.event.tag === 'Transaction', `B's event is Transaction (got ${ctx.event.tag})`);
  }
  pass('A send_message: A got onInsert(message) for its own call, B got onInsert(message) (sender=A, sane timestamp)');

  step('B: send_message in the new channel');
  const textB = `hello from B ${suffix}`;
  const aSeesBMsg = waitFor<MessageRow>("A's onInsert(message) for B's send_message", resolve => {
    const cb = (_ctx: EventContext, row: MessageRow) => {
      if (row.text === textB) resolve(row);
    };
    a.conn.db.message.onInsert(cb);
    return () => a.conn.db.message.removeOnInsert(cb);
  });
  await within('B send_message reducer promise', b.conn.reducers.sendMessage({ channelId: newChannel.id, text: textB }));
  {
    const row = await aSeesBMsg;
    check(sameId(row.sender, b.identity) && row.channelId === newChannel.id, 'A sees B\'s message in the new channel');
  }
  pass('B send_message: A received onInsert(message)');

  // 7b. The generated query builder names columns as SQL knows them.
  step('query builder');
  {
    const sql = tables.message.where(m => m.channelId.eq(newChannel.id)).toSql();
    check(sql.includes('"channel_id"'), `the query builder's SQL names channel_id: ${sql}`);
    const handle = await subscribe(b, [sql]);
    handle.unsubscribe();
    pass(`the generated query builder's SQL subscribes: ${sql}`);
  }

  // 8. Reducer errors reach the caller; nothing is broadcast.
  step('reducer errors');
  const bMsgCountBefore = b.conn.db.message.count();
  const leaked: string[] = [];
  const leakWatch = (_ctx: EventContext, row: MessageRow) => leaked.push(row.text);
  b.conn.db.message.onInsert(leakWatch);

  await expectReducerError('set_name("   ")', a.conn.reducers.setName({ name: '   ' }), 'SenderError', 'name must not be empty');
  check(userOf(a, a.identity)?.name === 'alice', 'failed set_name changed nothing');
  pass('set_name("   ") rejected the caller\'s promise with SenderError "name must not be empty"');

  await expectReducerError('send_message(text="")', a.conn.reducers.sendMessage({ channelId: general.id, text: '' }), 'SenderError', 'message text must not be empty');
  pass('send_message(text="") rejected with SenderError "message text must not be empty"');

  await expectReducerError('send_message(channel 999999)', a.conn.reducers.sendMessage({ channelId: 999_999n, text: 'lost' }), 'SenderError', 'no channel 999999');
  pass('send_message(unknown channel) rejected with SenderError "no channel 999999"');

  {
    const msg = await expectReducerError('create_channel("general") (duplicate)', b.conn.reducers.createChannel({ name: 'general' }), 'SenderError');
    pass(`create_channel("general") duplicate rejected with SenderError ${JSON.stringify(msg)}`);
  }

  {
    const msg = await expectReducerError('call of unknown reducer', a.conn.callReducer('no_such_reducer', new Uint8Array(0), {}), 'InternalError');
    pass(`unknown reducer "no_such_reducer" rejected with InternalError ${JSON.stringify(msg)}`);
  }
  {
    const msg = await expectReducerError('set_name with malformed args', a.conn.callReducer('set_name', new Uint8Array([0xff, 0xff]), {}), 'InternalError');
    pass(`set_name with undecodable args rejected with InternalError ${JSON.stringify(msg)}`);
  }
  {
    const msg = await expectReducerError('client call of lifecycle reducer client_connected', a.conn.callReducer('client_connected', new Uint8Array(0), {}), 'InternalError');
    pass(`client call of lifecycle reducer client_connected rejected with InternalError ${JSON.stringify(msg)}`);
  }

  // Fence: a successful write after the failures; B must see it and nothing else.
  const fenceText = `fence ${suffix}`;
  const bSeesFence = waitFor<void>("B's onInsert(message) for the fence message", resolve => {
    const cb = (_ctx: EventContext, row: MessageRow) => {
      if (row.text === fenceText) resolve();
    };
    b.conn.db.message.onInsert(cb);
    return () => b.conn.db.message.removeOnInsert(cb);
  });
  await within('A send_message(fence) reducer promise', a.conn.reducers.sendMessage({ channelId: general.id, text: fenceText }));
  await bSeesFence;
  b.conn.db.message.removeOnInsert(leakWatch);
  check(leaked.length === 1 && leaked[0] === fenceText, `B saw only the fence message after the failed calls, got ${JSON.stringify(leaked)}`);
  check(b.conn.db.message.count() === bMsgCountBefore + 1n, 'B message count grew by exactly one');
  check(userOf(b, a.identity)?.name === 'alice', 'B still sees A named alice');
  pass('failed reducer calls broadcast nothing (B saw only the next successful write)');

  // 9. Deletes.
  step('B: unsubscribe channel query set');
  {
    const expected = b.conn.db.channel.count();
    const deleted: ChannelRow[] = [];
    const onDel = (_ctx: EventContext, row: ChannelRow) => deleted.push(row);
    b.conn.db.channel.onDelete(onDel);
    await waitFor<void>(`B: UnsubscribeApplied for the channel query set`, resolve => {
      bChannelHandle.unsubscribeThen(() => resolve());
    });
    b.conn.db.channel.removeOnDelete(onDel);
    check(deleted.length === Number(expected), `B got onDelete for all ${expected} channel rows (got ${deleted.length})`);
    check(b.conn.db.channel.count() === 0n, `B's channel cache empty after unsubscribe (has ${b.conn.db.channel.count()})`);
    check(b.conn.db.user.count() > 0n, "B's other query set untouched");
    pass(`B unsubscribe (SendDroppedRows): onDelete fired for all ${expected} channel rows, other query set kept`);
  }
  // Broadcast deletes: the chat module deletes only in its hourly prune, so
  // the database owner deletes the fence message with SQL DML over /sql; that
  // commit reaches subscribers like any other transaction.
  step('owner: DELETE over /sql reaches A as onDelete(message)');
  if (OWNER_TOKEN) {
    const aSeesDelete = waitFor<void>("A's onDelete(message) for the fence message", resolve => {
      const cb = (_ctx: EventContext, row: MessageRow) => {
        if (row.text === fenceText) resolve();
      };
      a.conn.db.message.onDelete(cb);
      return () => a.conn.db.message.removeOnDelete(cb);
    });
    const url = new URL(`v1/database/${encodeURIComponent(DB_NAME)}/sql`, SERVER_URL.endsWith("/") ? SERVER_URL : SERVER_URL + "/");
    const response = await fetch(url, {
      method: 'POST',
      headers: { Authorization: `Bearer ${OWNER_TOKEN}` },
      body: `DELETE FROM message WHERE text = '${fenceText.replace(/'/g, "''")}'`,
    });
    check(response.ok, `owner DELETE over /sql answered ${response.status}: ${await response.text()}`);
    await aSeesDelete;
    check(![...a.conn.db.message.iter()].some((m: MessageRow) => m.text === fenceText), 'the deleted message left A\'s cache');
    pass('owner DELETE over /sql: A received onDelete(message) and dropped the row');
  } else {
    skip('broadcast deletes: set ORRERY_OWNER_TOKEN (the publisher\'s token) to delete a row over /sql');
  }

  // 10. Reconnect with the saved token.
  step('A: disconnect');
  const aIdentity = a.identity;
  const aToken = a.token;
  const bSeesAOffline = waitFor<void>("B's onUpdate(user) A online=false (client_disconnected)", resolve => {
    const cb = (_ctx: EventContext, _old: UserRow, row: UserRow) => {
      if (sameId(row.identity, aIdentity) && row.online === false) resolve();
    };
    b.conn.db.user.onUpdate(cb);
    return () => b.conn.db.user.removeOnUpdate(cb);
  });
  await disconnect(a);
  await bSeesAOffline;
  pass('A disconnected: B received onUpdate(user) A online=false (client_disconnected)');

  step('A: reconnect with saved token');
  const bSeesAOnline = waitFor<void>("B's onUpdate(user) A online=true after reconnect", resolve => {
    const cb = (_ctx: EventContext, _old: UserRow, row: UserRow) => {
      if (sameId(row.identity, aIdentity) && row.online === true) resolve();
    };
    b.conn.db.user.onUpdate(cb);
    return () => b.conn.db.user.removeOnUpdate(cb);
  });
  const a2 = await connect('A2', aToken);
  check(sameId(a2.identity, aIdentity), `same identity after reconnect: expected ${aIdentity.toHexString()}, got ${a2.identity.toHexString()}`);
  check(a2.token === aToken, 'SDK keeps the original token when one was supplied');
  pass(`A reconnected with its token (websocket-token exchange + ?token=): same identity ${a2.identity.toHexString()}`);
  await bSeesAOnline;
  pass('B received onUpdate(user) A online=true (client_connected for the known identity)');

  step('A2: subscribe');
  await subscribeAll(a2);
  const a2Self = userOf(a2, aIdentity);
  check(a2Self?.name === 'alice' && a2Self.online === true, `A2 sees its row {name: alice, online: true}, got ${JSON.stringify(a2Self && { name: a2Self.name, online: a2Self.online })}`);
  check([...a2.conn.db.message.iter()].some(m => m.text === textA && sameId(m.sender, aIdentity)), 'A2 sees the message A sent earlier');
  pass('A2 subscribed: its user row kept name alice, earlier messages present');

  step('B: disconnect');
  const a2SeesBOffline = waitFor<void>("A2's onUpdate(user) B online=false", resolve => {
    const cb = (_ctx: EventContext, _old: UserRow, row: UserRow) => {
      if (row.identity.toHexString() === bIdentityHex && row.online === false) resolve();
    };
    a2.conn.db.user.onUpdate(cb);
    return () => a2.conn.db.user.removeOnUpdate(cb);
  });
  await disconnect(b);
  await a2SeesBOffline;
  pass('B disconnected: A2 received onUpdate(user) B online=false');

  step('A2: disconnect');
  await disconnect(a2);
  pass('clean disconnect');
}

main().then(
  () => {
    clearTimeout(wholeTestTimer);
    console.log(`PASS: all ${passed} checks passed`);
    process.exit(0);
  },
  e => fail(describeErr(e))
);
