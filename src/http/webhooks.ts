/**
 * Ingress (design.md, "Verify, then parse" and "Ack fast, work later"): take the raw bytes,
 * let the PSP's connector verify them, store each event (deduplicated on merchant + provider +
 * event id) with its outbox row in one transaction, and only then answer 2xx.
 */
import express, { type RequestHandler, type Response, type Router } from 'express';
import type { HubContext } from '../context';
import { pspConnectors } from '../../connectors/registry';
import { WebhookRejection, type InboundRequest, type RawInboundEvent } from '../../connectors/psp/types';
import { recordExchanges } from '../exchanges/exchange-log';
import { createWebhookGroupCommit, type GroupCommitOptions, type IngestEvent } from '../ingest/group-commit';
import { HttpError, errorBody } from './errors';
import { DatabaseUnavailable } from '../store/db';
import { assertShallow, isForm, isJson, mediaType, storable, storableJson } from './body-guard';
import { redactText } from '../observability/redact';
import { chargeOrThrow, type LimitRule } from './rate-limit';
import type { VerificationGuard } from '../ingest/verification-failures';
import { UnsignedCoalescer } from '../ingest/unsigned-coalescer';

/**
 * An event as it is stored. The payload is serialized once, here; storableJson only rebuilds it
 * when the text shows something PostgreSQL cannot store.
 */
function storableEvent(ev: RawInboundEvent): IngestEvent {
  return {
    providerEventId: storable(ev.providerEventId),
    eventType: storable(ev.eventType),
    occurredAt: ev.occurredAt == null ? null : storable(ev.occurredAt),
    payloadJson: storableJson(ev.payload),
  };
}

function lowerHeaders(h: Record<string, string | string[] | undefined>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = Array.isArray(v) ? v.join(',') : v;
  return out;
}

/**
 * What res.json sends (same status, headers and body), without express's content-type
 * negotiation, charset rewriting and freshness checks: the hot path's answer is a small object.
 */
