/**
 * A merchant's webhook endpoint for tests: an express server on loopback that keeps every
 * delivery (raw body and headers) and answers with the statuses it is told to, in order.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';

export interface Delivery {
  at: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  status: number;
}

export interface Receiver {
  url: string;
  deliveries: Delivery[];
  /** Answer the next deliveries with these statuses (then 200 again). */
  answer(...statuses: number[]): void;
  /** Extra headers on the next non-2xx answer (e.g. Retry-After). */
  headers: Record<string, string>;
  stop(): Promise<void>;
}

export async function startReceiver(path = '/hooks/collection'): Promise<Receiver> {
  const deliveries: Delivery[] = [];
  const queue: number[] = [];
  const app = express();
  const extra: Record<string, string> = {};
  // The raw bytes: a signature is checked over exactly what was sent.
  app.post(path, express.raw({ type: () => true, limit: '1mb' }), (req, res) => {
    const status = queue.shift() ?? 200;
    deliveries.push({ at: Date.now(), headers: req.headers, body: Buffer.isBuffer(req.body) ? req.body.toString('utf8') : '', status });
    if (status >= 300) res.set(extra);
    res.status(status).send(status >= 300 ? 'not now' : 'ok');
  });
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}${path}`,
    deliveries,
    headers: extra,
    answer: (...statuses) => queue.push(...statuses),
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
