/**
 * A local fake of the parts of Stripe's REST API the hub calls through stripe-node, for tests
 * and the demo: an express server on 127.0.0.1 that the SDK reaches via `apiBase`
 * (client.ts → host/port/protocol; psp-webhooks.md §1.6).
 *
 * How stripe-node 23 talks (node_modules/stripe/cjs/RequestSender.js, utils.js):
 *  - `Authorization: Bearer <key>`, `Stripe-Version: <pinned version>` on every request;
 *  - GET parameters in the query string, POST parameters as an `application/x-www-form-urlencoded`
 *    body, both encoded qs-style with brackets: `expand[0]=latest_charge`,
 *    `payment[type]=payment_intent`, `paid_out_of_band=true` (booleans and numbers as strings);
 *  - errors are read from `{ error: { type, code, message } }` and typed by HTTP status
 *    (Error.js generateV1Error: 400/404 invalid request, 401 authentication, 429 rate limit, 5xx api).
 *
 * Answered: GET /v1/payment_intents/:id, /v1/charges/:id, /v1/invoices/:id, /v1/payment_methods/:id,
 * /v1/invoice_payments
 * (filters `invoice`, `payment[type]`+`payment[payment_intent]`, `status`, `limit`), and
 * POST /v1/invoices/:id/pay (only `paid_out_of_band=true`) and /v1/invoices/:id/mark_uncollectible,
 * which answer the updated invoice. `expand[]` is honoured for ids found in the maps (a path may
 * go through lists: `data.payment.payment_intent`); an invoice's includable `payments` is built
 * from `invoicePayments` when expanded. Unknown ids → 404 `resource_missing`.
 *
 * The objects are the test's own Stripe-shaped JSON in the maps; the fake does not invent fields.
 */
import express, { type Request, type Response } from 'express';
import { createLoopbackServer } from './loopback-server';

type Json = Record<string, any>;

export interface FakeStripeRequest {
  method: string;
  /** Path without the query string, e.g. `/v1/payment_intents/pi_123`. */
  path: string;
  /** Query parameters, nested as the SDK encoded them (`expand: ['latest_charge']`). */
  query: Json;
  /** Form body parameters (POST), nested the same way; `{}` for GETs. */
  body: Json;
  /** The `Stripe-Version` header the SDK sent. */
  stripeVersion?: string;
}

export interface FakeStripeError {
  type: string;
  code?: string;
  message: string;
  param?: string;
  decline_code?: string;
}

export interface FakeStripeFailure {
  method?: string;
  /** Exact path, or a pattern tested against the path. */
  path: string | RegExp;
  status: number;
  error?: Partial<FakeStripeError>;
  headers?: Record<string, string>;
  /** How many matching requests fail (default: all of them until `clearFailures()`). */
  times?: number;
}

export interface FakeStripeOptions {
  /** Only this secret key is accepted; by default any `sk_…`/`rk_…` key. */
  apiKey?: string;
  /** Unix seconds for `paid_at` etc. (default: now). */
  now?: () => number;
}

export interface FakeStripe {
  start(port?: number): Promise<{ url: string; port: number }>;
  stop(): Promise<void>;
  paymentIntents: Map<string, Json>;
  charges: Map<string, Json>;
  invoices: Map<string, Json>;
  invoicePayments: Map<string, Json>;
  /** GET /v1/payment_methods/:id (a mandate's payment method names its customer). */
  paymentMethods: Map<string, Json>;
  /** GET and POST /v1/customers/:id (the hub writes a debtor's flags into `metadata`). */
  customers: Map<string, Json>;
  requests: FakeStripeRequest[];
  /** Makes matching requests fail with `status` (and Stripe's error body). */
  fail(failure: FakeStripeFailure): void;
  clearFailures(): void;
  /** Empties the maps, the request log and the failures. */
  reset(): void;
}

