/**
 * The agency's push endpoint (contract §5): `POST /v1/partners/:partnerId/events` with a JWT
 * signed by the agency. Updates are stored once by id before the 200; they are applied later
 * from the outbox.
 */
import express, { type RequestHandler, type Router } from 'express';
import type { HubContext } from '../context';
import { PushRejection } from '../../connectors/agency/types';
import { storePartnerUpdates } from '../sync/partner-updates';
import { spendPushToken } from '../sync/push-replay';
import { recordExchanges } from '../exchanges/exchange-log';
import { HttpError, errorBody } from './errors';
import { assertShallow, isJson, mediaType, storable } from './body-guard';
import { redactText } from '../observability/redact';
import { chargeOrThrow, type LimitRule } from './rate-limit';
import type { VerificationGuard } from '../ingest/verification-failures';

export interface PartnerEventsRouterOptions {
  /** The partner's push budget, charged only once the push's token has been verified (issue 13 item 2). */
  partnerBudget?: LimitRule;
  /** Where pushes that fail verification are charged, counted and logged (ingest/verification-failures.ts). */
  verificationGuard?: VerificationGuard;
}

/** Refused before the body is read: an unknown or pull-only partner (404), a body that is not JSON (415). */
function preflight(ctx: HubContext): RequestHandler {
  return (req, _res, next) => {
    const partnerId = String(req.params.partnerId);
    const partner = ctx.partners.get(partnerId);
    if (!partner) throw new HttpError(404, 'unknown_partner', `no partner ${partnerId}`);
    if (!partner.client.verifyPush) throw new HttpError(404, 'push_not_supported', `partner ${partnerId} is pull-only`);
    const type = mediaType(req.headers['content-type']);
    if (!isJson(type)) throw new HttpError(415, 'unsupported_media_type', `a push body is application/json, not ${type || 'without a Content-Type'}`);
    next();
  };
}

export function partnerEventsRouter(ctx: HubContext, opts: PartnerEventsRouterOptions = {}): Router {
  const router = express.Router();
  const guard = opts.verificationGuard;
  // An address that keeps failing verification is refused before its body is read.
  const addressCheck: RequestHandler = (req, _res, next) => {
    guard?.checkAddress(req);
    next();
  };
  // The raw bytes go to the partner's verifier, which checks the token first and only then parses
  // (design.md habit 1): a forged push is refused 401 whatever its body, and nothing is parsed for it.
  const raw = express.raw({ type: () => true, limit: ctx.config.hub.maxBodyBytes, inflate: false });
  router.post('/v1/partners/:partnerId/events', preflight(ctx), addressCheck, raw, async (req, res) => {
    const partnerId = String(req.params.partnerId);
    const partner = ctx.partners.get(partnerId)!;
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    assertShallow(body);
    let updates;
    let token: { jti: string; expiresAt: Date } | undefined;
    try {
      updates = partner.client.verifyPush!(
        Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v.join(',') : v])),
        body,
        (t) => (token = t),
      );
    } catch (err) {
      if (!(err instanceof PushRejection)) throw err;
      ctx.metrics.partnerUpdates.inc({ partner: partnerId, via: 'push', outcome: 'rejected' });
      ctx.logger.warn('partner push rejected', { partner: partnerId, status: err.status, reason: err.message });
      // Not the partner's budget and not a row each: the sender's address, a metric, one line per window.
      if (guard) guard.refused(req, { endpoint: 'push', merchantId: null, party: partnerId, operation: 'push', status: err.status, reason: err.message });
      else {
        await ctx.db
          .tx((sql) => recordExchanges(sql, [{ merchantId: null, direction: 'in', party: partnerId, operation: 'push', outcome: 'rejected', httpStatus: err.status, summary: redactText(err.message), at: ctx.clock.now() }]))
          .catch(() => undefined);
      }
      res.status(err.status).json(errorBody('rejected', err.message));
      return;
    }
    // Verified: now it may spend the partner's budget.
    if (opts.partnerBudget) chargeOrThrow(opts.partnerBudget, req);
    const now = ctx.clock.now();
    // NUL and lone surrogates are valid JSON but not storable in PostgreSQL (body-guard.ts).
    const storableUpdates = updates.map((u) => storable(u));
    // A token is good for one push (src/sync/push-replay.ts): spent in the same transaction as the updates.
    // Shared with other pushes that come at the same time (src/outbox/commit-group.ts).
    const r = await (ctx.commitShared ?? ctx.commit)(async (sql, outbox) => {
      if (token && !(await spendPushToken(sql, partnerId, token, now))) return null;
      return storePartnerUpdates(sql, outbox, partnerId, storableUpdates, 'push', now);
    });
    if (!r) {
      const reason = 'token replayed: this jti was already used; sign a new token for every push';
      ctx.metrics.partnerUpdates.inc({ partner: partnerId, via: 'push', outcome: 'rejected' });
      ctx.logger.warn('partner push rejected', { partner: partnerId, status: 401, reason });
      if (guard) guard.refused(req, { endpoint: 'push', merchantId: null, party: partnerId, operation: 'push', status: 401, reason });
      res.status(401).json(errorBody('rejected', reason));
      return;
    }
    ctx.metrics.partnerUpdates.inc({ partner: partnerId, via: 'push', outcome: 'stored' }, r.fresh);
    res.status(200).json({ received: updates.length, new: r.fresh, duplicates: r.duplicates });
  });
  return router;
}
