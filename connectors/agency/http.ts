/**
 * The HTTP exchange shared by the agency clients (reference/client.ts, riverty/client.ts): the
 * axios instance, one bearer-authenticated call reported for the sync log, and the mapping of
 * every failure to a DeliveryError whose `retryable` drives the outbox (design.md habits 3, 7, 8).
 * Authentication (which token, when to refresh it) and redaction of secrets stay with each client.
 */
import axios, { AxiosError, type AxiosInstance, type AxiosResponse } from 'axios';
import type { z } from 'zod';
import { DeliveryError, type CallContext, type ExchangeRecord, type ReadContext } from './types';
import { describeIssues } from './reference/schema';

/** An agency answer larger than this is not a protocol answer; refuse it rather than buffer it. */
const MAX_RESPONSE_BYTES = 10 * 1024 * 1024;

/**
 * Axios errors that no retry can fix: the request itself was never valid. Everything else
 * without a response (refused, reset, DNS, timeout, a body cut off mid-stream) is transient.
 */
const PERMANENT_TRANSPORT_CODES = new Set(['ERR_INVALID_URL', 'ERR_BAD_OPTION', 'ERR_BAD_OPTION_VALUE', 'ERR_NOT_SUPPORT', 'ERR_INVALID_CHAR']);

export type Method = 'GET' | 'POST';

export interface SendOptions {
  body?: unknown;
  idempotencyKey?: string;
  onExchange?: ReadContext['onExchange'];
}

/** One answer from the agency, whatever its status. `data` is the body with secrets redacted. */
export interface Sent {
  method: Method;
  path: string;
  status: number;
  data: unknown;
  response: AxiosResponse;
}

export interface AgencyHttp {
  /**
   * One call with `Authorization: Bearer <token>` (and `Idempotency-Key` when given), reported to
   * `opts.onExchange` with `redact` applied to what could echo a secret. Every status comes back
   * as a `Sent`; a transport failure throws a DeliveryError (retryable unless the request itself
   * was invalid), anything else thrown by axios is rethrown.
   */
  send(method: Method, path: string, token: string, redact: (value: unknown) => unknown, opts: SendOptions): Promise<Sent>;
}

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

function summarize(body: unknown): string {
  if (body === undefined || body === '') return '(empty body)';
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/**
 * A path segment for the agency's URL. `.` and `..` would be collapsed by URL parsing and send
 * the call to another resource, so they are refused, as is an empty id.
 */
export function segment(value: string, what: string): string {
  if (typeof value !== 'string' || value === '' || value === '.' || value === '..') {
    throw new DeliveryError(false, `invalid ${what} for the agency URL: ${JSON.stringify(value)}`);
  }
  return encodeURIComponent(value);
}

/** Printable ASCII without spaces: anything else cannot travel in a header and would fail every retry. */
export function idempotencyKeyOf(ctx: CallContext | undefined): string {
  const key = ctx?.idempotencyKey;
  if (!key || !/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new DeliveryError(false, `a mutating agency call needs an Idempotency-Key of 1-255 printable characters, got ${JSON.stringify(key)}`);
  }
  return key;
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

export function createAgencyHttp(config: { baseUrl: string; timeoutMs: number }): AgencyHttp {
  const http: AxiosInstance = axios.create({
    baseURL: config.baseUrl,
    timeout: config.timeoutMs,
    // Every status comes back as a response and is classified by the caller (see `failure`).
    validateStatus: () => true,
    // A redirect would carry the token to wherever the agency points; no protocol call redirects.
    maxRedirects: 0,
    allowAbsoluteUrls: false,
    maxContentLength: MAX_RESPONSE_BYTES,
    responseType: 'json',
    transitional: { clarifyTimeoutError: true, silentJSONParsing: true, forcedJSONParsing: true },
    headers: { Accept: 'application/json', 'User-Agent': 'collection-hub' },
  });

  return {
    async send(method, path, token, redact, opts) {
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
          report(opts.onExchange, { method, url, requestBody: opts.body, latencyMs, error: String(redact((err as Error).message)) });
          throw err;
        }
        const code = err.code ?? 'ERR_UNKNOWN';
        const timedOut = code === 'ETIMEDOUT' || code === 'ECONNABORTED';
        const message = timedOut
          ? `${method} ${path}: no answer within ${config.timeoutMs} ms`
          : `${method} ${path}: ${code} (${redact(err.message) as string})`;
        report(opts.onExchange, { method, url, requestBody: opts.body, latencyMs, error: message });
        // The request may have reached the agency; sending it again is safe because of the
        // Idempotency-Key (and whatever dedupe key the protocol adds, e.g. Riverty's paymentNumber).
        throw new DeliveryError(!PERMANENT_TRANSPORT_CODES.has(code), message);
      }

      const data = redact(response.data);
      report(opts.onExchange, {
        method,
        url,
        requestBody: opts.body,
        status: response.status,
        responseBody: data,
        latencyMs: latency(),
      });
      return { method, path, status: response.status, data, response };
    },
  };
}

export const ok = (s: Sent): boolean => s.status >= 200 && s.status < 300;

/**
 * habit 7: network/timeout (in `send`), 408, 429 and 5xx retry (honouring Retry-After); every
 * other answer is final, kept for the dead letter.
 */
export function failure(s: Sent): DeliveryError {
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
export function parseAnswer<T>(schema: z.ZodType<T>, s: Sent): T {
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
