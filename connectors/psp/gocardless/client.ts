/**
 * A small GoCardless API client on axios (the official SDK is not a dependency): the three reads
 * the normalizer needs when an event carries only links (psp-webhooks.md §7.6) — a payment, a
 * mandate, a customer — and one error policy for all of them.
 *
 * Requests as the official SDK sends them (`gocardless/gocardless-nodejs:src/api/api.ts`):
 * `Authorization: Bearer <access token>`, `GoCardless-Version: 2015-07-06`, `Accept:
 * application/json`; base URL `https://api.gocardless.com` (sandbox
 * `https://api-sandbox.gocardless.com`) unless the merchant's config says `apiBase`. Answers are
 * enveloped by resource name: `{"payments": {…}}`. Errors are `{"error": {message, type, code,
 * request_id, errors: [{reason, message}]}}` (`src/errors.ts`).
 *
 * Error policy (the same as the Stripe connector's lookup.ts):
 *  - retryable — no answer (network, timeout), an unreadable answer, 409, 429, 5xx → throws
 *    GoCardlessRetryable, a plain Error: the outbox runner retries the row with backoff;
 *  - anything else GoCardless answers (400/401/403/404…) or an answer that is not the resource
 *    → throws GoCardlessApiError; the caller keeps the event with a note.
 * Messages never carry the access token.
 */
import axios, { AxiosError, type AxiosInstance } from 'axios';
import type { z } from 'zod';
import {
  gocardlessCustomerSchema,
  gocardlessErrorBodySchema,
  gocardlessMandateSchema,
  gocardlessPaymentSchema,
  type GoCardlessCustomer,
  type GoCardlessMandate,
  type GoCardlessPayment,
  type GoCardlessProviderConfig,
} from './schema';

export const GOCARDLESS_API_BASE = 'https://api.gocardless.com';
/** The only API version GoCardless has published; the SDK pins it on every request. */
export const GOCARDLESS_VERSION = '2015-07-06';
/** Per request: a lookup runs inside an outbox lease, and GoCardless answers reads in well under a second. */
export const REQUEST_TIMEOUT_MS = 15_000;

/** The reads the connector makes; tests may pass their own. */
export interface GoCardlessApi {
  getPayment(id: string): Promise<GoCardlessPayment>;
  getMandate(id: string): Promise<GoCardlessMandate>;
  getCustomer(id: string): Promise<GoCardlessCustomer>;
}

/** A GoCardless failure that another attempt may fix. A plain Error on purpose: the outbox retries it. */
export class GoCardlessRetryable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GoCardlessRetryable';
  }
}

/** GoCardless answered, and another attempt would get the same answer (404, 401, 403, 400…). */
export class GoCardlessApiError extends Error {
  constructor(
    message: string,
    /** HTTP status; 200 when the answer was not the resource asked for. */
    readonly status: number,
    /** The error's `type` (`invalid_api_usage`, …) and first `errors[].reason` (`resource_not_found`, …). */
    readonly type?: string,
    readonly reason?: string,
  ) {
    super(message);
    this.name = 'GoCardlessApiError';
  }
}

export interface GoCardlessClientOptions {
  timeoutMs?: number;
}

