/**
 * OAuth2 client-credentials tokens for the Riverty-shaped API (RFC 6749 §4.4; Riverty's identity
 * server, collections.md §A.5): one token fetched and shared by every call until shortly before it
 * expires, one fetch at a time however many calls are waiting, and a way to drop a token the agency
 * refused (a 401 mid-run) so the next call fetches a fresh one. The client secret and the tokens
 * never reach an exchange record or an error message.
 */
import axios, { AxiosError, type AxiosResponse } from 'axios';
import { DeliveryError, type ExchangeRecord } from '../types';
import { parseRetryAfter } from '../reference/client';
import { describeIssues, tokenAnswerSchema } from './schema';

export const REDACTED = '[redacted]';
/** Refresh this long before expiry (or a tenth of the lifetime, if shorter): clocks drift, requests take time. */
export const TOKEN_REFRESH_SKEW_MS = 30_000;
/** `expires_in` is only RECOMMENDED (RFC 6749 §5.1); without it a token is trusted this long. */
export const DEFAULT_TOKEN_LIFETIME_MS = 60_000;

export interface TokenSourceOptions {
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  audience?: string;
  auth: 'client_secret_post' | 'client_secret_basic';
  timeoutMs: number;
  /** Wall clock in ms (tests move it). */
  now?: () => number;
}

export interface TokenSource {
  /** A valid access token: the cached one, or a fresh one fetched now. */
  get(onExchange?: (x: ExchangeRecord) => void): Promise<string>;
  /** The agency refused `token` (401): forget it, unless a newer one has replaced it already. */
  invalidate(token: string): void;
  /** Strings that must never appear in a record: the client secret and every token handed out. */
  secrets(): string[];
  /** How many tokens have been fetched (for tests and metrics). */
  readonly fetched: number;
}

interface Cached {
  value: string;
  refreshAt: number;
}

/** Replace every occurrence of each secret in the strings of a JSON-like value. */
export function redactAll(value: unknown, secrets: readonly string[]): unknown {
  if (typeof value === 'string') return secrets.reduce((s, secret) => (secret ? s.split(secret).join(REDACTED) : s), value);
  if (Array.isArray(value)) return value.map((v) => redactAll(v, secrets));
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactAll(v, secrets)]));
  }
  return value;
}

/** Token answers are logged with the token itself blanked out (and any refresh/id token too). */
function redactTokenAnswer(body: unknown, secrets: readonly string[]): unknown {
  if (body !== null && typeof body === 'object' && !Array.isArray(body)) {
    const copy: Record<string, unknown> = { ...(body as Record<string, unknown>) };
    for (const k of ['access_token', 'refresh_token', 'id_token']) if (k in copy) copy[k] = REDACTED;
    return redactAll(copy, secrets);
  }
  return redactAll(body, secrets);
}

