/**
 * Issue 13 item 7 — HTTP hardening: server timeouts and a connection cap (a silent socket and a
 * slow body are closed within the configured timeouts), security headers and `no-store` on API
 * answers, `trust proxy` as a setting, the dashboard's exports and totals under the merchant's API
 * budget, the leakage report bounded, `/metrics` behind a token or on its own port, `/readyz`
 * without backend error text, and one answer for every webhook URL that leads nowhere.
 * The HTTP layer is the same in both run modes, so this runs embedded.
 */
import net from 'node:net';
import Stripe from 'stripe';
import { stripeEvents } from '../../../sim/psp/stripe-events';
import { SECRETS } from '../../support/stack';
import { waitFor } from '../../support/services';
import { send, startSecureStack, type SecureStack } from './support';

const stripeSdk = new Stripe('sk_test_signing_only');
const figures: string[] = [];
afterAll(() => figures.forEach((f) => console.log(`[security] http: ${f}`)));

/** Opens a TCP connection; `closed` resolves (with the ms it stayed open) when the server closes it. */
function openSocket(port: number, write?: string): Promise<{ socket: net.Socket; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1');
    // Flowing, so the server's FIN is seen ('end', then 'close').
    socket.resume();
    const closed = new Promise<number>((r) => socket.once('close', () => r(Date.now() - started)));
    socket.once('error', () => undefined);
    socket.once('connect', () => {
      if (write) socket.write(write);
      resolve({ socket, closed });
    });
    socket.once('error', reject);
  });
}

