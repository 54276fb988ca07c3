/** Health, readiness, metrics and the hub's public keys (contract §5–§6). */
import express, { type Router } from 'express';
import type { HubContext } from '../context';
import { circuitBreakers } from '../delivery/circuit-breaker';

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
        checks[name] = `unavailable: ${(err as Error).message}`;
      }
    }
    // Partner circuits are shown, not checked: an agency outage must not take the hub out of the
    // load balancer, or the PSPs' webhooks would be refused too (they are stored and wait).
    const circuits = circuitBreakers(ctx).snapshot(new Date());
    res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'not ready', checks, database: ctx.db.kind, queue: ctx.dispatcher.kind, circuits });
  });
  router.get('/metrics', async (_req, res) => {
    res.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });
  router.get('/.well-known/jwks.json', (_req, res) => {
    res.json(ctx.signer.jwks());
  });
  return router;
}
