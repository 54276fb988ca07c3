/**
 * HTTP client for one reference-protocol agency (contract §5). The one place that talks to the
 * agency: signs a fresh JWT per request, sends `Idempotency-Key` on every mutating call, reports
 * every exchange for the sync log (never the token), and turns every failure into a
 * DeliveryError whose `retryable` drives the outbox (design.md habits 3, 7, 8).
 */
import type { AgencyUpdate } from '../../../src/domain/types';
import { createAgencyHttp, failure, idempotencyKeyOf, ok, parseAnswer, segment, type Method, type SendOptions, type Sent } from '../http';
import {
  DeliveryError,
  type AgencyCaseView,
  type AgencyClient,
  type AgencyConnectorDeps,
  type CallContext,
  type CaseDebtor,
  type CaseSubmission,
} from '../types';
import { normalizeUpdate } from './normalize';
import {
  caseViewSchema,
  conflictSchema,
  createdCaseSchema,
  updatesPageSchema,
  type DebtorField,
  type ReferencePartnerConfig,
} from './schema';
import { createPushVerifier } from './verify';

/** Upper bound of `limit` on `GET /v1/updates`, whatever the caller asks. */
export const MAX_PULL_LIMIT = 1000;
const REDACTED = '[redacted]';

// Kept here for existing importers (reference/index.ts, riverty/token.ts, tests).
export { parseRetryAfter } from '../http';

/** Replace every occurrence of `secret` in strings of a JSON-like value (an agency may echo our header). */
function redact(value: unknown, secret: string): unknown {
  if (typeof value === 'string') return value.split(secret).join(REDACTED);
  if (Array.isArray(value)) return value.map((v) => redact(v, secret));
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v, secret)]));
  }
  return value;
}

/** Data minimisation: only the debtor fields the partner is configured to receive leave the hub. */
function restrictDebtor(c: CaseSubmission, allowed: DebtorField[] | undefined): CaseSubmission {
  if (!allowed) return c;
  const keep = new Set<string>(['reference', 'type', 'name', ...allowed]);
  const debtor = Object.fromEntries(Object.entries(c.debtor).filter(([k]) => keep.has(k))) as unknown as CaseDebtor;
  return { ...c, debtor };
}

/**
 * "This already exists" in whatever field the agency put it (the protocol leaves error bodies
 * open). Closed-case and closed-claim conflicts do not match, so they stay failures.
 */
function saysAlreadyExists(body: unknown): boolean {
  const pattern = /already[ _-]?exists|already has|duplicate/i;
  if (typeof body === 'string') return pattern.test(body);
  const parsed = conflictSchema.safeParse(body);
  if (!parsed.success) return false;
  const { error, code, message } = parsed.data;
  const texts = typeof error === 'string' ? [error, code, message] : [error?.code, error?.message, code, message];
  return texts.some((t) => t !== undefined && pattern.test(t));
}

