/**
 * HTTP client for one reference-protocol agency (contract §5). The one place that talks to the
 * agency: signs a fresh JWT per request, sends `Idempotency-Key` on every mutating call, reports
 * every exchange for the sync log (never the token), and turns every failure into a
 * DeliveryError whose `retryable` drives the outbox (design.md habits 3, 7, 8).
 */
import axios, { AxiosError, type AxiosInstance, type AxiosResponse } from 'axios';
import type { z } from 'zod';
import type { AgencyUpdate } from '../../../src/domain/types';
import {
  DeliveryError,
  type AgencyCaseView,
  type AgencyClient,
  type AgencyConnectorDeps,
  type CallContext,
  type CaseDebtor,
  type CaseSubmission,
  type ExchangeRecord,
  type ReadContext,
} from '../types';
import { normalizeUpdate } from './normalize';
import {
  caseViewSchema,
  conflictSchema,
  createdCaseSchema,
  describeIssues,
  updatesPageSchema,
  type DebtorField,
  type ReferencePartnerConfig,
} from './schema';
import { createPushVerifier } from './verify';

/** Upper bound of `limit` on `GET /v1/updates`, whatever the caller asks. */
export const MAX_PULL_LIMIT = 1000;
/** An agency answer larger than this is not a protocol answer; refuse it rather than buffer it. */
const MAX_RESPONSE_BYTES = 10 * 1024 * 1024;
const REDACTED = '[redacted]';

/** Retry-After in delta-seconds or HTTP-date (RFC 9110 §10.2.3) → milliseconds from `now`. */
export function parseRetryAfter(value: unknown, now: number = Date.now()): number | undefined {
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // Every HTTP-date form names its month in letters; without this, V8 would read "-5" as a year.
  if (!/[A-Za-z]{3}/.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Replace every occurrence of `secret` in strings of a JSON-like value (an agency may echo our header). */
function redact(value: unknown, secret: string): unknown {
  if (typeof value === 'string') return value.split(secret).join(REDACTED);
  if (Array.isArray(value)) return value.map((v) => redact(v, secret));
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v, secret)]));
  }
  return value;
}

function summarize(body: unknown): string {
  if (body === undefined || body === '') return '(empty body)';
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/**
 * A path segment for the agency's URL. `.` and `..` would be collapsed by URL parsing and send
 * the call to another resource, so they are refused, as is an empty id.
 */
function segment(value: string, what: string): string {
  if (typeof value !== 'string' || value === '' || value === '.' || value === '..') {
    throw new DeliveryError(false, `invalid ${what} for the agency URL: ${JSON.stringify(value)}`);
  }
  return encodeURIComponent(value);
}

/** Printable ASCII without spaces: anything else cannot travel in a header and would fail every retry. */
function idempotencyKeyOf(ctx: CallContext | undefined): string {
  const key = ctx?.idempotencyKey;
  if (!key || !/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new DeliveryError(false, `a mutating agency call needs an Idempotency-Key of 1-255 printable characters, got ${JSON.stringify(key)}`);
  }
  return key;
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

/**
 * Axios errors that no retry can fix: the request itself was never valid. Everything else
 * without a response (refused, reset, DNS, timeout, a body cut off mid-stream) is transient.
 */
const PERMANENT_TRANSPORT_CODES = new Set(['ERR_INVALID_URL', 'ERR_BAD_OPTION', 'ERR_BAD_OPTION_VALUE', 'ERR_NOT_SUPPORT', 'ERR_INVALID_CHAR']);

interface Sent {
  method: 'GET' | 'POST';
  path: string;
  status: number;
  data: unknown;
  response: AxiosResponse;
}

export function createReferenceClient(deps: AgencyConnectorDeps<ReferencePartnerConfig>): AgencyClient {
  const { partnerId, hubId, config, mapping, signer } = deps;
  const outbound = config.auth.outbound;

  const http: AxiosInstance = axios.create({
    baseURL: config.baseUrl,
    timeout: config.timeoutMs,
    // Every status comes back as a response and is classified in one place below.
    validateStatus: () => true,
    // A redirect would carry the token to wherever the agency points; no protocol call redirects.
    maxRedirects: 0,
    allowAbsoluteUrls: false,
    maxContentLength: MAX_RESPONSE_BYTES,
    responseType: 'json',
    transitional: { clarifyTimeoutError: true, silentJSONParsing: true, forcedJSONParsing: true },
    headers: { Accept: 'application/json', 'User-Agent': 'collection-hub' },
  });

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

  function report(onExchange: ReadContext['onExchange'], record: ExchangeRecord): void {
    if (!onExchange) return;
    try {
      onExchange(record);
    } catch {
      // The sync log must not change a delivery's outcome: a created case whose id got lost
      // because a log write failed would be worse than a missing log line.
    }
  }

  async function send(
    method: 'GET' | 'POST',
    path: string,
    opts: { body?: unknown; idempotencyKey?: string; onExchange?: ReadContext['onExchange'] },
  ): Promise<Sent> {
    const token = tokenFor();
    const url = http.getUri({ url: path });
    const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
    if (opts.idempotencyKey) headers['Idempotency-Key'] = opts.idempotencyKey;
    const started = performance.now();
    const latency = () => Math.round(performance.now() - started);

    let response: AxiosResponse;
    try {
      response = await http.request({ method, url: path, data: opts.body, headers });
    } catch (err) {
      const latencyMs = latency();
      if (!(err instanceof AxiosError)) {
        report(opts.onExchange, { method, url, requestBody: opts.body, latencyMs, error: String(redact((err as Error).message, token)) });
        throw err;
      }
      const code = err.code ?? 'ERR_UNKNOWN';
      const timedOut = code === 'ETIMEDOUT' || code === 'ECONNABORTED';
      const message = timedOut
        ? `${method} ${path}: no answer within ${config.timeoutMs} ms`
        : `${method} ${path}: ${code} (${redact(err.message, token) as string})`;
      report(opts.onExchange, { method, url, requestBody: opts.body, latencyMs, error: message });
      // The request may have reached the agency; sending it again is safe because of the Idempotency-Key.
      throw new DeliveryError(!PERMANENT_TRANSPORT_CODES.has(code), message);
    }

    const data = redact(response.data, token);
    report(opts.onExchange, {
      method,
      url,
      requestBody: opts.body,
      status: response.status,
      responseBody: data,
      latencyMs: latency(),
    });
    return { method, path, status: response.status, data, response };
  }

  const ok = (s: Sent) => s.status >= 200 && s.status < 300;

  /** habit 7: network/timeout (above), 408, 429 and 5xx retry (honouring Retry-After); every other answer is final. */
  function failure(s: Sent): DeliveryError {
    const retryable = s.status === 408 || s.status === 429 || s.status >= 500;
    const retryAfterMs = retryable ? parseRetryAfter(s.response.headers['retry-after']) : undefined;
    return new DeliveryError(
      retryable,
      `${s.method} ${s.path}: agency answered ${s.status}: ${summarize(s.data)}`,
      s.status,
      s.data,
      retryAfterMs,
    );
  }

  /** A 2xx whose body is not the protocol's answer: kept for a human, not retried blindly. */
  function parseAnswer<T>(schema: z.ZodType<T>, s: Sent): T {
    const parsed = schema.safeParse(s.data);
    if (!parsed.success) {
      throw new DeliveryError(
        false,
        `${s.method} ${s.path}: agency answered ${s.status} with an unexpected body: ${describeIssues(parsed.error)}`,
        s.status,
        s.data,
      );
    }
    return parsed.data;
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
