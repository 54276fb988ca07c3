/**
 * HTTP client for one Riverty-shaped agency (modelled on Riverty Back in Flow, collections.md §A):
 * an OAuth2 bearer token from ./token.ts on every call (refreshed once and the call sent again when
 * the agency answers 401 mid-run), `Idempotency-Key` on every mutating call plus Riverty's own
 * `paymentNumber` on payments, the asynchronous claim number resolved from the hand-over's
 * `requestId`, the transaction feed pulled by `sortNumber`, every exchange reported for the sync log
 * (never a token or the client secret), and every failure turned into a DeliveryError whose
 * `retryable` drives the outbox (design.md habits 3, 7, 8). Pull-only: Riverty has no push.
 */
import type { AgencyUpdate } from '../../../src/domain/types';
import { createAgencyHttp, failure, idempotencyKeyOf, ok, parseAnswer, segment, type Method, type SendOptions, type Sent } from '../http';
import { DeliveryError, type AgencyCaseView, type AgencyClient, type AgencyConnectorDeps, type CallContext, type ReadContext } from '../types';
import {
  InvalidRequestError,
  mapStatus,
  normalizeTransaction,
  toClaimRequest,
  toInvoice,
  toMoney,
  toPauseRequest,
  toPaymentRequest,
  toRecallRequest,
} from './normalize';
import {
  claimViewSchema,
  conflictSchema,
  createdClaimSchema,
  requestStatusSchema,
  transactionsPageSchema,
  type RivertyPartnerConfig,
} from './schema';
import { createTokenSource, redactAll, type TokenSource } from './token';

/** Upper bound of `limit` on the feed, whatever the caller asks. */
export const MAX_PULL_LIMIT = 1000;
/** A hand-over Riverty has not registered yet is asked about again after this long. */
export const CLAIM_PENDING_RETRY_MS = 5_000;
/** requestId → claim number is fixed once assigned; this many are remembered per client. */
const CLAIM_CACHE_SIZE = 10_000;

export interface RivertyClientOptions {
  /** Wall clock in ms, for token expiry and the feed's gap grace (tests move it). */
  now?: () => number;
}

export interface RivertyClient extends AgencyClient {
  /** The token source, for tests and diagnostics. */
  readonly tokens: TokenSource;
}

interface ClaimRef {
  claimNumber: string;
  contractNumber?: string;
}

function saysAlreadyExists(body: unknown): boolean {
  const pattern = /already[ _-]?exists|duplicate/i;
  if (typeof body === 'string') return pattern.test(body);
  const parsed = conflictSchema.safeParse(body);
  if (!parsed.success) return false;
  const e = parsed.data.error;
  const texts = typeof e === 'string' ? [e] : [e?.code, e?.message];
  return texts.some((t) => t !== undefined && pattern.test(t));
}

/** A request body built from the hub's data that Riverty would refuse anyway: permanent, before sending. */
function build<T>(make: () => T): T {
  try {
    return make();
  } catch (err) {
    if (err instanceof InvalidRequestError) throw new DeliveryError(false, err.message);
    throw err;
  }
}

/** `"41"`, or `"41@<ms>"` while a gap right after 41 has been waited on since then. Null: from the start. */
export function parseCursor(cursor: string | null): { last: number; gapSince?: number } {
  if (cursor === null || cursor === '') return { last: -1 };
  const m = /^(-?\d+)(?:@(\d+))?$/.exec(cursor);
  if (!m || Number(m[1]) < -1) throw new DeliveryError(false, `"${cursor}" is not a cursor of the Riverty transaction feed`);
  return { last: Number(m[1]), ...(m[2] !== undefined ? { gapSince: Number(m[2]) } : {}) };
}

