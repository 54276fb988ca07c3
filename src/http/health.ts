/** Health, readiness, metrics and the hub's public keys (contract §5–§6). */
import crypto from 'node:crypto';
import express, { type RequestHandler, type Router } from 'express';
import type { HubContext } from '../context';
import { circuitBreakers } from '../delivery/circuit-breaker';
import { HttpError } from './errors';

/**
 * `/metrics` (Prometheus). With `hub.metrics.token` it answers only `Authorization: Bearer <token>`
 * (compared in constant time): the metrics name merchants, partners and traffic volumes.
 */
export function metricsHandler(ctx: HubContext): RequestHandler {
  const token = ctx.config.hub.metrics?.token;
  const expected = token ? crypto.createHash('sha256').update(token).digest() : null;
  return async (req, res) => {
    if (expected) {
      const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
      const offered = crypto.createHash('sha256').update(m ? m[1].trim() : '').digest();
      if (!m || !crypto.timingSafeEqual(offered, expected)) {
        throw new HttpError(401, 'unauthorized', '/metrics needs Authorization: Bearer <hub.metrics.token>', { 'WWW-Authenticate': 'Bearer realm="metrics"' });
      }
    }
    res.setHeader('Cache-Control', 'no-store');
    res.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  };
}

export function healthRouter(ctx: HubContext): Router {
  const router = express.Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const checks: Record<string, string> = {};
    let ok = true;
    for (const [name, check] of [['database', () => ctx.db.ping()], ['queue', () => ctx.dispatcher.ping()]] as const) {
      try {
        await Promise.race([check(), new Promise((_r, reject) => setTimeout(() => reject(new Error('timed out')), 2000).unref())]);
        checks[name] = 'ok';
      } catch (err) {
        ok = false;
        // The reason goes to the log, not to whoever asks: backend errors name hosts, users and versions.
        checks[name] = 'unavailable';
        ctx.logger.warn('readiness check failed', { check: name, error: (err as Error).message });
      }
    }
    // Partner circuits are shown, not checked: an agency outage must not take the hub out of the
    // load balancer, or the PSPs' webhooks would be refused too (they are stored and wait).
    const circuits = circuitBreakers(ctx).snapshot(new Date());
    res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'not ready', checks, database: ctx.db.kind, queue: ctx.dispatcher.kind, circuits });
  });
  // On its own port (hub.metrics.port, served by hub.ts) it is not on the public one at all.
  if (ctx.config.hub.metrics?.port === undefined) router.get('/metrics', metricsHandler(ctx));
  router.get('/.well-known/jwks.json', (_req, res) => {
    res.json(ctx.signer.jwks());
  });
  return router;
}
