/**
 * Start/stop for the local fake PSP APIs (fake-stripe.ts, fake-mollie.ts, fake-gocardless.ts): an
 * HTTP server on 127.0.0.1, on the given port or a free one, that stop() closes together with the
 * keep-alive connections the SDKs hold open.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LoopbackServer {
  /** Listens on 127.0.0.1 (`port` 0, the default, picks a free one); throws if already started. */
  start(port?: number): Promise<{ url: string; port: number }>;
  /** Closes the server and its open connections; nothing when not started. */
  stop(): Promise<void>;
}

/** `name` labels the "already started" error, e.g. `fake stripe`. */
export function createLoopbackServer(name: string, handler: http.RequestListener): LoopbackServer {
  let server: http.Server | undefined;
  return {
    async start(port = 0) {
      if (server) throw new Error(`${name}: already started`);
      const s = http.createServer(handler);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, '127.0.0.1', () => resolve());
      });
      server = s;
      const actual = (s.address() as AddressInfo).port;
      return { url: `http://127.0.0.1:${actual}`, port: actual };
    },
    async stop() {
      const s = server;
      server = undefined;
      if (!s) return;
      // The SDKs keep connections alive; close them so the port and the test process are freed.
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}