export function createReferenceClient(deps: AgencyConnectorDeps<ReferencePartnerConfig>): AgencyClient {
  const { partnerId, hubId, config, mapping, signer } = deps;
  const outbound = config.auth.outbound;

  const http = createAgencyHttp(config);

  function tokenFor(): string {
    try {
      return signer.sign({
        audience: partnerId,
        alg: outbound.alg,
        secret: outbound.alg === 'HS256' ? outbound.secret : undefined,
      });
    } catch (err) {
      // A signing failure is configuration (missing or mismatched hub key): retrying cannot help.
      throw new DeliveryError(false, `cannot sign the token for ${partnerId}: ${(err as Error).message}`);
    }
  }

  async function send(method: Method, path: string, opts: SendOptions): Promise<Sent> {
    const token = tokenFor();
    return http.send(method, path, token, (value) => redact(value, token), opts);
  }

  /**
   * `POST /v1/cases/:id/hold` and `/resume` `{ reason, claimReference? }` → 202: the hub's documented
   * extension to contract §5 (like withdraw's `claimReference`), one claim or the whole case.
   */
  async function pause(
    action: 'hold' | 'resume',
    casePartnerRef: string,
    p: { reason: string; claimReference?: string },
    ctx: CallContext,
  ): Promise<void> {
    const idempotencyKey = idempotencyKeyOf(ctx);
    const path = `/v1/cases/${segment(casePartnerRef, 'case id')}/${action}`;
    const body = p.claimReference === undefined ? { reason: p.reason } : { reason: p.reason, claimReference: p.claimReference };
    const s = await send('POST', path, { body, idempotencyKey, onExchange: ctx.onExchange });
    if (ok(s)) return;
    throw failure(s);
  }

  const verifyPush = createPushVerifier({ partnerId, hubId, inbound: config.auth.inbound, mapping });

  return {
    async submitCase(c, ctx) {
      const idempotencyKey = idempotencyKeyOf(ctx);
      const s = await send('POST', '/v1/cases', {
        body: restrictDebtor(c, config.debtorFields),
        idempotencyKey,
        onExchange: ctx.onExchange,
      });
      if (ok(s)) {
        const created = parseAnswer(createdCaseSchema, s);
        return { partnerRef: created.id, status: created.status };
      }
      if (s.status === 409) {
        // An earlier attempt created the case and its answer was lost: the agency names the case.
        const conflict = conflictSchema.safeParse(s.data);
        if (conflict.success && conflict.data.id) {
          return { partnerRef: conflict.data.id, status: conflict.data.status ?? 'submitted' };
        }
      }
      throw failure(s);
    },

    async addClaim(casePartnerRef, claim, ctx) {
      const idempotencyKey = idempotencyKeyOf(ctx);
      const path = `/v1/cases/${segment(casePartnerRef, 'case id')}/claims`;
      const s = await send('POST', path, { body: claim, idempotencyKey, onExchange: ctx.onExchange });
      if (ok(s)) return;
      // The claim is on the case already (an earlier attempt got through): the goal is reached.
      // Other conflicts (a closed case, say) stay failures.
      if (s.status === 409 && saysAlreadyExists(s.data)) return;
      throw failure(s);
    },

    async reportPayment(casePartnerRef, claimReference, p, ctx) {
      const idempotencyKey = idempotencyKeyOf(ctx);
      const path = `/v1/cases/${segment(casePartnerRef, 'case id')}/claims/${segment(claimReference, 'claim reference')}/payments`;
      const s = await send('POST', path, { body: p, idempotencyKey, onExchange: ctx.onExchange });
      if (ok(s)) return;
      throw failure(s);
    },

    async withdraw(casePartnerRef, w, ctx) {
      const idempotencyKey = idempotencyKeyOf(ctx);
      const path = `/v1/cases/${segment(casePartnerRef, 'case id')}/withdraw`;
      // claimReference is the hub's documented extension to contract §5: withdraw one claim only.
      const body = w.claimReference === undefined ? { reason: w.reason } : { reason: w.reason, claimReference: w.claimReference };
      const s = await send('POST', path, { body, idempotencyKey, onExchange: ctx.onExchange });
      if (ok(s)) return;
      throw failure(s);
    },

    async hold(casePartnerRef, h, ctx) {
      await pause('hold', casePartnerRef, h, ctx);
    },

    async resume(casePartnerRef, r, ctx) {
      await pause('resume', casePartnerRef, r, ctx);
    },

    async getCase(casePartnerRef, ctx) {
      const path = `/v1/cases/${segment(casePartnerRef, 'case id')}`;
      const s = await send('GET', path, { onExchange: ctx?.onExchange });
      if (!ok(s)) throw failure(s);
      const view = parseAnswer(caseViewSchema, s);
      const result: AgencyCaseView = {
        id: view.id,
        reference: view.reference,
        status: view.status,
        claims: view.claims.map((c) => ({
          reference: c.reference,
          status: c.status,
          ...(c.reason != null ? { reason: c.reason } : {}),
          amountCollected: c.amountCollected,
        })),
      };
      return result;
    },

    async pullUpdates(cursor, limit, ctx) {
      const n = Number.isFinite(limit) && limit >= 1 ? Math.min(Math.floor(limit), MAX_PULL_LIMIT) : (config.pull?.limit ?? 100);
      const query = new URLSearchParams();
      if (cursor !== null && cursor !== '') query.set('after', cursor);
      query.set('limit', String(n));
      const s = await send('GET', `/v1/updates?${query.toString()}`, { onExchange: ctx?.onExchange });
      if (!ok(s)) throw failure(s);
      const page = parseAnswer(updatesPageSchema, s);
      // Throws UnmappedValueError on a status/reason the mapping lacks: the page is not
      // acknowledged (the cursor does not move) until the mapping knows it.
      const updates: AgencyUpdate[] = page.updates.map((u) => normalizeUpdate(u, mapping));
      // No `next` from the agency means "nothing newer": keep our place instead of restarting.
      const next = page.next != null && page.next !== '' ? String(page.next) : cursor;
      return { updates, next };
    },

    verifyPush,
  };
}
