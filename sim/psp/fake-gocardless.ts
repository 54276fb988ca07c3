/**
 * A local fake of the parts of GoCardless's REST API the hub reads, for tests and the demo: an
 * express server on 127.0.0.1 that the connector reaches through `apiBase`.
 *
 * Answered: `GET /payments/:id`, `/mandates/:id`, `/customers/:id`, enveloped by resource name as
 * GoCardless does (`{"payments": {…}}`). Errors in GoCardless's shape
 * (`gocardless/gocardless-nodejs:src/errors.ts`): `{"error": {message, documentation_url, type,
 * request_id, code, errors: [{reason, message}]}}` — unknown ids 404 `invalid_api_usage` /
 * `resource_not_found`; a wrong or missing token 401 (reason name illustrative); `fail()` makes
 * matching requests fail (by default 500 `gocardless` / `internal_server_error`).
 *
 * Every request is logged (method, path, the `GoCardless-Version` header, whether the token was the
 * expected one — never the token itself). The resources are the test's own GoCardless-shaped
 * JSON in the maps; the fake does not invent fields.
 */
import express, { type Request, type Response } from 'express';
import { createLoopbackServer } from './loopback-server';

type Json = Record<string, any>;

export interface FakeGoCardlessRequest {
  method: string;
  path: string;
  /** The `GoCardless-Version` header sent. */
  gocardlessVersion?: string;
  /** Whether `Authorization: Bearer <accessToken>` carried the expected token. */
  authorized: boolean;
  /** The status the fake answered. */
  status: number;
}

export interface FakeGoCardlessFailure {
  /** Exact path (`/payments/PM1`), or a pattern tested against the path; every path when absent. */
  path?: string | RegExp;
  /** Default 500. */
  status?: number;
  type?: string;
  reason?: string;
  message?: string;
  headers?: Record<string, string>;
  /** How many matching requests fail (default: all of them until `clearFailures()`). */
  times?: number;
}

export interface FakeGoCardlessOptions {
  /** Only this access token is accepted; by default any non-empty bearer token. */
  accessToken?: string;
}

export interface FakeGoCardless {
  start(port?: number): Promise<{ url: string; port: number }>;
  stop(): Promise<void>;
  payments: Map<string, Json>;
  mandates: Map<string, Json>;
  customers: Map<string, Json>;
  requests: FakeGoCardlessRequest[];
  /** Makes matching requests fail (the "500 switch"). */
  fail(failure?: FakeGoCardlessFailure): void;
  clearFailures(): void;
  /** Empties the maps, the request log and the failures. */
  reset(): void;
}

const SINGULAR: Record<string, string> = { payments: 'payment', mandates: 'mandate', customers: 'customer' };

export function createFakeGoCardless(options: FakeGoCardlessOptions = {}): FakeGoCardless {
  const payments = new Map<string, Json>();
  const mandates = new Map<string, Json>();
  const customers = new Map<string, Json>();
  const requests: FakeGoCardlessRequest[] = [];
  let failures: FakeGoCardlessFailure[] = [];
  let requestSeq = 0;

  function sendError(res: Response, status: number, type: string, reason: string, message: string, headers: Record<string, string> = {}): void {
    const requestId = String(res.getHeader('x-request-id') ?? '');
    res
      .status(status)
      .set(headers)
      .json({
        error: {
          message,
          documentation_url: `https://developer.gocardless.com/api-reference#${reason}`,
          type,
          request_id: requestId,
          code: status,
          errors: [{ reason, message }],
        },
      });
  }

  const app = express();
  app.disable('x-powered-by');

  app.use((req: Request, res: Response, next) => {
    const path = new URL(req.originalUrl, 'http://fake.local').pathname;
    const auth = req.get('authorization') ?? '';
    const token = auth.startsWith('Bearer ') ? auth.slice('Bearer '.length).trim() : '';
    const authorized = options.accessToken ? token === options.accessToken : token.length > 0;
    const entry: FakeGoCardlessRequest = { method: req.method, path, authorized, status: 0, ...(req.get('gocardless-version') ? { gocardlessVersion: req.get('gocardless-version') } : {}) };
    requests.push(entry);
    res.on('finish', () => {
      entry.status = res.statusCode;
    });
    res.set('x-request-id', `RQ_FAKE_${++requestSeq}`);

    if (!authorized) {
      sendError(res, 401, 'invalid_api_usage', 'access_token_not_found', token ? 'Access token not found' : 'No access token provided');
      return;
    }
    const rule = failures.find((f) => f.path === undefined || (typeof f.path === 'string' ? f.path === path : f.path.test(path)));
    if (rule) {
      if (rule.times !== undefined) {
        rule.times--;
        if (rule.times <= 0) failures = failures.filter((f) => f !== rule);
      }
      const status = rule.status ?? 500;
      sendError(
        res,
        status,
        rule.type ?? (status >= 500 ? 'gocardless' : 'invalid_api_usage'),
        rule.reason ?? (status >= 500 ? 'internal_server_error' : 'invalid_request'),
        rule.message ?? (status >= 500 ? 'Uh-oh! Something went wrong on the fake GoCardless.' : 'Invalid request.'),
        rule.headers,
      );
      return;
    }
    next();
  });

  for (const [resource, map] of [
    ['payments', payments],
    ['mandates', mandates],
    ['customers', customers],
  ] as const) {
    app.get(`/${resource}/:id`, (req: Request, res: Response) => {
      const id = String(req.params.id);
      const found = map.get(id);
      if (!found) return sendError(res, 404, 'invalid_api_usage', 'resource_not_found', `Resource not found: ${SINGULAR[resource]} ${id}`);
      res.json({ [resource]: structuredClone(found) });
    });
  }

  app.use((req: Request, res: Response) => {
    sendError(res, 404, 'invalid_api_usage', 'path_not_found', `Path not found (${req.method} ${req.path})`);
  });

  const loopback = createLoopbackServer('fake gocardless', app);

  return {
    payments,
    mandates,
    customers,
    requests,
    start: loopback.start,
    stop: loopback.stop,
    fail(failure = {}) {
      failures.push({ ...failure });
    },
    clearFailures() {
      failures = [];
    },
    reset() {
      payments.clear();
      mandates.clear();
      customers.clear();
      requests.length = 0;
      failures = [];
    },
  };
}
