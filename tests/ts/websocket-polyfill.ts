// Node 20 has no global WebSocket. Install undici's implementation as
// `globalThis.WebSocket` before anything from the SDK runs, so the SDK uses
// exactly the same code path it uses in a browser / Node >= 22.
//
// Must be the first import of the test entry point.
import { WebSocket as UndiciWebSocket } from 'undici';

if (typeof (globalThis as { WebSocket?: unknown }).WebSocket === 'undefined') {
  (globalThis as { WebSocket?: unknown }).WebSocket = UndiciWebSocket;
}