export function createTokenSource(opts: TokenSourceOptions): TokenSource {
  const now = opts.now ?? Date.now;
  const http = axios.create({
    timeout: opts.timeoutMs,
    validateStatus: () => true,
    // The answer is a bearer credential; a redirect could send our client secret elsewhere.
    maxRedirects: 0,
    maxContentLength: 64 * 1024,
    responseType: 'json',
    transitional: { clarifyTimeoutError: true, silentJSONParsing: true, forcedJSONParsing: true },
    headers: { Accept: 'application/json', 'User-Agent': 'collection-hub' },
  });

  let cached: Cached | null = null;
  let inflight: Promise<Cached> | null = null;
  let fetched = 0;
  // Every token handed out stays redactable, so an echo of an old one in a body is blanked too.
  const issued: string[] = [];
  const secrets = () => [opts.clientSecret, ...issued];

  function report(onExchange: ((x: ExchangeRecord) => void) | undefined, record: ExchangeRecord): void {
    if (!onExchange) return;
    try {
      onExchange(record);
    } catch {
      // The sync log must not change a call's outcome.
    }
  }

  async function fetchToken(onExchange?: (x: ExchangeRecord) => void): Promise<Cached> {
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    const headers: Record<string, string> = { 'Content-Type': 'application/x-www-form-urlencoded' };
    if (opts.auth === 'client_secret_basic') {
      // RFC 6749 §2.3.1: both parts form-urlencoded before the Basic encoding.
      const user = encodeURIComponent(opts.clientId);
      const pass = encodeURIComponent(opts.clientSecret);
      headers.Authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    } else {
      form.set('client_id', opts.clientId);
      form.set('client_secret', opts.clientSecret);
    }
    if (opts.audience) form.set('audience', opts.audience);
    const logged: Record<string, string> = Object.fromEntries(form.entries());
    if ('client_secret' in logged) logged.client_secret = REDACTED;
    if (opts.auth === 'client_secret_basic') logged.client_id = opts.clientId;

    const sentAt = now();
    const started = performance.now();
    const latency = () => Math.round(performance.now() - started);
    let response: AxiosResponse;
    try {
      response = await http.post(opts.tokenUrl, form.toString(), { headers });
    } catch (err) {
      const code = err instanceof AxiosError ? (err.code ?? 'ERR_UNKNOWN') : 'ERR_UNKNOWN';
      const timedOut = code === 'ETIMEDOUT' || code === 'ECONNABORTED';
      const message = timedOut
        ? `POST ${opts.tokenUrl}: no token within ${opts.timeoutMs} ms`
        : `POST ${opts.tokenUrl}: ${code} (${redactAll((err as Error).message, secrets()) as string})`;
      report(onExchange, { method: 'POST', url: opts.tokenUrl, requestBody: logged, latencyMs: latency(), error: message });
      throw new DeliveryError(!['ERR_INVALID_URL', 'ERR_BAD_OPTION', 'ERR_BAD_OPTION_VALUE'].includes(code), message);
    }
    const body = redactTokenAnswer(response.data, secrets());
    report(onExchange, { method: 'POST', url: opts.tokenUrl, requestBody: logged, status: response.status, responseBody: body, latencyMs: latency() });

    if (response.status < 200 || response.status >= 300) {
      const retryable = response.status === 408 || response.status === 429 || response.status >= 500;
      // invalid_client / unauthorized_client (RFC 6749 §5.2) is configuration: no retry fixes it.
      throw new DeliveryError(
        retryable,
        `POST ${opts.tokenUrl}: token endpoint answered ${response.status}: ${JSON.stringify(body).slice(0, 300)}`,
        response.status,
        body,
        retryable ? parseRetryAfter(response.headers['retry-after']) : undefined,
      );
    }
    const parsed = tokenAnswerSchema.safeParse(response.data);
    if (!parsed.success) {
      throw new DeliveryError(false, `POST ${opts.tokenUrl}: not a token answer: ${describeIssues(parsed.error)}`, response.status, body);
    }
    fetched++;
    issued.push(parsed.data.access_token);
    if (issued.length > 16) issued.shift();
    const lifetime = parsed.data.expires_in !== undefined ? parsed.data.expires_in * 1000 : DEFAULT_TOKEN_LIFETIME_MS;
    // Counted from when we asked, not when the answer came: the server's clock started no later.
    return { value: parsed.data.access_token, refreshAt: sentAt + lifetime - Math.min(TOKEN_REFRESH_SKEW_MS, lifetime / 10) };
  }

  return {
    async get(onExchange) {
      if (cached && now() < cached.refreshAt) return cached.value;
      if (!inflight) {
        inflight = fetchToken(onExchange).then(
          (token) => {
            cached = token;
            inflight = null;
            return token;
          },
          (err: unknown) => {
            inflight = null;
            throw err;
          },
        );
      }
      return (await inflight).value;
    },
    invalidate(token) {
      if (cached?.value === token) cached = null;
    },
    secrets,
    get fetched() {
      return fetched;
    },
  };
}
