// Node 20 has no global WebSocket. Install undici's implementation as
// `globalThis.WebSocket` before anything from the SDK runs, so the SDK uses
// exactly the same code path it uses in a browser / Node >= 22.
//
// Must be the first import of the test entry point.
import { WebSocket as UndiciWebSocket } from 'undici';

if (typeof (globalThis as { WebSocket?: unknown }).WebSocket === 'undefined') {
  (globalThis as { WebSocket?: unknown }).WebSocket = UndiciWebSocket;
}

// Browsers resolve every `*.localhost` name to the loopback address
// (RFC 6761), which is how tenant URLs of a local server
// (`http://<database>.localhost:3000`) work in them; Node asks the system
// resolver, which does not. Resolve them as a browser would, for the
// WebSocket and for fetch.
import { Agent, setGlobalDispatcher } from 'undici';
import { lookup } from 'node:dns';

setGlobalDispatcher(
  new Agent({
    connect: {
      lookup: (hostname, options, callback) => {
        if (hostname === 'localhost' || hostname.endsWith('.localhost')) {
          if ((options as { all?: boolean }).all) {
            (callback as (e: null, a: { address: string; family: number }[]) => void)(null, [
              { address: '127.0.0.1', family: 4 },
            ]);
          } else {
            (callback as (e: null, a: string, f: number) => void)(null, '127.0.0.1', 4);
          }
          return;
        }
        lookup(hostname, options, callback);
      },
    },
  })
);
