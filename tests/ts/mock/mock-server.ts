// In-memory MOCK of an Orrery server hosting tests/modules/chat, used only to
// validate chat.test.ts and the hand-written bindings while the real server's
// WebSocket route is not available. Not a reference for the real server: it
// speaks v2 only, never compresses, ignores the SQL beyond `FROM <table>`, and
// its tokens are fake. Encoding uses the SDK's own (ISC) message types.
//
//   npx tsx mock/mock-server.ts 3999     # then ORRERY_URL=http://127.0.0.1:3999 ORRERY_DB=chat
import { createServer, type IncomingMessage } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import {
  BinaryReader,
  BinaryWriter,
  ConnectionId,
  Identity,
  Timestamp,
  t,
} from 'spacetimedb';
import {
  ClientMessage,
  ServerMessage,
} from '../node_modules/spacetimedb/src/sdk/client_api/types.ts';
// The message types above come from the SDK's TS sources, whose classes are
// distinct from the dist bundle's: use the matching reader/writer for them.
import SrcBinaryReader from '../node_modules/spacetimedb/src/lib/binary_reader.ts';
import SrcBinaryWriter from '../node_modules/spacetimedb/src/lib/binary_writer.ts';
import {
  Channel,
  CreateChannelReducer,
  Message,
  SendMessageReducer,
  SetNameReducer,
  User,
} from '../module_bindings/index.ts';

type Row = Record<string, any>;
type TableName = 'user' | 'channel' | 'message';
const ROW_TYPES: Record<TableName, any> = { user: User, channel: Channel, message: Message };
const state: Record<TableName, Map<string, Row>> = {
  user: new Map(),
  channel: new Map(),
  message: new Map(),
};
let nextChannelId = 1n;
let nextMessageId = 1n;
const pkOf = (table: TableName, row: Row) =>
  table === 'user' ? (row.identity as Identity).toHexString() : String(row.id);
state.channel.set('1', { id: nextChannelId++, name: 'general' });

type Change = { table: TableName; inserts: Row[]; deletes: Row[] };
type Conn = {
  identity: Identity;
  connectionId: ConnectionId;
  sets: Map<number, TableName[]>;
  send: (msg: any) => void;
};
const conns = new Set<Conn>();

function rowList(table: TableName, rows: Row[]) {
  const w = new BinaryWriter(64);
  const offsets: bigint[] = [];
  for (const r of rows) {
    offsets.push(BigInt(w.getBuffer().length));
    ROW_TYPES[table].serialize(w, r);
  }
  return { sizeHint: { tag: 'RowOffsets', value: offsets }, rowsData: w.getBuffer() };
}

function querySetUpdates(c: Conn, changes: Change[]) {
  const out: any[] = [];
  for (const [id, tables] of c.sets) {
    const tus = changes
      .filter(ch => tables.includes(ch.table) && (ch.inserts.length || ch.deletes.length))
      .map(ch => ({
        tableName: ch.table,
        rows: [
          {
            tag: 'PersistentTable',
            value: { inserts: rowList(ch.table, ch.inserts), deletes: rowList(ch.table, ch.deletes) },
          },
        ],
      }));
    if (tus.length) out.push({ querySetId: { id }, tables: tus });
  }
  return out;
}

function broadcast(changes: Change[], except?: Conn) {
  for (const c of conns) {
    if (c === except) continue;
    const qs = querySetUpdates(c, changes);
    if (qs.length) c.send({ tag: 'TransactionUpdate', value: { querySets: qs } });
  }
}

function upsertUser(changes: Change[], identity: Identity, f: (u: Row | undefined) => Row) {
  const key = identity.toHexString();
  const old = state.user.get(key);
  const next = f(old);
  state.user.set(key, next);
  changes.push({ table: 'user', inserts: [next], deletes: old ? [old] : [] });
}

class UserError extends Error {}

