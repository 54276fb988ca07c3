/**
 * Guarantee 9 — rate limits on the public endpoints, per merchant (webhooks, API), per partner
 * (pushes) and per source address, answered 429 with `Retry-After` in seconds and a clear message;
 * a throttled webhook is not stored, and the same delivery sent again after Retry-After is.
 * Token buckets are unit-tested with a fake clock; the HTTP tests give each case its own loopback
 * source address (127.0.0.x) so the per-address budget of one does not spend another's.
 */
import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import Stripe from 'stripe';
import type { Request } from 'express';
import { parseConfig, ConfigError } from '../../../src/config/load';
import { RATE_LIMIT_DEFAULTS } from '../../../src/config/schema';
import { sourceAddress, TokenBuckets } from '../../../src/http/rate-limit';
import { SECRETS, testConfigYaml } from '../../support/stack';
import { expectClearRefusal, HUB_ID, modeAvailable, MODES, PSP_ROWS, send, startSecureStack, type Mode, type SecureStack } from './support';

const stripeSdk = new Stripe('sk_test_signing_only');
const figures = { sent: 0, throttled: 0 };
afterAll(() => console.log(`[security] rate limits: ${figures.sent} requests sent, ${figures.throttled} answered 429 with Retry-After`));

describe('token buckets (unit, fake clock)', () => {
  let t = 0;
  const clock = () => t;

  it('lets a burst through, then asks to wait the time one token takes, then refills', () => {
    t = 0;
    const b = new TokenBuckets({ ratePerSecond: 2, burst: 3 }, clock);
    expect([b.take('acme'), b.take('acme'), b.take('acme')]).toEqual([0, 0, 0]);
    expect(b.take('acme')).toBe(1); // 0.5 s for one token, said in whole seconds
    t = 499;
    expect(b.take('acme')).toBe(1);
    t = 1000;
    expect(b.take('acme')).toBe(0);
    t = 60_000;
    expect([b.take('acme'), b.take('acme'), b.take('acme'), b.take('acme')]).toEqual([0, 0, 0, 1]); // never more than the burst
  });

  it('keeps separate budgets per key', () => {
    t = 0;
    const b = new TokenBuckets({ ratePerSecond: 0.1, burst: 1 }, clock);
    expect(b.take('acme')).toBe(0);
    expect(b.take('acme')).toBe(10);
    expect(b.take('globex')).toBe(0);
  });

  it('is off at rate 0', () => {
    const b = new TokenBuckets({ ratePerSecond: 0, burst: 1 }, clock);
    const waits = Array.from({ length: 10_000 }, () => b.take('x'));
    expect(waits.every((w) => w === 0)).toBe(true);
    expect(b.size).toBe(0);
  });

  it('holds a bounded number of keys when an attacker cycles addresses, and still limits the active ones', () => {
    t = 0;
    const b = new TokenBuckets({ ratePerSecond: 1, burst: 2, maxKeys: 1000 }, clock);
    for (let i = 0; i < 50_000; i++) b.take(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`);
    expect(b.size).toBeLessThanOrEqual(1000);
    expect([b.take('victim'), b.take('victim'), b.take('victim')]).toEqual([0, 0, 1]);
  });

  it('keys IPv4-mapped addresses as IPv4 and IPv6 by its /64', () => {
    const req = (remoteAddress: string) => ({ socket: { remoteAddress } }) as unknown as Request;
    expect(sourceAddress(req('::ffff:203.0.113.9'))).toBe('203.0.113.9');
    expect(sourceAddress(req('203.0.113.9'))).toBe('203.0.113.9');
    expect(sourceAddress(req('2001:db8:1:2:aaaa::1'))).toBe('2001:db8:1:2::/64');
    expect(sourceAddress(req('2001:db8:1:2:bbbb:cccc:dddd:eeee'))).toBe('2001:db8:1:2::/64');
    expect(sourceAddress(req('2001:db8::1'))).toBe('2001:db8:0:0::/64');
    expect(sourceAddress(req('::1'))).toBe('0:0:0:0::/64');
  });
});

describe('rateLimits config', () => {
  const base = testConfigYaml({ simUrl: 'http://127.0.0.1:4010', hubPort: 3000, handoverAfterDays: 0, minAmount: 0, stackWindowDays: 45 });

  it('defaults to generous limits, takes 0 as off and fractions, and refuses nonsense naming the field', () => {
    expect(parseConfig(base).rateLimits).toEqual(RATE_LIMIT_DEFAULTS);
    expect(RATE_LIMIT_DEFAULTS.webhooksPerSecondPerMerchant).toBeGreaterThanOrEqual(500);
    expect(parseConfig(`${base}\nrateLimits: { webhooksPerSecondPerMerchant: 0, perAddressPerSecond: 0.5 }\n`).rateLimits).toMatchObject({ webhooksPerSecondPerMerchant: 0, perAddressPerSecond: 0.5, apiBurst: RATE_LIMIT_DEFAULTS.apiBurst });
    expect(() => parseConfig(`${base}\nrateLimits: { apiPerSecondPerMerchant: -1 }\n`)).toThrow(ConfigError);
    expect(() => parseConfig(`${base}\nrateLimits: { apiBurst: 0 }\n`)).toThrow(/rateLimits\.apiBurst/);
    expect(() => parseConfig(`${base}\nrateLimits: { webhooksPerSecond: 5 }\n`)).toThrow(/rateLimits/);
  });
});

describe.each<Mode>(MODES)('rate limits over HTTP (%s mode)', (mode) => {
  let stack: SecureStack;
  let available = true;
  const stripe = PSP_ROWS.find((r) => r.id === 'stripe')!;

  beforeAll(async () => {
    available = await modeAvailable(mode);
    if (!available) return;
    stack = await startSecureStack({
      mode,
      rateLimits: {
        webhooksPerSecondPerMerchant: 0.5, webhooksBurst: 3,
        apiPerSecondPerMerchant: 0.1, apiBurst: 3,
        partnerPushPerSecond: 0.1, partnerPushBurst: 2,
        perAddressPerSecond: 0.1, perAddressBurst: 12,
      },
    });
  }, 60_000);
  afterAll(async () => {
    if (stack) await stack.stop();
  });
  const maybe = (name: string, fn: () => Promise<void>, timeout = 30_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  let n = 0;
  /** A signed Stripe delivery for `merchant`; `go()` sends it from `localAddress` (each call signs afresh). */
  const webhook = (merchant: 'acme' | 'globex', localAddress: string, body = stripe.validBody(`rl${mode}${Date.now().toString(36)}${n++}`)) => ({
    body,
    go: () => {
      figures.sent++;
      const header = stripeSdk.webhooks.generateTestHeaderString({ payload: body, secret: SECRETS.stripe[merchant] });
      return send(`${stack.hubUrl}/v1/webhooks/stripe/${merchant}`, { localAddress, body, headers: { 'content-type': 'application/json', 'stripe-signature': header } });
    },
  });
  const eventIdOf = (body: string) => JSON.parse(body).id as string;
  const stored = async (eventId: string) => (await stack.hub.ctx.db.query(`SELECT 1 FROM inbound_events WHERE provider_event_id = $1`, [eventId])).rows.length;

  function expect429(r: { status: number; headers: Record<string, unknown>; json?: any }, what: string, maxWait: number): number {
    figures.throttled++;
    expectClearRefusal(r, what);
    expect({ what, status: r.status, code: r.json.error.code }).toEqual({ what, status: 429, code: 'rate_limited' });
    const retryAfter = Number(r.headers['retry-after']);
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(maxWait);
    expect(r.json.error.message).toMatch(/retry after \d+ s/);
    return retryAfter;
  }

  maybe('webhooks: per merchant, 429 + Retry-After past the burst, the throttled event not stored, sent again after Retry-After it is', async () => {
    const from = '127.0.0.11';
    for (let i = 0; i < 3; i++) expect((await webhook('acme', from).go()).status).toBe(200);
    const fourth = webhook('acme', from);
    const r = await fourth.go();
    const wait = expect429(r, 'acme webhook past its burst', 2);
    expect(r.json.error.message).toMatch(/merchant acme/);
    expect(await stored(eventIdOf(fourth.body))).toBe(0);
    // Another merchant's webhooks from the same address have their own budget…
    expect((await webhook('globex', from).go()).status).toBe(200);
    // …and acme's budget is acme's wherever its webhooks come from.
    const elsewhere = await webhook('acme', '127.0.0.21').go();
    expect429(elsewhere, 'acme webhook from another address', 2);
    // The PSP sends the refused delivery again after Retry-After: stored, once.
    await new Promise((res) => setTimeout(res, wait * 1000 + 100));
    const again = webhook('acme', from, fourth.body);
    expect((await again.go()).status).toBe(200);
    expect(await stored(eventIdOf(fourth.body))).toBe(1);
  });

  maybe('merchant API: per merchant, counted after the token, 429 + Retry-After; another merchant unaffected', async () => {
    const from = '127.0.0.12';
    const call = (merchant: string, address = from) => {
      figures.sent++;
      return send(`${stack.hubUrl}/v1/me`, { method: 'GET', localAddress: address, headers: { authorization: `Bearer ${stack.token(merchant)}` } });
    };
    for (let i = 0; i < 3; i++) expect((await call('acme')).status).toBe(200);
    const r = await call('acme');
    expect429(r, 'acme API past its burst', 10);
    expect(r.json.error.message).toMatch(/merchant acme/);
    expect((await call('acme', '127.0.0.22')).status).toBe(429);
    expect((await call('globex')).status).toBe(200);
  });

  maybe('agency pushes: per partner, 429 + Retry-After, nothing stored', async () => {
    const from = '127.0.0.13';
    const push = (id: string) => {
      figures.sent++;
      // A token is good for one push (its jti is spent), so each push signs its own.
      const token = jwt.sign({}, SECRETS.agencyToHub, { algorithm: 'HS256', issuer: 'refagency', audience: HUB_ID, expiresIn: 60, jwtid: randomUUID() });
      const body = JSON.stringify({ events: [{ id, seq: 1, caseId: 'case_rl', caseReference: 'cse_rl', claimReference: null, status: 'paid', occurredAt: new Date().toISOString() }] });
      return send(`${stack.hubUrl}/v1/partners/refagency/events`, { localAddress: from, body, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } });
    };
    expect((await push(`upd_rl_${mode}_1`)).status).toBe(200);
    expect((await push(`upd_rl_${mode}_2`)).status).toBe(200);
    const r = await push(`upd_rl_${mode}_3`);
    expect429(r, 'partner push past its burst', 10);
    expect((await stack.hub.ctx.db.query(`SELECT 1 FROM partner_updates WHERE update_id = $1`, [`upd_rl_${mode}_3`])).rows).toHaveLength(0);
  });

  maybe('per source address: every /v1 request counts, before auth and before the body is read; other addresses and /healthz unaffected', async () => {
    const from = '127.0.0.14';
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      figures.sent++;
      // Unauthenticated guesses: each is a 401 until the address has spent its budget.
      statuses.push((await send(`${stack.hubUrl}/v1/invoices/in_guess${i}`, { method: 'GET', localAddress: from, headers: { authorization: `Bearer guess.${i}.x` } })).status);
    }
    expect(statuses).toEqual(Array(12).fill(401));
    figures.sent++;
    const r = await send(`${stack.hubUrl}/v1/invoices/in_guess`, { method: 'GET', localAddress: from, headers: { authorization: `Bearer ${stack.token('acme')}` } });
    expect429(r, 'address past its burst', 10);
    expect(r.json.error.message).toMatch(/address 127\.0\.0\.14/);
    // A webhook from that address is refused before its body is read, and not stored.
    const w = webhook('globex', from);
    const wr = await w.go();
    expect429(wr, 'webhook from a throttled address', 10);
    expect(await stored(eventIdOf(w.body))).toBe(0);
    // Another address is not affected; health checks are never limited.
    expect((await send(`${stack.hubUrl}/v1/invoices/in_guess`, { method: 'GET', localAddress: '127.0.0.15', headers: { authorization: `Bearer ${stack.token('globex')}` } })).status).toBe(404);
    expect((await send(`${stack.hubUrl}/healthz`, { method: 'GET', localAddress: from })).status).toBe(200);
    const metrics = await send(`${stack.hubUrl}/metrics`, { method: 'GET', localAddress: from });
    expect(metrics.text).toMatch(/hub_rate_limited_total\{scope="address"\} [1-9]/);
  });
});