function sendJson(res: Response, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

export interface WebhookRouterOptions {
  /**
   * The merchant's webhook budget, charged only once a delivery has been verified (issue 13 item 2):
   * a forged delivery never spends it. `unsignedBudget` is the lower one of deliveries nothing
   * authenticates (Mollie classic), so posts anyone can make cannot spend the signed budget either.
   */
  merchantBudget?: LimitRule;
  unsignedBudget?: LimitRule;
  /** Where deliveries that fail verification are charged, counted and logged (ingest/verification-failures.ts). */
  verificationGuard?: VerificationGuard;
  /** Unsigned deliveries for one resource within this window are one stored event and one fetch [0: off]. */
  coalesceUnsignedMs?: number;
  /** How concurrent deliveries are committed together (ingest/group-commit.ts). */
  groupCommit?: GroupCommitOptions;
}

/**
 * The one answer for a webhook URL that leads nowhere: an unknown merchant and a merchant without
 * that provider answer exactly the same, so the URL space tells a prober nothing about who is a
 * customer of the hub or which PSPs they use (issue 13 item 7).
 */
export const NO_WEBHOOK_ENDPOINT = () => new HttpError(404, 'not_found', 'no webhook endpoint at this URL');

/**
 * What is refused before a byte of the body is read: an unknown merchant or provider (404) and a
 * body that is neither JSON nor a form (415) — every PSP we speak posts one of the two.
 */
function preflight(ctx: HubContext): RequestHandler {
  return (req, _res, next) => {
    const { provider, merchantId } = req.params as { provider: string; merchantId: string };
    const merchant = ctx.merchants.get(merchantId);
    if (!merchant || !pspConnectors.get(provider) || !Object.hasOwn(merchant.providers, provider) || !merchant.providers[provider]) throw NO_WEBHOOK_ENDPOINT();
    const type = mediaType(req.headers['content-type']);
    if (!isJson(type) && !isForm(type)) {
      throw new HttpError(415, 'unsupported_media_type', `a webhook body is application/json or application/x-www-form-urlencoded, not ${type || 'without a Content-Type'}`);
    }
    next();
  };
}

export function webhookRouter(ctx: HubContext, opts: WebhookRouterOptions = {}): Router {
  const router = express.Router();
  const committer = createWebhookGroupCommit({ db: ctx.db, dispatcher: ctx.dispatcher, now: () => ctx.clock.now() }, opts.groupCommit);
  const coalescer = opts.coalesceUnsignedMs && opts.coalesceUnsignedMs > 0 ? new UnsignedCoalescer(opts.coalesceUnsignedMs) : null;
  const guard = opts.verificationGuard;
  router.post(
    '/v1/webhooks/:provider/:merchantId',
    preflight(ctx),
    // An address that keeps failing verification is refused before its body is read.
    (req, _res, next) => {
      guard?.checkAddress(req);
      next();
    },
    // No inflation: PSPs do not compress webhooks, and the signature is over the bytes as sent.
    express.raw({ type: () => true, limit: ctx.config.hub.maxBodyBytes, inflate: false }),
    async (req, res) => {
      const { provider, merchantId } = req.params as { provider: string; merchantId: string };
      const started = Date.now();
      const merchant = ctx.merchants.get(merchantId)!;
      const connector = pspConnectors.get(provider)!;
      const rawBody = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      // Before the connector parses anything (Stripe's SDK JSON-parses once the signature matches).
      assertShallow(rawBody);
      const inbound: InboundRequest = {
        headers: lowerHeaders(req.headers),
        rawBody,
        contentType: String(req.headers['content-type'] ?? ''),
      };
      let delivery;
      try {
        delivery = await connector.verify(inbound, merchant.providers[provider], ctx.clock.now());
      } catch (thrown) {
        let err = thrown;
        if (!(err instanceof WebhookRejection)) {
          // verify is pure (no I/O): anything but a WebhookRejection is a connector bug met by
          // input it did not expect. Fail closed — a delivery that could not be verified is
          // refused and never stored — and say so loudly; the PSP retries a 4xx like a 5xx.
          ctx.logger.error('webhook verification failed unexpectedly (connector bug); refused', { merchantId, provider, error: (err as Error)?.message, stack: (err as Error)?.stack });
          err = new WebhookRejection(400, `the ${provider} webhook could not be verified`);
        }
        if (!(err instanceof WebhookRejection)) throw err;
        ctx.metrics.webhooks.inc({ provider, outcome: 'rejected' });
        ctx.logger.warn('webhook rejected', { merchantId, provider, status: err.status, reason: err.message });
        // Not the merchant's budget, and not one sync-log row each: charged to the sender's address,
        // counted, and one line per window in the merchant's sync log, written at the first refusal
        // so a merchant sees a misconfigured secret at once (ingest/verification-failures.ts).
        if (guard) guard.refused(req, { endpoint: 'webhook', merchantId, party: provider, operation: 'webhook', status: err.status, reason: err.message });
        else {
          await ctx.db
            .tx((sql) => recordExchanges(sql, [{ merchantId, direction: 'in', party: provider, operation: 'webhook', outcome: 'rejected', httpStatus: err.status, latencyMs: Date.now() - started, summary: redactText(err.message), at: ctx.clock.now() }]))
            .catch(() => undefined);
        }
        res.status(err.status).json(errorBody('rejected', err.message));
        return;
      }
      // Verified: now it may spend the merchant's budget (unsigned deliveries their own, lower one).
      const budget = delivery.unsigned ? opts.unsignedBudget : opts.merchantBudget;
      if (budget) chargeOrThrow(budget, req);
      // JSON allows what PostgreSQL cannot store (NUL, lone surrogates): made storable, or a
      // validly signed event would be a 500 retried until the PSP gives up.
      let events = delivery.events.map(storableEvent);
      const coalesceKey = delivery.unsigned?.coalesceKey;
      if (coalescer && coalesceKey !== undefined && events.length === 1) {
        // One stored event and one fetch per resource and window, the fetch after the window (unsigned-coalescer.ts).
        const w = coalescer.window(merchantId, provider, coalesceKey, ctx.clock.now().getTime());
        events = [{ ...events[0], providerEventId: storable(w.providerEventId), dueAt: w.dueAt }];
      }
      // Stored with whatever other deliveries came in at the same moment, in one transaction;
      // this resolves only once that transaction has committed (ingest/group-commit.ts).
      const stored = await committer.store({ merchantId, provider, events, httpStatus: delivery.ack?.status ?? 200, started });
      const fresh = stored.fresh;
      ctx.metrics.webhooks.inc({ provider, outcome: fresh ? 'stored' : 'duplicate' });
      const ack: NonNullable<typeof delivery.ack> = delivery.ack ?? { status: 200, body: { received: true, events: delivery.events.length, new: fresh } };
      if (typeof ack.body === 'string') res.status(ack.status).type(ack.contentType ?? 'text/plain').send(ack.body);
      else sendJson(res, ack.status, ack.body);
    },
  );
  return router;
}

export { DatabaseUnavailable };