function runReducer(caller: Conn, name: string, args: Uint8Array): Change[] {
  const changes: Change[] = [];
  const decode = (params: any) => t.object('Args', params).deserialize(new BinaryReader(args)) as any;
  switch (name) {
    case 'set_name': {
      const { name: raw } = decode(SetNameReducer);
      const n = String(raw).trim();
      if (!n) throw new UserError('name must not be empty');
      upsertUser(changes, caller.identity, u => ({ identity: caller.identity, online: u?.online ?? false, name: n }));
      return changes;
    }
    case 'create_channel': {
      const { name: n } = decode(CreateChannelReducer);
      if (!n) throw new UserError('channel name must not be empty');
      if ([...state.channel.values()].some(ch => ch.name === n)) throw new UserError(`duplicate unique value for channel.name: ${n}`);
      const row = { id: nextChannelId++, name: n };
      state.channel.set(String(row.id), row);
      changes.push({ table: 'channel', inserts: [row], deletes: [] });
      return changes;
    }
    case 'send_message': {
      const { channelId, text } = decode(SendMessageReducer);
      if (!text) throw new UserError('message text must not be empty');
      if (!state.channel.has(String(channelId))) throw new UserError(`no channel ${channelId}`);
      const row = { id: nextMessageId++, channelId, sender: caller.identity, sent: Timestamp.now(), text };
      state.message.set(String(row.id), row);
      changes.push({ table: 'message', inserts: [row], deletes: [] });
      return changes;
    }
    case 'init':
    case 'client_connected':
    case 'client_disconnected':
      throw new Error(`lifecycle reducer ${name} cannot be called`);
    default:
      throw new Error(`no such reducer ${name}`);
  }
}

function handleClientMessage(c: Conn, msg: any) {
  switch (msg.tag) {
    case 'Subscribe': {
      const tables: TableName[] = [];
      for (const q of msg.value.queryStrings as string[]) {
        const m = /from\s+"?(\w+)"?/i.exec(q);
        const tn = m?.[1] as TableName | undefined;
        if (!tn || !(tn in state)) {
          c.send({ tag: 'SubscriptionError', value: { requestId: msg.value.requestId, querySetId: msg.value.querySetId, error: `unknown table in ${q}` } });
          return;
        }
        tables.push(tn);
      }
      c.sets.set(msg.value.querySetId.id, tables);
      c.send({
        tag: 'SubscribeApplied',
        value: {
          requestId: msg.value.requestId,
          querySetId: msg.value.querySetId,
          rows: { tables: tables.map(tn => ({ table: tn, rows: rowList(tn, [...state[tn].values()]) })) },
        },
      });
      return;
    }
    case 'Unsubscribe': {
      const tables = c.sets.get(msg.value.querySetId.id) ?? [];
      c.sets.delete(msg.value.querySetId.id);
      c.send({
        tag: 'UnsubscribeApplied',
        value: {
          requestId: msg.value.requestId,
          querySetId: msg.value.querySetId,
          rows: { tables: tables.map(tn => ({ table: tn, rows: rowList(tn, [...state[tn].values()]) })) },
        },
      });
      return;
    }
    case 'CallReducer': {
      const { requestId, reducer, args } = msg.value;
      const timestamp = Timestamp.now();
      let result: any;
      try {
        const changes = runReducer(c, reducer, args);
        result = { tag: 'Ok', value: { retValue: new Uint8Array(0), transactionUpdate: { querySets: querySetUpdates(c, changes) } } };
        c.send({ tag: 'ReducerResult', value: { requestId, timestamp, result } });
        broadcast(changes, c);
      } catch (e) {
        if (e instanceof UserError) {
          const w = new BinaryWriter(64);
          w.writeString(e.message);
          result = { tag: 'Err', value: w.getBuffer() };
        } else if (e instanceof RangeError || /read/i.test(String(e))) {
          result = { tag: 'InternalError', value: `invalid arguments for reducer ${reducer}: ${e}` };
        } else {
          result = { tag: 'InternalError', value: (e as Error).message };
        }
        c.send({ tag: 'ReducerResult', value: { requestId, timestamp, result } });
      }
      return;
    }
  }
}

