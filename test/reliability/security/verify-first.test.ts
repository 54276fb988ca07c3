/**
 * Issue 13 item 2 — verify first, then charge the budget. A forged webhook or agency push is
 * refused without spending the merchant's or partner's budget: a flood of forgeries does not cost
 * a genuine delivery its 2xx. Refusals are charged to a small bucket of their source address (past
 * it: 429 before the body is read), counted in a metric, and written to the sync log as ONE
 * aggregated line per window — not one row per forgery.
 */
import { randomUUID } from 'node:crypto';
import crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import Stripe from 'stripe';
import { noteRejection, type RejectionWindow } from '../../../src/ingest/verification-failures';
import type { RejectedDeliveryLog } from '../../../src/ingest/verification-failures';
import { SECRETS } from '../../support/stack';
import { HUB_ID, modeAvailable, MODES, PSP_ROWS, send, startSecureStack, type Mode, type SecureStack } from './support';

const stripeSdk = new Stripe('sk_test_signing_only');
/** A key nobody configured: what a forger signs with. */
const forgersKey = (prefix = '') => `${prefix}${crypto.randomBytes(32).toString('base64')}`;
const FLOOD = 25;
const figures: string[] = [];
afterAll(() => figures.forEach((f) => console.log(`[security] verify first: ${f}`)));

describe('counting refusals into windows (pure)', () => {
  const r = (address: string, status = 400) => ({ merchantId: 'acme', party: 'stripe', operation: 'webhook', status, reason: 'no signature matched', address });

  it('opens one window for a flood, counts every refusal and address in it, and opens the next after it', () => {
    const windows = new Map<string, RejectionWindow>();
    const opened: boolean[] = [];
    for (let i = 0; i < FLOOD; i++) opened.push(noteRejection(windows, r(`10.0.0.${i % 3}`), 1_000 + i, 60_000).opened);
    expect(opened.filter(Boolean)).toHaveLength(1);
    const w = windows.get('acme\u0000stripe\u0000webhook')!;
    expect({ count: w.count, addresses: w.addresses.size, statuses: w.statuses }).toEqual({ count: FLOOD, addresses: 3, statuses: { 400: FLOOD } });
    const next = noteRejection(windows, r('10.0.0.9', 401), 61_000, 60_000);
    expect({ opened: next.opened, closedCount: next.closed?.count, newCount: next.window.count }).toEqual({ opened: true, closedCount: FLOOD, newCount: 1 });
  });

  it('keeps merchants and parties apart', () => {
    const windows = new Map<string, RejectionWindow>();
    expect(noteRejection(windows, r('a'), 0, 60_000).opened).toBe(true);
    expect(noteRejection(windows, { ...r('a'), merchantId: 'globex' }, 1, 60_000).opened).toBe(true);
    expect(noteRejection(windows, { ...r('a'), party: 'mollie' }, 2, 60_000).opened).toBe(true);
    expect(noteRejection(windows, r('b'), 3, 60_000).opened).toBe(false);
  });
});

