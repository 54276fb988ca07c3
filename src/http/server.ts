/**
 * The HTTP servers of the hub (issue 13 item 7): timeouts and a connection cap from `hub.http`,
 * and, when `hub.metrics.port` is set, a separate listener that serves only `/metrics`.
 *
 * Node's defaults are made for friendly clients: a socket that never sends a byte lives
 * headersTimeout (60 s) plus up to one check interval (30 s), and a body may trickle for
 * requestTimeout (300 s). Hundreds of such sockets are cheap to open and hold a process's
 * connections. Here the head must arrive within `headersTimeoutMs`, the whole request within
 * `requestTimeoutMs`, and the expiry is checked every quarter of the head timeout (at most 1 s),
 * so a silent socket is closed within about 1.25 × headersTimeoutMs.
 */
import http from 'node:http';
import express, { type Express } from 'express';
import type { HubContext } from '../context';
import { metricsHandler } from './health';
import { errorHandler, errorBody } from './errors';

export interface HttpSettings {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
}

export const DEFAULT_HTTP_SETTINGS: HttpSettings = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 65_000, maxConnections: 2000 };

export function createHttpServer(app: http.RequestListener, s: HttpSettings = DEFAULT_HTTP_SETTINGS): http.Server {
  // Node requires requestTimeout ≥ headersTimeout (else the head timeout is never reached).
  const headersTimeout = Math.min(s.headersTimeoutMs, s.requestTimeoutMs);
  const server = http.createServer(
    {
      headersTimeout,
      requestTimeout: s.requestTimeoutMs,
      keepAliveTimeout: s.keepAliveTimeoutMs,
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4))),
    },
    app,
  );
  // Node's own keep-alive timer must not fire before the head timeout of a re-used socket does.
  server.keepAliveTimeout = s.keepAliveTimeoutMs;
  if (s.maxConnections > 0) server.maxConnections = s.maxConnections;
  return server;
}

/** The separate `/metrics` listener (hub.metrics.port): nothing else is served on it. */
export function createMetricsApp(ctx: HubContext): Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/metrics', metricsHandler(ctx));
  app.use((_req, res) => void res.status(404).json(errorBody('not_found', 'this port serves only /metrics')));
  app.use(errorHandler(ctx.logger));
  return app;
}