// ------------------------------------------------ minimal WebSocket (v2) ---

function wsFrame(payload: Uint8Array, opcode = 2): Buffer {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, len]) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  if (len >= 126 && len < 65536) {
    head[0] = 0x80 | opcode; head[1] = 126; head.writeUInt16BE(len, 2);
  } else if (len >= 65536) {
    head[0] = 0x80 | opcode; head[1] = 127; head.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([head, Buffer.from(payload)]);
}

function tokenFor(id: Identity) {
  return `mock.${id.toHexString()}.sig`;
}

function onUpgrade(req: IncomingMessage, socket: Duplex) {
  const url = new URL(req.url ?? '/', 'http://x');
  const protos = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map(s => s.trim());
  console.error(`[mock] upgrade ${req.url} protocols=${protos.join('|')}`);
  if (!/^\/v1\/database\/[^/]+\/subscribe$/.test(url.pathname) || !protos.includes('v2.bsatn.spacetimedb')) {
    socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    return;
  }
  const tok = url.searchParams.get('token');
  const identity = tok ? Identity.fromString(tok.split('.')[1]) : Identity.fromString(randomBytes(32).toString('hex'));
  const accept = createHash('sha1').update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: v2.bsatn.spacetimedb\r\n\r\n`
  );
  const c: Conn = {
    identity,
    connectionId: ConnectionId.random(),
    sets: new Map(),
    send: msg => {
      const w = new SrcBinaryWriter(256);
      ServerMessage.serialize(w, msg);
      socket.write(wsFrame(Buffer.concat([Buffer.from([0]), Buffer.from(w.getBuffer())])));
    },
  };
  // client_connected
  const changes: Change[] = [];
  upsertUser(changes, identity, u => ({ identity, name: u?.name, online: true }));
  conns.add(c);
  c.send({ tag: 'InitialConnection', value: { identity, connectionId: c.connectionId, token: tok ?? tokenFor(identity) } });
  broadcast(changes, c);

  let buf = Buffer.alloc(0);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    conns.delete(c);
    const ch: Change[] = [];
    upsertUser(ch, identity, u => ({ identity, name: u?.name, online: false }));
    broadcast(ch);
  };
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (buf.length < 2) return;
      const opcode = buf[0] & 0x0f;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      const masked = (buf[1] & 0x80) !== 0;
      const maskOff = off;
      if (masked) off += 4;
      if (buf.length < off + len) return;
      const payload = Buffer.from(buf.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= buf[maskOff + (i % 4)];
      buf = buf.subarray(off + len);
      if (opcode === 8) { socket.end(wsFrame(new Uint8Array(0), 8)); close(); return; }
      if (opcode === 9) { socket.write(wsFrame(payload, 10)); continue; }
      if (opcode !== 2) continue;
      const msg = ClientMessage.deserialize(new SrcBinaryReader(payload));
      handleClientMessage(c, msg);
    }
  });
  socket.on('close', close);
  socket.on('error', close);
}

const server = createServer((req, res) => {
  console.error(`[mock] ${req.method} ${req.url}`);
  if (req.method === 'POST' && req.url === '/v1/identity/websocket-token') {
    const auth = String(req.headers.authorization ?? '');
    res.writeHead(auth.startsWith('Bearer mock.') ? 200 : 401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: auth.slice('Bearer '.length) }));
    return;
  }
  res.writeHead(req.url?.startsWith('/v1/database/chat') ? 200 : 404);
  res.end();
});
server.on('upgrade', onUpgrade);
server.listen(Number(process.argv[2] ?? 3999), '127.0.0.1', () =>
  console.error(`[mock] listening on 127.0.0.1:${process.argv[2] ?? 3999}`)
);