describe.each<Mode>(MODES)('verify first, then charge (%s mode)', (mode) => {
  let stack: SecureStack;
  let available = true;
  const stripe = PSP_ROWS.find((x) => x.id === 'stripe')!;

  beforeAll(async () => {
    available = await modeAvailable(mode);
    if (!available) return;
    stack = await startSecureStack({
      mode,
      rateLimits: {
        // The merchant's whole burst is smaller than the flood: before the fix the flood spent it.
        webhooksPerSecondPerMerchant: 0.1, webhooksBurst: 3,
        partnerPushPerSecond: 0.1, partnerPushBurst: 2,
        failedVerificationsPerSecondPerAddress: 0.01, failedVerificationsBurst: FLOOD + 5,
      },
    });
  }, 60_000);
  afterAll(async () => {
    if (stack) await stack.stop();
  });
  const maybe = (name: string, fn: () => Promise<void>, timeout = 60_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  const rejectedLines = async (party: string) =>
    (await stack.hub.ctx.db.query<{ id: string; summary: string; response: any; http_status: number }>(`SELECT id, summary, response, http_status FROM exchanges WHERE party = $1 AND outcome = 'rejected' ORDER BY id`, [party])).rows;
  const flush = () => (stack.hub.app.locals.rejectedDeliveries as RejectedDeliveryLog).flushAll();

  maybe('a forged-signature flood does not cost a genuine Stripe delivery its 2xx, and writes one aggregated sync-log line', async () => {
    const url = `${stack.hubUrl}/v1/webhooks/stripe/acme`;
    const statuses: number[] = [];
    for (let i = 0; i < FLOOD; i++) {
      const body = stripe.validBody(`forged${mode}${i}`);
      const forged = stripeSdk.webhooks.generateTestHeaderString({ payload: body, secret: forgersKey('whsec_') });
      statuses.push((await send(url, { localAddress: '127.0.0.41', body, headers: { 'content-type': 'application/json', 'stripe-signature': forged } })).status);
    }
    expect(statuses).toEqual(Array(FLOOD).fill(400));
    // The genuine delivery, from Stripe's address, after the flood: the merchant's budget is untouched.
    const body = stripe.validBody(`genuine${mode}`);
    const header = stripeSdk.webhooks.generateTestHeaderString({ payload: body, secret: SECRETS.stripe.acme });
    const genuine = await send(url, { localAddress: '127.0.0.42', body, headers: { 'content-type': 'application/json', 'stripe-signature': header } });
    expect(genuine.status).toBe(200);
    expect((await stack.hub.ctx.db.query(`SELECT 1 FROM inbound_events WHERE provider_event_id = $1`, [JSON.parse(body).id])).rows).toHaveLength(1);
    // One line in the merchant's sync log for the whole flood, written at the first refusal…
    const lines = await rejectedLines('stripe');
    expect(lines).toHaveLength(1);
    // …and its count written onto the same line when the window closes.
    await flush();
    const [line] = await rejectedLines('stripe');
    expect({ lines: (await rejectedLines('stripe')).length, refused: line.response.refused, addresses: line.response.addresses }).toEqual({ lines: 1, refused: FLOOD, addresses: 1 });
    expect(line.summary).toMatch(new RegExp(`${FLOOD} requests refused in this \\d+ s window`));
    const metrics = await send(`${stack.hubUrl}/metrics`, { method: 'GET', localAddress: '127.0.0.49' });
    expect(metrics.text).toMatch(new RegExp(`hub_verification_failures_total\\{endpoint="webhook",party="stripe"\\} ${FLOOD}\\b`));
    figures.push(`${mode}: ${FLOOD} forged Stripe posts → ${FLOOD} × 400, 1 sync-log line (refused: ${line.response.refused}); the genuine delivery after them → ${genuine.status}`);
  });

  maybe('an address that keeps failing verification is answered 429 before its body is read; other addresses are not', async () => {
    const url = `${stack.hubUrl}/v1/webhooks/stripe/globex`;
    const statuses: number[] = [];
    for (let i = 0; i < FLOOD + 6; i++) {
      const body = stripe.validBody(`spent${mode}${i}`);
      statuses.push((await send(url, { localAddress: '127.0.0.43', body, headers: { 'content-type': 'application/json', 'stripe-signature': 't=1,v1=00' } })).status);
    }
    expect(statuses.slice(0, FLOOD + 5)).toEqual(Array(FLOOD + 5).fill(400));
    expect(statuses[FLOOD + 5]).toBe(429);
    const body = stripe.validBody(`after-spent${mode}`);
    const header = stripeSdk.webhooks.generateTestHeaderString({ payload: body, secret: SECRETS.stripe.globex });
    expect((await send(url, { localAddress: '127.0.0.44', body, headers: { 'content-type': 'application/json', 'stripe-signature': header } })).status).toBe(200);
  });

  maybe('agency pushes: forged pushes do not spend the partner budget, and are one sync-log line', async () => {
    const url = `${stack.hubUrl}/v1/partners/refagency/events`;
    const push = (id: string, secret: string, localAddress: string) => {
      const token = jwt.sign({}, secret, { algorithm: 'HS256', issuer: 'refagency', audience: HUB_ID, expiresIn: 60, jwtid: randomUUID() });
      const body = JSON.stringify({ events: [{ id, seq: 1, caseId: 'case_vf', caseReference: 'cse_vf', claimReference: null, status: 'paid', occurredAt: new Date().toISOString() }] });
      return send(url, { localAddress, body, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } });
    };
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await push(`upd_vf_forged_${mode}_${i}`, forgersKey(), '127.0.0.45')).status);
    expect(statuses).toEqual(Array(10).fill(401));
    const genuine = await push(`upd_vf_${mode}`, SECRETS.agencyToHub, '127.0.0.46');
    expect(genuine.status).toBe(200);
    await flush();
    const lines = await rejectedLines('refagency');
    expect({ lines: lines.length, refused: lines[0]?.response?.refused }).toEqual({ lines: 1, refused: 10 });
    figures.push(`${mode}: 10 forged pushes → 10 × 401, 1 sync-log line; the genuine push → ${genuine.status}`);
  });
});
