/**
 * A TCP proxy on loopback that a test can cut and restore, to take a service (PostgreSQL,
 * Redis) away from the hub without stopping it for everyone else on the machine. Cut: the
 * listener closes (new connections are refused, as from a stopped server) and every live
 * connection is destroyed on both sides (as from a crashed one). Restore: it listens again on
 * the same port, so the hub's DATABASE_URL/REDIS_URL stay valid.
 */
import net from 'node:net';

export interface TcpProxy {
  readonly port: number;
  /** `proto://user@127.0.0.1:<proxy port>/…`: `url` with its host and port swapped for the proxy's. */
  via(url: string): string;
  /** Refuse new connections and destroy the live ones. */
  cut(): Promise<void>;
  /** Accept connections again (same port). */
  restore(): Promise<void>;
  readonly isCut: boolean;
  /** Connections accepted since start, and live now. */
  stats(): { accepted: number; live: number; cuts: number };
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }, port = 0): Promise<TcpProxy> {
  const live = new Set<net.Socket>();
  let accepted = 0;
  let cuts = 0;
  let cut = false;
  let server: net.Server | null = null;
  let boundPort = port;

  const onConnection = (client: net.Socket) => {
    if (cut) {
      client.destroy();
      return;
    }
    accepted++;
    const upstream = net.connect(target.port, target.host);
    live.add(client);
    live.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      live.delete(client);
      live.delete(upstream);
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  };

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = net.createServer(onConnection);
      s.once('error', reject);
      s.listen(boundPort, '127.0.0.1', () => {
        s.off('error', reject);
        boundPort = (s.address() as net.AddressInfo).port;
        server = s;
        resolve();
      });
    });

  const closeListener = () =>
    new Promise<void>((resolve) => {
      const s = server;
      server = null;
      if (!s) return resolve();
      s.close(() => resolve());
    });

  await listen();

  return {
    get port() {
      return boundPort;
    },
    via(url) {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(boundPort);
      return u.toString();
    },
    async cut() {
      if (cut) return;
      cut = true;
      cuts++;
      const closing = closeListener();
      // resetAndDestroy sends RST where it can, like a server that went away.
      for (const s of [...live]) s.resetAndDestroy();
      live.clear();
      await closing;
    },
    async restore() {
      if (!cut) return;
      // The port may sit in TIME_WAIT for a moment on some systems; retry briefly.
      for (let i = 0; ; i++) {
        try {
          await listen();
          break;
        } catch (err) {
          if (i > 50) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      cut = false;
    },
    get isCut() {
      return cut;
    },
    stats: () => ({ accepted, live: live.size / 2, cuts }),
    async close() {
      cut = true;
      for (const s of [...live]) s.destroy();
      live.clear();
      await closeListener();
    },
  };
}