const OBJECT_NAMES: Record<string, string> = {
  payment_intents: 'payment_intent',
  charges: 'charge',
  invoices: 'invoice',
  invoice_payments: 'invoice_payment',
  payment_methods: 'payment_method',
  customers: 'customer',
};

export function createFakeStripe(options: FakeStripeOptions = {}): FakeStripe {
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  const paymentIntents = new Map<string, Json>();
  const charges = new Map<string, Json>();
  const invoices = new Map<string, Json>();
  const invoicePayments = new Map<string, Json>();
  const paymentMethods = new Map<string, Json>();
  const customers = new Map<string, Json>();
  const requests: FakeStripeRequest[] = [];
  let failures: FakeStripeFailure[] = [];
  let requestSeq = 0;

  /** The map an id belongs to, by Stripe's id prefixes. */
  function byId(id: string): Json | undefined {
    if (id.startsWith('pi_')) return paymentIntents.get(id);
    if (id.startsWith('ch_') || id.startsWith('py_')) return charges.get(id);
    if (id.startsWith('in_')) return invoices.get(id);
    if (id.startsWith('pm_')) return paymentMethods.get(id);
    return invoicePayments.get(id);
  }

  function paymentsOf(invoiceId: string): Json[] {
    return [...invoicePayments.values()].filter((p) => refOf(p.invoice) === invoiceId);
  }

  /** Applies one `expand` path (`a.b.c`) to a copy; lists are walked through `data`. */
  function expandPath(value: unknown, segments: string[]): unknown {
    if (segments.length === 0) return value;
    if (Array.isArray(value)) return value.map((v) => expandPath(v, segments));
    if (!isObject(value)) return value;
    const [head, ...rest] = segments;
    let next: unknown = value[head];
    if (head === 'payments' && value.object === 'invoice' && next === undefined) {
      // Basil: an includable list (InvoicePayments.d.ts: "there is an includable payments property").
      const data = paymentsOf(String(value.id)).map(clone);
      next = { object: 'list', data, has_more: false, total_count: data.length, url: `/v1/invoice_payments?invoice=${value.id}` };
    } else if (typeof next === 'string') {
      const found = byId(next);
      if (found) next = clone(found);
    }
    return { ...value, [head]: expandPath(next, rest) };
  }

  function expandAll(object: Json, expand: unknown): Json {
    const paths = Array.isArray(expand) ? expand : typeof expand === 'string' ? [expand] : [];
    let out: unknown = object;
    for (const p of paths) if (typeof p === 'string' && p) out = expandPath(out, p.split('.'));
    return out as Json;
  }

  function sendError(res: Response, status: number, error: Partial<FakeStripeError>, headers: Record<string, string> = {}): void {
    const body = {
      error: {
        type: error.type ?? (status >= 500 ? 'api_error' : 'invalid_request_error'),
        ...(error.code ? { code: error.code } : {}),
        ...(error.decline_code ? { decline_code: error.decline_code } : {}),
        ...(error.param ? { param: error.param } : {}),
        message: error.message ?? (status >= 500 ? 'Something went wrong on the fake Stripe.' : 'Invalid request.'),
      },
    };
    res.status(status).set(headers).json(body);
  }

  function missing(res: Response, resource: string, id: string): void {
    sendError(res, 404, { type: 'invalid_request_error', code: 'resource_missing', param: 'id', message: `No such ${OBJECT_NAMES[resource] ?? resource}: '${id}'` });
  }

  const app = express();
  app.disable('x-powered-by');
  app.use(express.text({ type: () => true, limit: '1mb' }));

  // Log, authenticate, inject failures.
  app.use((req: Request, res: Response, next) => {
    const url = new URL(req.originalUrl, 'http://fake.local');
    const query = parseNested(url.searchParams);
    const body = typeof req.body === 'string' && req.body.length > 0 ? parseNested(new URLSearchParams(req.body)) : {};
    const stripeVersion = req.get('stripe-version') ?? undefined;
    requests.push({ method: req.method, path: url.pathname, query, body, ...(stripeVersion ? { stripeVersion } : {}) });
    res.locals.query = query;
    res.locals.form = body;
    res.set('request-id', `req_fake_${++requestSeq}`);

    const auth = req.get('authorization') ?? '';
    const key = auth.startsWith('Bearer ') ? auth.slice('Bearer '.length) : '';
    const accepted = options.apiKey ? key === options.apiKey : /^(sk|rk)_(test|live)_\S+$/.test(key);
    if (!accepted) {
      // Stripe answers an unknown key with 401 and a masked key (never the key itself here).
      sendError(res, 401, { type: 'invalid_request_error', message: key ? 'Invalid API Key provided.' : 'You did not provide an API key.' });
      return;
    }

    const rule = failures.find((f) => (!f.method || f.method.toUpperCase() === req.method) && (typeof f.path === 'string' ? f.path === url.pathname : f.path.test(url.pathname)));
    if (rule) {
      if (rule.times !== undefined) {
        rule.times--;
        if (rule.times <= 0) failures = failures.filter((f) => f !== rule);
      }
      sendError(res, rule.status, rule.error ?? {}, rule.headers);
      return;
    }
    next();
  });

  for (const [resource, map] of [
    ['payment_intents', paymentIntents],
    ['charges', charges],
    ['invoices', invoices],
    ['payment_methods', paymentMethods],
    ['customers', customers],
  ] as const) {
    app.get(`/v1/${resource}/:id`, (req: Request, res: Response) => {
      const id = String(req.params.id);
      const found = map.get(id);
      if (!found) return missing(res, resource, id);
      res.json(expandAll(clone(found), res.locals.query.expand));
    });
  }

  app.get('/v1/invoice_payments', (_req: Request, res: Response) => {
    const q = res.locals.query as Json;
    const payment = isObject(q.payment) ? q.payment : undefined;
    let data = [...invoicePayments.values()].filter((p) => {
      if (q.invoice && refOf(p.invoice) !== q.invoice) return false;
      if (q.status && p.status !== q.status) return false;
      if (payment?.type && p.payment?.type !== payment.type) return false;
      if (payment?.payment_intent && refOf(p.payment?.payment_intent) !== payment.payment_intent) return false;
      return true;
    });
    // Stripe lists newest first.
    data.sort((a, b) => (b.created ?? 0) - (a.created ?? 0));
    if (q.starting_after) {
      const i = data.findIndex((p) => p.id === q.starting_after);
      data = i >= 0 ? data.slice(i + 1) : data;
    }
    const limit = Math.min(100, Math.max(1, Number(q.limit ?? 10) || 10));
    const page = data.slice(0, limit).map(clone);
    const list = { object: 'list', data: page, has_more: data.length > limit, url: '/v1/invoice_payments' };
    res.json(expandAll(list, q.expand));
  });

  app.post('/v1/invoices/:id/pay', (req: Request, res: Response) => {
    const id = String(req.params.id);
    const inv = invoices.get(id);
    if (!inv) return missing(res, 'invoices', id);
    const form = res.locals.form as Json;
    if (form.paid_out_of_band !== 'true') {
      // The fake charges nothing; write-back only ever marks invoices paid outside Stripe.
      return sendError(res, 400, { type: 'invalid_request_error', param: 'paid_out_of_band', message: 'The fake Stripe only supports paid_out_of_band=true.' });
    }
    if (inv.status === 'paid') return sendError(res, 400, { type: 'invalid_request_error', message: 'Invoice is already paid' });
    if (inv.status === 'void') return sendError(res, 400, { type: 'invalid_request_error', message: 'This invoice has been voided and can no longer be paid.' });
    const t = now();
    const updated: Json = {
      ...inv,
      status: 'paid',
      paid: true,
      paid_out_of_band: true,
      amount_paid: inv.amount_due,
      amount_remaining: 0,
      attempted: inv.attempted ?? true,
      auto_advance: false,
      next_payment_attempt: null,
      status_transitions: { ...(inv.status_transitions ?? {}), paid_at: t },
    };
    invoices.set(id, updated);
    res.json(expandAll(clone(updated), res.locals.query.expand ?? form.expand));
  });

  // Update a customer: only `metadata` here, merged as Stripe merges it (an empty value removes the key).
  app.post('/v1/customers/:id', (req: Request, res: Response) => {
    const id = String(req.params.id);
    const found = customers.get(id);
    if (!found) return missing(res, 'customers', id);
    const form = res.locals.form as Json;
    const metadata: Json = { ...(found.metadata ?? {}) };
    for (const [k, v] of Object.entries(isObject(form.metadata) ? form.metadata : {})) {
      if (v === '') delete metadata[k];
      else metadata[k] = v;
    }
    const updated: Json = { ...found, metadata };
    customers.set(id, updated);
    res.json(clone(updated));
  });

  app.post('/v1/invoices/:id/mark_uncollectible', (req: Request, res: Response) => {
    const id = String(req.params.id);
    const inv = invoices.get(id);
    if (!inv) return missing(res, 'invoices', id);
    if (inv.status !== 'open') {
      return sendError(res, 400, { type: 'invalid_request_error', message: `You can only mark an open invoice as uncollectible; this invoice is ${inv.status}.` });
    }
    const t = now();
    const updated: Json = {
      ...inv,
      status: 'uncollectible',
      auto_advance: false,
      next_payment_attempt: null,
      status_transitions: { ...(inv.status_transitions ?? {}), marked_uncollectible_at: t },
    };
    invoices.set(id, updated);
    res.json(expandAll(clone(updated), res.locals.query.expand ?? (res.locals.form as Json).expand));
  });

  app.use((req: Request, res: Response) => {
    sendError(res, 404, { type: 'invalid_request_error', message: `Unrecognized request URL (${req.method}: ${req.path}).` });
  });

  const loopback = createLoopbackServer('fake stripe', app);

  return {
    paymentIntents,
    charges,
    invoices,
    invoicePayments,
    paymentMethods,
    customers,
    requests,
    start: loopback.start,
    stop: loopback.stop,
    fail(failure) {
      failures.push({ ...failure });
    },
    clearFailures() {
      failures = [];
    },
    reset() {
      paymentIntents.clear();
      charges.clear();
      invoices.clear();
      invoicePayments.clear();
      paymentMethods.clear();
      customers.clear();
      requests.length = 0;
      failures = [];
    },
  };
}