describe('a hub with tight HTTP settings, trust proxy, and /metrics on its own port behind a token', () => {
  let stack: SecureStack;
  let metricsUrl: string;
  const METRICS_TOKEN = 'metrics-token-for-this-test-0123456789';

  beforeAll(async () => {
    stack = await startSecureStack({
      mode: 'embedded',
      rateLimits: { perAddressPerSecond: 0.01, perAddressBurst: 2 },
      configure: (c) => {
        c.hub.http = { headersTimeoutMs: 1000, requestTimeoutMs: 1500, keepAliveTimeoutMs: 5000, maxConnections: 40, trustProxy: 'loopback' };
        c.hub.metrics = { token: METRICS_TOKEN, port: 0 };
      },
    });
    metricsUrl = stack.metricsUrl ?? '';
  }, 60_000);
  afterAll(async () => {
    if (stack) await stack.stop();
  });

  it('closes a socket that sends nothing within the head timeout (plus its check interval)', async () => {
    const { closed } = await openSocket(stack.port);
    const ms = await closed;
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(1000 * 1.25 + 1000);
    figures.push(`a silent socket was closed after ${ms} ms (headersTimeoutMs 1000)`);
  });

  it('closes a request whose body trickles past the request timeout', async () => {
    const { socket, closed } = await openSocket(stack.port, 'POST /v1/webhooks/stripe/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"a":');
    const ms = await closed;
    socket.destroy();
    expect(ms).toBeLessThan(1500 * 1.25 + 1000);
    figures.push(`a slow body was cut after ${ms} ms (requestTimeoutMs 1500)`);
  });

  it('caps the connections at once: past maxConnections a new one is closed at once', async () => {
    const held = await Promise.all(Array.from({ length: 40 }, () => openSocket(stack.port)));
    const extra = await openSocket(stack.port);
    const first = await Promise.race([extra.closed.then(() => 'extra'), ...held.map((h) => h.closed.then(() => 'held'))]);
    expect(first).toBe('extra');
    for (const h of held) h.socket.destroy();
    await Promise.all(held.map((h) => h.closed));
  });

  it('with trustProxy set, the per-address limit keys on the client named by the trusted proxy', async () => {
    const as = (client: string) => send(`${stack.hubUrl}/v1/me`, { method: 'GET', localAddress: '127.0.0.61', headers: { 'x-forwarded-for': client } });
    expect([(await as('203.0.113.7')).status, (await as('203.0.113.7')).status]).toEqual([401, 401]);
    const third = await as('203.0.113.7');
    expect(third.status).toBe(429);
    expect(third.json.error.message).toMatch(/address 203\.0\.113\.7/);
    // Another client behind the same proxy has its own budget.
    expect((await as('198.51.100.9')).status).toBe(401);
  });

  it('/metrics: not on the public port; on its own port only with the bearer token', async () => {
    expect((await send(`${stack.hubUrl}/metrics`, { method: 'GET', localAddress: '127.0.0.62' })).status).toBe(404);
    expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const none = await send(metricsUrl, { method: 'GET' });
    expect({ status: none.status, code: none.json?.error?.code }).toEqual({ status: 401, code: 'unauthorized' });
    expect((await send(metricsUrl, { method: 'GET', headers: { authorization: 'Bearer not-the-token-0123456789' } })).status).toBe(401);
    const ok = await send(metricsUrl, { method: 'GET', headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(ok.text).toMatch(/hub_webhooks_total/);
  });
});

describe('a hub with the default HTTP settings', () => {
  let stack: SecureStack;

  beforeAll(async () => {
    stack = await startSecureStack({
      mode: 'embedded',
      rateLimits: { apiPerSecondPerMerchant: 0.01, apiBurst: 4 },
      configure: (c) => {
        c.reports = { leakageMaxPeriodDays: 366, leakageMaxRows: 1 };
      },
    });
  }, 60_000);
  afterAll(async () => {
    if (stack) await stack.stop();
  });

  const api = (path: string, merchant = 'acme', localAddress = '127.0.0.71') =>
    send(`${stack.hubUrl}${path}`, { method: 'GET', localAddress, headers: { authorization: `Bearer ${stack.token(merchant)}` } });

  it('API answers carry Cache-Control: no-store, nosniff and a deny-all CSP; the dashboard keeps its own CSP', async () => {
    const r = await api('/v1/me', 'acme', '127.0.0.72');
    expect(r.status).toBe(200);
    expect({
      cache: r.headers['cache-control'],
      nosniff: r.headers['x-content-type-options'],
      csp: r.headers['content-security-policy'],
      frame: r.headers['x-frame-options'],
      poweredBy: r.headers['x-powered-by'],
    }).toEqual({ cache: 'no-store', nosniff: 'nosniff', csp: expect.stringContaining("default-src 'none'"), frame: 'SAMEORIGIN', poweredBy: undefined });
    const refused = await send(`${stack.hubUrl}/v1/me`, { method: 'GET', localAddress: '127.0.0.72' });
    expect({ status: refused.status, cache: refused.headers['cache-control'], nosniff: refused.headers['x-content-type-options'] }).toEqual({ status: 401, cache: 'no-store', nosniff: 'nosniff' });
    const dash = await send(`${stack.hubUrl}/dashboard/`, { method: 'GET', localAddress: '127.0.0.72' });
    expect(dash.headers['content-security-policy']).toMatch(/script-src 'self'/);
  });

  it('the CSV export and case totals are charged to the merchant’s API budget', async () => {
    const statuses = [];
    // globex's burst of 4 is spent by these alone: two exports and two totals, then a 429.
    for (const path of ['/v1/case-totals', '/v1/sync-log.csv', '/v1/case-totals', '/v1/sync-log.csv', '/v1/case-totals']) statuses.push((await api(path, 'globex', '127.0.0.73')).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429]);
  });

  it('the leakage report is bounded: a period over the maximum, or more rows than the cap, is a 400 that says so', async () => {
    const long = await api('/v1/reports/leakage?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z', 'acme', '127.0.0.74');
    expect({ status: long.status, code: long.json?.error?.code }).toEqual({ status: 400, code: 'period_too_long' });
    expect(long.json.error.message).toMatch(/at most 366 days/);
    // Two failed invoices for acme: one more than this hub's cap of 1.
    const now = Math.floor(Date.now() / 1000);
    for (const n of [1, 2]) {
      const event = stripeEvents.paymentFailed({ invoice: `in_bound${n}`, customer: `cus_bound${n}`, amount: 1000 + n, created: now, nextPaymentAttempt: now + 86400, failureCode: 'card_declined' });
      const body = JSON.stringify(event);
      const header = stripeSdk.webhooks.generateTestHeaderString({ payload: body, secret: SECRETS.stripe.acme });
      expect((await send(`${stack.hubUrl}/v1/webhooks/stripe/acme`, { localAddress: '127.0.0.75', body, headers: { 'content-type': 'application/json', 'stripe-signature': header } })).status).toBe(200);
    }
    await waitFor(async () => (await stack.hub.ctx.db.query(`SELECT 1 FROM invoices WHERE merchant_id = 'acme' AND failure_count > 0`)).rows.length === 2, 20_000, 50, 'two failed invoices');
    const many = await api('/v1/reports/leakage', 'acme', '127.0.0.76');
    expect({ status: many.status, code: many.json?.error?.code }).toEqual({ status: 400, code: 'too_many_rows' });
    expect(many.json.error.message).toMatch(/more than 1 failed payments/);
    const csv = await api('/v1/reports/leakage.csv', 'acme', '127.0.0.76');
    expect(csv.status).toBe(400);
  }, 40_000);

  it('/readyz says which backend is unavailable, without its error text', async () => {
    const db = stack.hub.ctx.db;
    const ping = db.ping;
    db.ping = async () => {
      throw new Error('connect ECONNREFUSED 10.1.2.3:5432 (user hub_prod, PostgreSQL 16.4)');
    };
    try {
      const r = await send(`${stack.hubUrl}/readyz`, { method: 'GET' });
      expect(r.status).toBe(503);
      expect(r.json.checks.database).toBe('unavailable');
      expect(r.text).not.toMatch(/ECONNREFUSED|10\.1\.2\.3|hub_prod|PostgreSQL/);
    } finally {
      db.ping = ping;
    }
  });

  it('an unknown merchant and an unknown or unconfigured provider answer the same (status and body)', async () => {
    const body = '{}';
    const at = (path: string) => send(`${stack.hubUrl}${path}`, { localAddress: '127.0.0.77', body, headers: { 'content-type': 'application/json' } });
    const answers = await Promise.all(['/v1/webhooks/stripe/nosuchmerchant', '/v1/webhooks/nosuchpsp/acme', '/v1/webhooks/gocardless/globex', '/v1/webhooks/nosuchpsp/nosuchmerchant'].map(at));
    const shapes = answers.map((a) => ({ status: a.status, body: a.text }));
    expect(new Set(shapes.map((s) => JSON.stringify(s))).size).toBe(1);
    expect(shapes[0].status).toBe(404);
  });
});
