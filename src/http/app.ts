/** The express app: ingress, partner push, merchant API, health; errors mapped in one place. */
import express, { type Express } from 'express';
import type { HubContext } from '../context';
import { webhookRouter } from './webhooks';
import { partnerEventsRouter } from './partner-events';
import { merchantApiRouter } from './merchant-api';
import { merchantActionsRouter } from './merchant-actions';
import { privacyApiRouter } from './privacy-api';
import { screeningApiRouter } from './screening-api';
import { healthRouter } from './health';
import { errorHandler, errorBody } from './errors';
import { chargeOrThrow, createRateLimiters, limitBy, sourceAddress, type LimitRule } from './rate-limit';
import { merchantAuthOptions, requireMerchant } from './merchant-auth';
import { leakageBounds } from './report-bounds';
import { createVerificationGuard, RejectedDeliveryLog } from '../ingest/verification-failures';
import helmet from 'helmet';
import type { RequestHandler } from 'express';

/**
 * Security headers (helmet) for every answer. The API answers JSON, so its policy allows nothing to
 * load or frame it; the dashboard sets its own, wider Content-Security-Policy (dashboard/index.ts).
 */
const securityHeaders = helmet({
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] } },
  // The hub is an API for servers and a same-origin dashboard; HSTS is the TLS terminator's to set.
  strictTransportSecurity: false,
});

/** API answers are personal and current: never kept by a browser or a shared cache. */
const noStore: RequestHandler = (_req, res, next) => {
  res.setHeader('Cache-Control', 'no-store');
  next();
};

export function createApp(ctx: HubContext, extra: ((app: Express) => void)[] = []): Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  // Off unless configured: behind a reverse proxy, name it (hub.http.trustProxy) so the per-address
  // limits see the client, not the proxy; never `true` on a port clients reach directly (X-Forwarded-For is theirs to forge).
  app.set('trust proxy', ctx.config.hub.http?.trustProxy ?? false);
  app.use(securityHeaders);
  app.use(['/v1', '/healthz', '/readyz', '/metrics'], noStore);
  app.use((req, res, next) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const route = (req.route?.path as string | undefined) ?? 'unmatched';
      ctx.metrics.httpLatency.observe({ route, status: String(res.statusCode) }, Number(process.hrtime.bigint() - started) / 1e9);
    });
    next();
  });
  app.use(healthRouter(ctx));
  // Rate limits (guarantee 9): per source address on every /v1/… request before anything is read,
  // then per merchant or partner inside each router once it is known (rate-limit.ts).
  const limits = createRateLimiters(ctx.config.rateLimits);
  const limited = (scope: string) => () => ctx.metrics.rateLimited.inc({ scope });
  app.use('/v1', limitBy({ buckets: limits.perAddress, key: sourceAddress, describe: (req) => `address ${sourceAddress(req)}`, onLimited: limited('address') }));
  // Verify first, then charge (issue 13 item 2): webhook and push budgets are charged inside the
  // routes once the request is verified; failures go to their address's bucket and one log line per window.
  const rejectedLog = new RejectedDeliveryLog({ db: ctx.db, logger: ctx.logger, now: () => ctx.clock.now() }, ctx.config.ingest?.rejectedLogWindowSeconds ?? 60);
  app.locals.rejectedDeliveries = rejectedLog;
  const verificationGuard = createVerificationGuard({ buckets: limits.failedVerifications, log: rejectedLog, metrics: ctx.metrics });
  app.use(
    webhookRouter(ctx, {
      merchantBudget: {
        buckets: limits.webhooksPerMerchant,
        key: (req) => String(req.params.merchantId),
        describe: (req) => `webhooks for merchant ${String(req.params.merchantId)}`,
        onLimited: limited('webhook_merchant'),
      },
      unsignedBudget: {
        buckets: limits.unsignedWebhooksPerMerchant,
        key: (req) => String(req.params.merchantId),
        describe: (req) => `unsigned ${String(req.params.provider)} webhooks for merchant ${String(req.params.merchantId)}`,
        onLimited: limited('webhook_unsigned'),
      },
      verificationGuard,
      coalesceUnsignedMs: (ctx.config.ingest?.coalesceUnsignedSeconds ?? 0) * 1000,
    }),
  );
  app.use(
    partnerEventsRouter(ctx, {
      partnerBudget: {
        buckets: limits.partnerPush,
        key: (req) => String(req.params.partnerId),
        describe: (req) => `pushes of partner ${String(req.params.partnerId)}`,
        onLimited: limited('partner_push'),
      },
      verificationGuard,
    }),
  );
  // The merchant's API budget, charged once per request however many routers it passes.
  const apiRule: LimitRule = { buckets: limits.apiPerMerchant, key: (req) => req.merchantId, describe: (req) => `the API for merchant ${req.merchantId}`, onLimited: limited('api_merchant') };
  const apiBudget: RequestHandler = (req, _res, next) => {
    const r = req as typeof req & { apiBudgetCharged?: boolean };
    if (!r.apiBudgetCharged && req.merchantId) {
      chargeOrThrow(apiRule, req);
      r.apiBudgetCharged = true;
    }
    next();
  };
  const merchantAuth = requireMerchant(merchantAuthOptions(ctx));
  // The dashboard's exports and totals (dashboard/api.ts) under the same budget as the rest of the API,
  // and the leakage report bounded in period and rows before it is built (report-bounds.ts).
  app.use(['/v1/sync-log.csv', '/v1/case-totals'], merchantAuth, apiBudget);
  app.get(['/v1/reports/leakage', '/v1/reports/leakage.csv'], merchantAuth, apiBudget, leakageBounds(ctx));
  // Before the merchant API router, whose /v1/invoices middleware would count a request twice.
  app.use(merchantActionsRouter(ctx, { perMerchantLimit: apiBudget }));
  app.use(privacyApiRouter(ctx, { perMerchantLimit: apiBudget }));
  app.use(screeningApiRouter(ctx, { perMerchantLimit: apiBudget }));
  app.use(merchantApiRouter(ctx, { perMerchantLimit: apiBudget }));
  for (const add of extra) add(app);
  app.use((req, res) => {
    res.status(404).json(errorBody('not_found', `no route ${req.method} ${req.path}`));
  });
  app.use(errorHandler(ctx.logger));
  return app;
}