/**
 * Parses qs-style bracket keys as stripe-node encodes them: `a[b]=1` → `{a:{b:'1'}}`,
 * `expand[0]=x&expand[1]=y` and `expand[]=x` → arrays. Values stay strings, as on the wire.
 */
export function parseNested(params: URLSearchParams): Json {
  const root: Json = {};
  for (const [key, value] of params) {
    const m = /^([^[\]]+)((?:\[[^[\]]*\])*)$/.exec(key);
    const segments = m ? [m[1], ...[...m[2].matchAll(/\[([^[\]]*)\]/g)].map((x) => x[1])] : [key];
    let cur: any = root;
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i];
      const last = i === segments.length - 1;
      const nextIsIndex = !last && /^\d*$/.test(segments[i + 1]);
      if (Array.isArray(cur)) {
        const index = seg === '' ? cur.length : Number(seg);
        if (last) cur[index] = value;
        else cur = cur[index] ??= nextIsIndex ? [] : {};
      } else if (last) {
        cur[seg] = value;
      } else {
        cur = cur[seg] ??= nextIsIndex ? [] : {};
      }
    }
  }
  return compactArrays(root) as Json;
}

function compactArrays(v: unknown): unknown {
  if (Array.isArray(v)) return v.filter((x) => x !== undefined).map(compactArrays);
  if (isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, compactArrays(x)]));
  return v;
}

function refOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value.id === 'string') return value.id;
  return undefined;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function clone<T>(v: T): T {
  return structuredClone(v);
}