export function createRivertyClient(deps: AgencyConnectorDeps<RivertyPartnerConfig>, options: RivertyClientOptions = {}): RivertyClient {
  const { config, mapping } = deps;
  const now = options.now ?? Date.now;
  const tokenUrl = config.tokenUrl ?? `${config.baseUrl.replace(/\/+$/, '')}/oauth/token`;
  const tokens = createTokenSource({
    tokenUrl,
    clientId: config.clientId,
    clientSecret: config.clientSecret,
    audience: config.audience,
    auth: config.tokenAuth,
    timeoutMs: config.timeoutMs,
    now,
  });

  const http = createAgencyHttp(config);

  const claimCache = new Map<string, ClaimRef>();
  function remember(requestId: string, ref: ClaimRef): void {
    claimCache.delete(requestId);
    claimCache.set(requestId, ref);
    if (claimCache.size > CLAIM_CACHE_SIZE) claimCache.delete(claimCache.keys().next().value!);
  }

  /** One call with `token`; what is logged is redacted of every token and the client secret. */
  function once(method: Method, path: string, token: string, opts: SendOptions): Promise<Sent> {
    return http.send(method, path, token, (value) => redactAll(value, tokens.secrets()), opts);
  }

  /**
   * One call with the current token. A 401 means the token was refused (expired early, revoked,
   * the agency's clock ahead of ours): drop it, fetch a new one and send the call once more. The
   * Idempotency-Key makes the second send safe for a mutating call.
   */
  async function send(method: Method, path: string, opts: SendOptions = {}): Promise<Sent> {
    const token = await tokens.get(opts.onExchange);
    const first = await once(method, path, token, opts);
    if (first.status !== 401) return first;
    tokens.invalidate(token);
    return once(method, path, await tokens.get(opts.onExchange), opts);
  }

  /**
   * The hub keeps the hand-over's `requestId` as the case's partner ref; Riverty's calls on a claim
   * take its claim number, assigned asynchronously. Asked once, then remembered (it never changes).
   */
  async function claimOf(partnerRef: string, onExchange: ReadContext['onExchange']): Promise<ClaimRef> {
    const hit = claimCache.get(partnerRef);
    if (hit) return hit;
    const s = await send('GET', `/v1/requests/${segment(partnerRef, 'request id')}`, { onExchange });
    if (!ok(s)) throw failure(s);
    const r = parseAnswer(requestStatusSchema, s);
    if (r.status === 'REJECTED') {
      throw new DeliveryError(false, `hand-over ${partnerRef} was rejected by Riverty${r.rejectionReason ? `: ${r.rejectionReason}` : ''}`, s.status, s.data);
    }
    if (r.status !== 'PROCESSED' || !r.claimNumber) {
      throw new DeliveryError(true, `hand-over ${partnerRef} has no claim number yet (Riverty registers claims asynchronously)`, s.status, s.data, CLAIM_PENDING_RETRY_MS);
    }
    const ref: ClaimRef = { claimNumber: r.claimNumber, ...(r.contractNumber ? { contractNumber: r.contractNumber } : {}) };
    remember(partnerRef, ref);
    return ref;
  }

  async function postOnClaim(partnerRef: string, action: string, ctx: CallContext, body: (ref: ClaimRef) => unknown): Promise<Sent> {
    const idempotencyKey = idempotencyKeyOf(ctx);
    const ref = await claimOf(partnerRef, ctx.onExchange);
    const path = `/v1/claims/${segment(ref.claimNumber, 'claim number')}/${action}`;
    return send('POST', path, { body: build(() => body(ref)), idempotencyKey, onExchange: ctx.onExchange });
  }

  const limitOf = (limit: number) => (Number.isFinite(limit) && limit >= 1 ? Math.min(Math.floor(limit), MAX_PULL_LIMIT) : config.pull.limit);

  return {
    tokens,

    async submitCase(c, ctx) {
      const idempotencyKey = idempotencyKeyOf(ctx);
      const body = build(() => toClaimRequest(c, config.debtorFields));
      const s = await send('POST', '/v1/claims', { body, idempotencyKey, onExchange: ctx.onExchange });
      if (ok(s)) return { partnerRef: parseAnswer(createdClaimSchema, s).requestId, status: 'submitted' };
      if (s.status === 409) {
        // An earlier attempt handed the claim over and its answer was lost: Riverty names it.
        const conflict = conflictSchema.safeParse(s.data);
        if (conflict.success && conflict.data.requestId) return { partnerRef: conflict.data.requestId, status: 'submitted' };
      }
      throw failure(s);
    },

    async addClaim(casePartnerRef, claim, ctx) {
      const s = await postOnClaim(casePartnerRef, 'invoices', ctx, (ref) => ({
        ...(ref.contractNumber ? { contractNumber: ref.contractNumber } : {}),
        invoices: [toInvoice(claim)],
      }));
      if (ok(s)) return;
      if (s.status === 409 && saysAlreadyExists(s.data)) return;
      throw failure(s);
    },

    async reportPayment(casePartnerRef, claimReference, p, ctx) {
      // paymentNumber is Riverty's own dedupe ("payments sent twice are only processed once"):
      // the outbox row's key, so a resend after a lost answer is the same payment.
      const s = await postOnClaim(casePartnerRef, 'payments', ctx, (ref) => toPaymentRequest(claimReference, p, ctx.idempotencyKey, ref.contractNumber));
      if (ok(s)) return;
      throw failure(s);
    },

    async withdraw(casePartnerRef, w, ctx) {
      const s = await postOnClaim(casePartnerRef, 'recalls', ctx, (ref) => toRecallRequest(w, ref.contractNumber));
      if (ok(s)) return;
      throw failure(s);
    },

    async hold(casePartnerRef, h, ctx) {
      const s = await postOnClaim(casePartnerRef, 'hold', ctx, () => toPauseRequest(h));
      if (ok(s)) return;
      throw failure(s);
    },

    async resume(casePartnerRef, r, ctx) {
      const s = await postOnClaim(casePartnerRef, 'resume', ctx, () => toPauseRequest(r));
      if (ok(s)) return;
      throw failure(s);
    },

    async getCase(casePartnerRef, ctx) {
      const ref = await claimOf(casePartnerRef, ctx?.onExchange);
      const s = await send('GET', `/v1/claims/${segment(ref.claimNumber, 'claim number')}`, { onExchange: ctx?.onExchange });
      if (!ok(s)) throw failure(s);
      const view = parseAnswer(claimViewSchema, s);
      const mapped = (raw: { status: string; closingType?: string | null }) => {
        try {
          return mapStatus(raw, mapping);
        } catch (err) {
          throw new DeliveryError(false, `GET ${s.path}: ${(err as Error).message}`, s.status, s.data);
        }
      };
      const result: AgencyCaseView = {
        id: view.claimNumber,
        reference: view.contractNumber,
        status: mapped(view).status,
        claims: view.invoices.map((inv) => {
          const m = mapped(inv);
          return { reference: inv.invoiceNumber, status: m.status, ...(m.reason ? { reason: m.reason } : {}), amountCollected: toMoney(inv.collectedAmount, inv.currency) };
        }),
      };
      return result;
    },

    /**
     * The feed after the cursor, oldest first. sortNumber counts 0, 1, 2… without holes, so a hole
     * is a transaction Riverty has numbered but not shown yet: everything after it is returned (the
     * hub orders by occurredAt/seq and deduplicates by id), but the cursor stays before the hole
     * until it fills — or until `pull.gapGraceSeconds` have passed, when it steps over.
     */
    async pullUpdates(cursor, limit, ctx) {
      const { last, gapSince } = parseCursor(cursor);
      const query = new URLSearchParams({ fromSortNumber: String(last + 1), limit: String(limitOf(limit)) });
      const s = await send('GET', `/v1/transactions?${query.toString()}`, { onExchange: ctx?.onExchange });
      if (!ok(s)) throw failure(s);
      const page = parseAnswer(transactionsPageSchema, s);
      const fresh = page.transactions.filter((t) => t.sortNumber > last).sort((a, b) => a.sortNumber - b.sortNumber);
      // Throws UnmappedValueError on a word the mapping lacks: the cursor does not move past it.
      const updates: AgencyUpdate[] = fresh.map((t) => normalizeTransaction(t, mapping));
      for (const t of fresh) {
        if (t.requestId && t.claimNumber) remember(t.requestId, { claimNumber: t.claimNumber, contractNumber: t.contractNumber });
      }

      let contiguous = last;
      for (const t of fresh) {
        if (t.sortNumber === contiguous + 1) contiguous++;
        else if (t.sortNumber > contiguous + 1) break;
      }
      const highest = fresh.length ? fresh[fresh.length - 1].sortNumber : last;
      let next: string | null;
      if (highest === contiguous) {
        next = fresh.length || gapSince !== undefined ? String(contiguous) : cursor;
      } else {
        const t = now();
        // The same hole as last time keeps its clock; a new one starts it.
        const since = gapSince !== undefined && contiguous === last ? gapSince : t;
        next = t - since >= config.pull.gapGraceSeconds * 1000 ? String(highest) : `${contiguous}@${since}`;
      }
      return { updates, next };
    },
  };
}
