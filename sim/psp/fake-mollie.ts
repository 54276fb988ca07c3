/**
 * A local fake of the parts of Mollie's REST API the hub reads through @mollie/api-client, for
 * tests and the demo: an express server on 127.0.0.1 that the SDK reaches via the merchant's
 * `apiBase` (connectors/psp/mollie/client.ts; psp-webhooks.md §2.7).
 *
 * How the SDK 4.6 talks (node_modules/@mollie/api-client/dist/mollie.cjs.js NetworkClient):
 *  - `Authorization: Bearer <test_…|live_…>`, `Accept: application/hal+json` on every request;
 *  - `GET /v2/payments/:id?embed=refunds%2Cchargebacks` (comma-joined), `GET /v2/customers/:id`,
 *    `GET /v2/payments/:id/chargebacks?limit=…`;
 *  - an error is read from Mollie's JSON `{ status, title, detail, _links }`; a 5xx is tried 3
 *    times, waiting `Retry-After` seconds (default 2) in between.
 *
 * Answered: those three reads and `GET /v2/payments/:id/refunds`, with `_embedded.refunds` /
 * `_embedded.chargebacks` when `embed` asks for them. Unknown ids → 404 with Mollie's error JSON.
 * State per test: `setPayment`, `setCustomer`, `addChargeback`, `addRefund` (the latter two keep
 * the payment's `amountChargedBack` / `amountRefunded` and `_links` as Mollie does). `requests`
 * logs every call; `fail()` answers matching requests with an error (500 by default, with
 * `Retry-After: 0` so the SDK's own retries are immediate) or after a delay; `failAll()` is the
 * switch for "Mollie is down".
 */
import express, { type Request, type Response } from 'express';
import { createLoopbackServer } from './loopback-server';
import { decimalToMinor, minorToDecimal } from '../../src/domain/money';

type Json = Record<string, any>;

export interface FakeMollieRequest {
  method: string;
  /** Path without the query string, e.g. `/v2/payments/tr_123`. */
  path: string;
  query: Record<string, string>;
  /** The bearer token's prefix only (`test_`/`live_`), never the key. */
  keyMode?: string;
}

export interface FakeMollieFailure {
  method?: string;
  /** Exact path, or a pattern tested against the path; absent = every path. */
  path?: string | RegExp;
  /** HTTP status to answer (default 500). */
  status?: number;
  /** Seconds for `Retry-After` on 5xx (default 0, so the SDK's 3 attempts are immediate); null = no header. */
  retryAfterSeconds?: number | null;
  /** Answer after this many ms (a slow or hanging Mollie); with `status` absent the request then succeeds. */
  delayMs?: number;
  /** How many matching requests fail (default: all of them until `clearFailures()`). */
  times?: number;
}

export interface FakeMollieOptions {
  /** Only this API key is accepted; by default any `test_…`/`live_…` key. */
  apiKey?: string;
  /**
   * Keep Mollie's lifecycle: a payment that is `failed`, `expired`, `canceled` or `paid` never
   * changes status again (psp-webhooks reference §2.5: those are definitive), so `setPayment`
   * throws on such a change — a debtor who pays later pays through a new payment. Off by default
   * only because the demo's scripted data (scripts/demo-data.ts) still turns a failed payment paid.
   */
  strictLifecycle?: boolean;
}

/** Statuses Mollie never leaves (psp-webhooks reference §2.5). */
const DEFINITIVE = new Set(['failed', 'expired', 'canceled', 'paid']);

export interface FakeMollie {
  start(port?: number): Promise<{ url: string; port: number; apiBase: string }>;
  stop(): Promise<void>;
  payments: Map<string, Json>;
  customers: Map<string, Json>;
  /** Chargebacks and refunds per payment id. */
  chargebacks: Map<string, Json[]>;
  refunds: Map<string, Json[]>;
  requests: FakeMollieRequest[];
  setPayment(payment: Json): void;
  setCustomer(customer: Json): void;
  /** Adds a chargeback to its payment (`paymentId`) and updates the payment's amountChargedBack and links. */
  addChargeback(chargeback: Json): void;
  /** Adds a refund to its payment (`paymentId`) and updates the payment's amountRefunded and links. */
  addRefund(refund: Json): void;
  fail(failure?: FakeMollieFailure): void;
  /** Every request answers `status` (default 500) until `clearFailures()`. */
  failAll(status?: number): void;
  clearFailures(): void;
  /** Empties the maps, the request log and the failures. */
  reset(): void;
}

