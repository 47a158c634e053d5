// Real-client test of generated bindings beyond the chat module: the stock
// `spacetimedb@2.10.1` SDK against a freshly published
// `tests/modules/abi-coverage` database, through the bindings
// `orrery generate` wrote into generated/abi-coverage.
//
//   ORRERY_URL=http://127.0.0.1:3000 ORRERY_DB=abi-xyz npx tsx abi.test.ts
//
// Checks that values of every shape the module takes (u8, i128, strings,
// arrays, options, a nested product, an enum variant carrying a product)
// reach the reducer intact, that per-caller and anonymous views arrive as
// typed rows, that procedures return typed values, and that a failing
// reducer rejects its promise. Prints `ok - ...` per check and
// `PASS: all N checks passed`; the first failure prints `FAIL: reason` to
// stderr and exits 1.

import './websocket-polyfill'; // must stay first: installs globalThis.WebSocket
import { setGlobalLogLevel, type Identity } from 'spacetimedb';
import {
  DbConnection,
  Shape,
  tables,
  type MyNotesRow,
  type NoteCountRow,
  type SleepResult,
} from './generated/abi-coverage';

const SERVER_URL = process.env.ORRERY_URL ?? '';
const DB_NAME = process.env.ORRERY_DB ?? '';
const STEP_MS = Number(process.env.ORRERY_STEP_TIMEOUT_MS ?? 10_000);
if (!SERVER_URL || !DB_NAME) {
  console.error('FAIL: set ORRERY_URL and ORRERY_DB (a fresh abi-coverage database)');
  process.exit(2);
}
setGlobalLogLevel('error');

let passed = 0;
function pass(what: string): void {
  passed += 1;
  console.log(`ok - ${what}`);
}
function fail(reason: string): never {
  console.error(`FAIL: ${reason} (${passed} checks passed before)`);
  process.exit(1);
}
function check(cond: unknown, what: string): asserts cond {
  if (!cond) fail(what);
}
process.on('unhandledRejection', e => fail(`unhandled rejection: ${String(e)}`));
setTimeout(() => fail('the whole test took over 60 s'), 60_000).unref();

/** Resolves when `register` calls back, or fails the test after STEP_MS. */
function waitFor<T>(what: string, register: (done: (v: T) => void) => void): Promise<T> {
  return new Promise<T>(resolve => {
    const timer = setTimeout(() => fail(`timed out waiting for ${what}`), STEP_MS);
    register(v => {
      clearTimeout(timer);
      resolve(v);
    });
  });
}

async function main(): Promise<void> {
  let conn!: DbConnection;
  const identity = await waitFor<Identity>('onConnect', done => {
    conn = DbConnection.builder()
      .withUri(SERVER_URL)
      .withDatabaseName(DB_NAME)
      .onConnect((_c, id) => done(id))
      .onConnectError((_c, e) => fail(`connect failed: ${String(e)}`))
      .build();
  });
  pass(`connected as ${identity.toHexString().slice(0, 16)}…`);

  await waitFor<void>('onApplied', done => {
    conn
      .subscriptionBuilder()
      .onApplied(() => done())
      .onError(ctx => fail(`subscription failed: ${String(ctx.event)}`))
      .subscribe(['SELECT * FROM my_notes', 'SELECT * FROM note_count']);
  });
  pass('subscribed to a per-caller view and an anonymous view');

  // Every argument shape, checked value by value inside the module.
  await conn.reducers.checkArgs({
    small: 250,
    big: -(2n ** 127n) + 1n,
    text: 'héllo',
    list: [1, 2, 3],
    maybe: undefined,
    point: { x: -3, y: 4 },
    shape: Shape.Rect({ x: 1, y: 2 }),
    flag: true,
  });
  pass('check_args: u8, i128, string, array, option, product and enum arguments arrive intact');

  const rejected = await conn.reducers.insertThenFail({ code: 'x' }).then(
    () => false,
    () => true
  );
  check(rejected, 'a failing reducer resolved its promise');
  pass('a failing reducer rejects its promise');

  const mine = waitFor<MyNotesRow>('onInsert(my_notes)', done =>
    conn.db.myNotes.onInsert((_ctx, row) => done(row))
  );
  const counted = waitFor<NoteCountRow>('onInsert(note_count) with count 1', done =>
    conn.db.noteCount.onInsert((_ctx, row) => {
      if (row.count === 1n) done(row);
    })
  );
  await conn.reducers.addNote({ text: 'first' });
  const note = await mine;
  check(note.text === 'first', `my_notes row text: ${note.text}`);
  check(note.owner.isEqual(identity), 'my_notes row owned by someone else');
  check(typeof note.id === 'bigint', `my_notes id is ${typeof note.id}`);
  pass(`add_note: the per-caller view delivered a typed row (id ${note.id})`);
  await counted;
  pass('add_note: the anonymous view delivered count 1');

  // A typed query builder subscription: only matching rows reach the cache.
  await waitFor<void>('onApplied for the query builder subscription', done => {
    conn
      .subscriptionBuilder()
      .onApplied(() => done())
      .onError(ctx => fail(`query builder subscription failed: ${String(ctx.event)}`))
      .subscribe(tables.item.where(r => r.score.gt(10)));
  });
  await conn.reducers.insertItem({ code: 'qb-low', score: 1 });
  await conn.reducers.insertItem({ code: 'qb-high', score: 20 });
  const codes = [...conn.db.item.iter()].map(r => r.code).sort();
  check(codes.includes('qb-high') && !codes.includes('qb-low'), `item rows in the cache: ${codes}`);
  const found = conn.db.item.code.find('qb-high');
  check(found?.score === 20, 'the unique index accessor finds the row');
  pass('a query builder subscription (score > 10) holds only matching rows; item.code.find works');

  const total = await conn.procedures.procWithTx({ n: 2n });
  check(total === 2n, `proc_with_tx returned ${String(total)}`);
  pass('proc_with_tx: a procedure returns a typed u64');
  const slept: SleepResult = await conn.procedures.procSleep({ micros: 1_000n });
  const gap = slept.woke.microsSinceUnixEpoch - slept.started.microsSinceUnixEpoch;
  check(gap >= 1_000n, `proc_sleep woke after ${gap} µs`);
  pass('proc_sleep: a procedure returns a typed product of timestamps');

  conn.disconnect();
  console.log(`PASS: all ${passed} checks passed`);
  process.exit(0);
}

main().catch(e => fail(`unexpected error: ${e instanceof Error ? e.stack : String(e)}`));
