/** The express app: ingress, partner push, merchant API, health; errors mapped in one place. */
import express, { type Express } from 'express';
import type { HubContext } from '../context';
import { webhookRouter } from './webhooks';
import { partnerEventsRouter } from './partner-events';
import { merchantApiRouter } from './merchant-api';
import { merchantActionsRouter } from './merchant-actions';
import { healthRouter } from './health';
import { errorHandler, errorBody } from './errors';
import { createRateLimiters, limitBy, sourceAddress } from './rate-limit';

export function createApp(ctx: HubContext, extra: ((app: Express) => void)[] = []): Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('trust proxy', false);
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
  app.use(
    webhookRouter(ctx, {
      perMerchantLimit: limitBy({
        buckets: limits.webhooksPerMerchant,
        key: (req) => String(req.params.merchantId),
        describe: (req) => `webhooks for merchant ${String(req.params.merchantId)}`,
        onLimited: limited('webhook_merchant'),
      }),
    }),
  );
  app.use(
    partnerEventsRouter(ctx, {
      perPartnerLimit: limitBy({
        buckets: limits.partnerPush,
        key: (req) => String(req.params.partnerId),
        describe: (req) => `pushes of partner ${String(req.params.partnerId)}`,
        onLimited: limited('partner_push'),
      }),
    }),
  );
  // Before the merchant API router, whose /v1/invoices middleware would count a request twice.
  app.use(merchantActionsRouter(ctx, { perMerchantLimit: limitBy({ buckets: limits.apiPerMerchant, key: (req) => req.merchantId, describe: (req) => `the API for merchant ${req.merchantId}`, onLimited: limited('api_merchant') }) }));
  app.use(
    merchantApiRouter(ctx, {
      perMerchantLimit: limitBy({
        buckets: limits.apiPerMerchant,
        key: (req) => req.merchantId,
        describe: (req) => `the API for merchant ${req.merchantId}`,
        onLimited: limited('api_merchant'),
      }),
    }),
  );
  for (const add of extra) add(app);
  app.use((req, res) => {
    res.status(404).json(errorBody('not_found', `no route ${req.method} ${req.path}`));
  });
  app.use(errorHandler(ctx.logger));
  return app;
}