const DOCS = { documentation: { href: 'https://docs.mollie.com/overview/handling-errors', type: 'text/html' } };
const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized Request',
  404: 'Not Found',
  410: 'Gone',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

export function createFakeMollie(options: FakeMollieOptions = {}): FakeMollie {
  const payments = new Map<string, Json>();
  const customers = new Map<string, Json>();
  const chargebacks = new Map<string, Json[]>();
  const refunds = new Map<string, Json[]>();
  const requests: FakeMollieRequest[] = [];
  let failures: FakeMollieFailure[] = [];
  let baseUrl = 'http://127.0.0.1';

  function sendError(res: Response, status: number, detail: string, headers: Record<string, string> = {}): void {
    res
      .status(status)
      .set(headers)
      .type('application/hal+json')
      .send(JSON.stringify({ status, title: TITLES[status] ?? 'Error', detail, _links: DOCS }));
  }

  /** The payment as Mollie answers it, with what `embed` asks for. */
  function paymentView(p: Json, embed: string[]): Json {
    const out = structuredClone(p);
    const embedded: Json = {};
    if (embed.includes('refunds') && (refunds.get(p.id)?.length ?? 0) > 0) embedded.refunds = structuredClone(refunds.get(p.id));
    if (embed.includes('chargebacks') && (chargebacks.get(p.id)?.length ?? 0) > 0) embedded.chargebacks = structuredClone(chargebacks.get(p.id));
    if (Object.keys(embedded).length > 0) out._embedded = embedded;
    return out;
  }

  function list(res: Response, name: string, path: string, items: Json[]): void {
    res.type('application/hal+json').send(
      JSON.stringify({
        count: items.length,
        _embedded: { [name]: structuredClone(items) },
        _links: { self: { href: `${baseUrl}${path}`, type: 'application/hal+json' }, previous: null, next: null, documentation: DOCS.documentation },
      }),
    );
  }

  /** Keeps a payment's summed amount field and its `_links` entry in line with its list. */
  function attach(kind: 'chargebacks' | 'refunds', item: Json): void {
    const paymentId = String(item.paymentId ?? '');
    const payment = payments.get(paymentId);
    if (!payment) throw new Error(`fake mollie: ${kind.slice(0, -1)} for unknown payment ${paymentId}; setPayment first`);
    const map = kind === 'chargebacks' ? chargebacks : refunds;
    const items = [...(map.get(paymentId) ?? []), structuredClone(item)];
    map.set(paymentId, items);
    const currency = String(payment.amount.currency);
    const counted = kind === 'chargebacks' ? items.filter((c) => !c.reversedAt) : items.filter((r) => !['failed', 'canceled'].includes(r.status));
    const total = counted.reduce((sum, x) => sum + decimalToMinor(String(x.amount.value), currency), 0);
    const field = kind === 'chargebacks' ? 'amountChargedBack' : 'amountRefunded';
    payment[field] = { currency, value: minorToDecimal(total, currency) };
    if (kind === 'refunds') payment.amountRemaining = { currency, value: minorToDecimal(Math.max(0, decimalToMinor(String(payment.amount.value), currency) - total), currency) };
    payment._links = { ...(payment._links ?? {}), [kind]: { href: `https://api.mollie.com/v2/payments/${paymentId}/${kind}`, type: 'application/hal+json' } };
  }

  const app = express();
  app.disable('x-powered-by');

  // Log, authenticate, inject failures.
  app.use(async (req: Request, res: Response, next) => {
    const url = new URL(req.originalUrl, 'http://fake.local');
    const auth = req.get('authorization') ?? '';
    const key = auth.startsWith('Bearer ') ? auth.slice('Bearer '.length) : '';
    const mode = /^(test|live)_/.exec(key)?.[0];
    requests.push({ method: req.method, path: url.pathname, query: Object.fromEntries(url.searchParams), ...(mode ? { keyMode: mode } : {}) });

    const accepted = options.apiKey ? key === options.apiKey : /^(test|live)_[A-Za-z0-9]+$/.test(key);
    if (!accepted) return sendError(res, 401, 'Missing authentication, or failed to authenticate');

    const rule = failures.find(
      (f) => (!f.method || f.method.toUpperCase() === req.method) && (f.path === undefined || (typeof f.path === 'string' ? f.path === url.pathname : f.path.test(url.pathname))),
    );
    if (rule) {
      if (rule.times !== undefined) {
        rule.times--;
        if (rule.times <= 0) failures = failures.filter((f) => f !== rule);
      }
      if (rule.delayMs) await new Promise((r) => setTimeout(r, rule.delayMs));
      if (rule.status !== undefined || !rule.delayMs) {
        const status = rule.status ?? 500;
        const retryAfter = rule.retryAfterSeconds === undefined ? 0 : rule.retryAfterSeconds;
        const headers: Record<string, string> = status >= 500 && retryAfter !== null ? { 'Retry-After': String(retryAfter) } : {};
        return sendError(res, status, status >= 500 ? 'The fake Mollie is failing on purpose.' : 'The fake Mollie refuses this request on purpose.', headers);
      }
    }
    next();
  });

  app.get('/v2/payments/:id', (req: Request, res: Response) => {
    const id = String(req.params.id);
    const p = payments.get(id);
    if (!p) return sendError(res, 404, `No payment exists with token ${id}.`);
    const embed = String(req.query.embed ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    res.type('application/hal+json').send(JSON.stringify(paymentView(p, embed)));
  });

  app.get('/v2/payments/:id/chargebacks', (req: Request, res: Response) => {
    const id = String(req.params.id);
    if (!payments.has(id)) return sendError(res, 404, `No payment exists with token ${id}.`);
    list(res, 'chargebacks', req.path, chargebacks.get(id) ?? []);
  });

  app.get('/v2/payments/:id/refunds', (req: Request, res: Response) => {
    const id = String(req.params.id);
    if (!payments.has(id)) return sendError(res, 404, `No payment exists with token ${id}.`);
    list(res, 'refunds', req.path, refunds.get(id) ?? []);
  });

  app.get('/v2/customers/:id', (req: Request, res: Response) => {
    const id = String(req.params.id);
    const c = customers.get(id);
    if (!c) return sendError(res, 404, `No customer exists with token ${id}.`);
    res.type('application/hal+json').send(JSON.stringify(c));
  });

  app.use((req: Request, res: Response) => {
    sendError(res, 404, `The fake Mollie does not answer ${req.method} ${req.path}.`);
  });

  const loopback = createLoopbackServer('fake mollie', app);

  return {
    payments,
    customers,
    chargebacks,
    refunds,
    requests,
    async start(port = 0) {
      const started = await loopback.start(port);
      baseUrl = started.url;
      return { ...started, apiBase: `${baseUrl}/v2/` };
    },
    stop: loopback.stop,
    setPayment(payment) {
      const before = payments.get(String(payment.id));
      if (options.strictLifecycle && before && DEFINITIVE.has(before.status) && before.status !== payment.status) {
        throw new Error(`fake mollie: payment ${payment.id} is ${before.status}, which is final at Mollie; it cannot become ${payment.status} (pay through a new payment)`);
      }
      payments.set(String(payment.id), structuredClone(payment));
    },
    setCustomer(customer) {
      customers.set(String(customer.id), structuredClone(customer));
    },
    addChargeback(chargeback) {
      attach('chargebacks', chargeback);
    },
    addRefund(refund) {
      attach('refunds', refund);
    },
    fail(failure = {}) {
      failures.push({ ...failure });
    },
    failAll(status = 500) {
      failures.push({ status });
    },
    clearFailures() {
      failures = [];
    },
    reset() {
      payments.clear();
      customers.clear();
      chargebacks.clear();
      refunds.clear();
      requests.length = 0;
      failures = [];
    },
  };
}