export function createGoCardlessClient(
  config: Pick<GoCardlessProviderConfig, 'accessToken' | 'apiBase'>,
  options: GoCardlessClientOptions = {},
): GoCardlessApi {
  // Never name the token itself in the message (design.md habit 8).
  if (!config.accessToken) throw new Error('gocardless: accessToken is not configured; it is needed for API calls');
  const token = config.accessToken;
  const http: AxiosInstance = axios.create({
    // A trailing slash so that relative paths keep a path in apiBase (`http://host/gc/` + `payments/PM1`).
    baseURL: `${(config.apiBase ?? GOCARDLESS_API_BASE).replace(/\/+$/, '')}/`,
    timeout: options.timeoutMs ?? REQUEST_TIMEOUT_MS,
    headers: {
      Accept: 'application/json',
      Authorization: `Bearer ${token}`,
      'GoCardless-Version': GOCARDLESS_VERSION,
    },
    // GoCardless does not redirect API reads; a redirect would be a proxy or a misconfigured apiBase.
    maxRedirects: 0,
    // Parse ourselves, so an answer that is not JSON is told apart from one that is.
    responseType: 'text',
    transformResponse: [(data: unknown) => data],
    validateStatus: () => true,
  });

  async function get<T>(resource: 'payments' | 'mandates' | 'customers', id: string, schema: z.ZodType<T>): Promise<T> {
    const what = `${resource.slice(0, -1)} ${id}`;
    let status: number;
    let text: string;
    let retryAfter: string | undefined;
    try {
      const res = await http.get<string>(`${resource}/${encodeURIComponent(id)}`);
      status = res.status;
      text = typeof res.data === 'string' ? res.data : '';
      retryAfter = typeof res.headers['retry-after'] === 'string' ? res.headers['retry-after'] : undefined;
    } catch (err) {
      // No answer at all: refused, reset, DNS, timeout.
      const e = err as AxiosError;
      const why = e.code === 'ECONNABORTED' || e.code === 'ETIMEDOUT' ? `timed out after ${options.timeoutMs ?? REQUEST_TIMEOUT_MS} ms` : (e.code ?? e.message);
      throw new GoCardlessRetryable(redact(`gocardless GET ${what} failed, will retry: ${why}`, token));
    }

    let body: unknown;
    try {
      body = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }

    if (status >= 200 && status < 300) {
      if (body === undefined) throw new GoCardlessRetryable(`gocardless GET ${what} failed, will retry: ${status} answer is not JSON`);
      const envelope = (body as Record<string, unknown> | null)?.[resource];
      const parsed = schema.safeParse(envelope);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new GoCardlessApiError(
          redact(`gocardless GET ${what}: the answer is not a ${resource.slice(0, -1)}: ${[resource, ...issue.path.map(String)].join('.')}: ${issue.message}`, token),
          status,
        );
      }
      return parsed.data;
    }

    const error = gocardlessErrorBodySchema.safeParse(body);
    const type = error.success ? (error.data.error.type ?? undefined) : undefined;
    const reason = error.success ? (error.data.error.errors?.find((x) => x.reason)?.reason ?? undefined) : undefined;
    const message = error.success ? (error.data.error.message ?? undefined) : undefined;
    const summary = [String(status), type, reason].filter(Boolean).join(' ') + (message ? `: ${message}` : '');
    if (isRetryableStatus(status)) {
      const after = retryAfter ? ` (Retry-After ${retryAfter})` : '';
      throw new GoCardlessRetryable(redact(`gocardless GET ${what} failed, will retry: ${summary}${after}`, token));
    }
    throw new GoCardlessApiError(redact(`gocardless GET ${what}: ${summary}`, token), status, type, reason);
  }

  return {
    getPayment: (id) => get('payments', id, gocardlessPaymentSchema),
    getMandate: (id) => get('mandates', id, gocardlessMandateSchema),
    getCustomer: (id) => get('customers', id, gocardlessCustomerSchema),
  };
}

/** Conflicts, rate limiting, GoCardless's own failures (design.md habit 7). */
export function isRetryableStatus(status: number): boolean {
  return status === 409 || status === 429 || status >= 500;
}

/** Removes the configured token and anything shaped like a GoCardless access token. */
export function redact(text: string, token?: string): string {
  let out = token ? text.split(token).join('[redacted]') : text;
  out = out.replace(/\b(?:live|sandbox)_[A-Za-z0-9_-]{8,}/g, '[redacted]');
  return out;
}

// Clients are cached per merchant config object (parsed once at boot).
const clients = new WeakMap<object, GoCardlessApi>();

export function gocardlessClientFor(config: GoCardlessProviderConfig): GoCardlessApi {
  let client = clients.get(config);
  if (!client) {
    client = createGoCardlessClient(config);
    clients.set(config, client);
  }
  return client;
}
