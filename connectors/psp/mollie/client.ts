/**
 * The Mollie API as the connector uses it: the official SDK (@mollie/api-client 4.6) for one
 * merchant's config, three reads, one error taxonomy (design.md habit 7), every call bounded in time.
 *
 * SDK facts this relies on (node_modules/@mollie/api-client/dist/mollie.cjs.js):
 *  - `createMollieClient({ apiKey, apiEndpoint })`; requests go to `new URL(pathname, apiEndpoint)`
 *    with a relative pathname (`payments/tr_…`), and a missing trailing slash is added — so the
 *    endpoint must include the API's path (`…/v2/`).
 *  - It sends through node-fetch with an `https.Agent` pinned to its own CA bundle, built when the
 *    client is created. Over `http:` (a test double on loopback) node-fetch refuses that agent
 *    ("Protocol "http:" not supported"). For an `http:` apiBase the client is therefore created
 *    while `https.Agent` is briefly `http.Agent` (synchronous, restored at once): the SDK then
 *    holds a plain HTTP agent and everything else — URLs, auth headers, retries, error parsing —
 *    stays the SDK's own. An `https:` apiBase (a sandbox) keeps the SDK's agent untouched.
 *  - Retries: a 5xx is tried 3 times, 2 s apart unless `Retry-After` (seconds) says otherwise; the
 *    SDK has no option to turn that off. Each call is bounded by `timeoutMs` instead, and our own
 *    retry is the outbox's backoff.
 *  - Errors: `ApiError` (exported as MollieApiError) with `statusCode` from Mollie's error JSON
 *    (`{ status, title, detail, _links }`); a network failure or an unreadable answer is an
 *    ApiError without a status.
 */
import http from 'node:http';
import https from 'node:https';
import createMollieClient, { PaymentEmbed, type MollieClient } from '@mollie/api-client';
import { Permanent } from '../../../src/pipeline/errors';
import type { MollieProviderConfig } from './schema';

export const DEFAULT_API_ENDPOINT = 'https://api.mollie.com:443/v2/';

/** Per request. A lookup runs inside an outbox lease; Mollie's own webhook timeout is 15 s too. */
export const LOOKUP_TIMEOUT_MS = 15_000;

/** The reads the connector needs, as plain JSON. The SDK-backed one is createMollieApi; tests may inject another. */
export interface MollieApi {
  /** `GET /v2/payments/:id?embed=refunds,chargebacks`. */
  getPayment(id: string): Promise<unknown>;
  /** `GET /v2/payments/:id/chargebacks` (first page, up to 250). */
  listChargebacks(paymentId: string): Promise<unknown[]>;
  /** `GET /v2/customers/:id`. */
  getCustomer(id: string): Promise<unknown>;
}

/** Mollie answered 404 (or 410): the id is not (or no longer) known under this API key. */
export class MollieNotFound extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MollieNotFound';
  }
}

/** Another attempt may succeed (network, timeout, 429, 5xx). A plain Error on purpose: the outbox retries it. */
export class MollieRetryable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MollieRetryable';
  }
}

/** Mollie refused the request (400, 401, 403, 422…): retrying the same call cannot help. Dead-lettered. */
export class MollieRejected extends Permanent {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'MollieRejected';
  }
}

/** The SDK's `apiEndpoint` for a config: apiBase as given, `/v2/` added to a bare origin. */
export function apiEndpointOf(config: Pick<MollieProviderConfig, 'apiBase'>): string {
  if (!config.apiBase) return DEFAULT_API_ENDPOINT;
  const url = new URL(config.apiBase);
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/v2/';
  else if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url.toString();
}

export function createMollieSdkClient(config: Pick<MollieProviderConfig, 'apiKey' | 'apiBase'>): MollieClient {
  const apiEndpoint = apiEndpointOf(config);
  if (!apiEndpoint.startsWith('http:')) return createMollieClient({ apiKey: config.apiKey, apiEndpoint });
  // See the file comment: the SDK builds its agent with `new https.Agent(…)` in this call.
  const mutable = https as unknown as { Agent: unknown };
  const original = mutable.Agent;
  mutable.Agent = http.Agent;
  try {
    return createMollieClient({ apiKey: config.apiKey, apiEndpoint });
  } finally {
    mutable.Agent = original;
  }
}

export interface MollieApiOptions {
  timeoutMs?: number;
}

export function createMollieApi(config: Pick<MollieProviderConfig, 'apiKey' | 'apiBase'>, options: MollieApiOptions = {}): MollieApi {
  const client = createMollieSdkClient(config);
  const timeoutMs = options.timeoutMs ?? LOOKUP_TIMEOUT_MS;
  const run = <T>(what: string, call: () => Promise<T>) => guarded(what, call, timeoutMs, config.apiKey);
  return {
    getPayment: (id) =>
      run(`payment ${id}`, async () => plain(await client.payments.get(id, { embed: [PaymentEmbed.refunds, PaymentEmbed.chargebacks] }))),
    listChargebacks: (paymentId) =>
      run(`chargebacks of ${paymentId}`, async () => {
        const page = await client.paymentChargebacks.page({ paymentId, limit: 250 });
        return [...page].map(plain);
      }),
    getCustomer: (id) => run(`customer ${id}`, async () => plain(await client.customers.get(id))),
  };
}

// Clients are cached per merchant config object (parsed once at boot).
const apis = new WeakMap<object, MollieApi>();

export function mollieApiFor(config: MollieProviderConfig): MollieApi {
  let api = apis.get(config);
  if (!api) {
    api = createMollieApi(config);
    apis.set(config, api);
  }
  return api;
}

// ---------------------------------------------------------------------------------------------

/** One SDK call: its result, or one of MollieNotFound / MollieRetryable / MollieRejected. */
async function guarded<T>(what: string, call: () => Promise<T>, timeoutMs: number, apiKey: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new MollieRetryable(`mollie ${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([call(), timeout]);
  } catch (err) {
    throw classify(what, err, apiKey);
  } finally {
    clearTimeout(timer);
  }
}

export function classify(what: string, err: unknown, apiKey?: string): Error {
  if (err instanceof MollieRetryable || err instanceof MollieNotFound || err instanceof MollieRejected) return err;
  const e = (err ?? {}) as { name?: unknown; message?: unknown; statusCode?: unknown; title?: unknown };
  const isApiError = e.name === 'ApiError';
  if (!isApiError) {
    // Not an answer from Mollie (a bug on our side, or the SDK failing oddly): let the outbox retry and dead-letter it.
    return err instanceof Error ? err : new Error(String(err));
  }
  const status = typeof e.statusCode === 'number' ? e.statusCode : undefined;
  const message = redact(`mollie ${what}: ${status ?? 'no answer'}${typeof e.title === 'string' ? ` ${e.title}` : ''}: ${String(e.message ?? '')}`, apiKey);
  if (status === 404 || status === 410) return new MollieNotFound(message);
  // No status: the request never got an answer, or the answer was not JSON.
  if (status === undefined || status === 408 || status === 409 || status === 429 || status >= 500) return new MollieRetryable(message);
  return new MollieRejected(message, status);
}

/** Removes the configured key and anything shaped like a Mollie API key or access token. */
export function redact(text: string, apiKey?: string): string {
  let out = apiKey ? text.split(apiKey).join('[redacted]') : text;
  out = out.replace(/\b(test|live|access)_[A-Za-z0-9]{6,}/g, '[redacted]');
  return out;
}

/** An SDK object as plain JSON (drops helper methods, keeps `_embedded` and `_links`). */
function plain(v: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(v ?? null)) ?? {};
}
