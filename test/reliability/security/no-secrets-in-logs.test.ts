/**
 * Guarantee 8 — no secrets or card data in logs. Every line the hub's winston logger writes (at
 * debug level) is captured while known secrets, tokens, IBANs and card numbers go through the
 * whole pipeline:
 *  - Stripe webhooks whose customer name, description and metadata hold card numbers, IBANs and
 *    an API key; the case they cause is sent to an agency that first answers 503, then 422, each
 *    time echoing our Authorization header and the debtor's name back;
 *  - a rejected (forged) webhook whose body holds them, and one with a malformed signature header;
 *  - an agency push whose note holds them; merchant API calls with valid and invalid bearer tokens.
 * None may appear in clear in the log output, in the stored sync log (exchanges.request,
 * response, summary) or in the outbox's last_response / last_error. Both run modes.
 */
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import jwt from 'jsonwebtoken';
import { createLogger } from '../../../src/observability/logger';
import { signStripe, stripeEvents } from '../../../sim/psp/stripe-events';
import { SECRETS } from '../../support/stack';
import { waitFor } from '../../support/services';
import { HUB_ID, modeAvailable, MODES, nowS, send, startFailingAgency, startSecureStack, type FailingAgency, type Mode, type SecureStack } from './support';

const CARD = '4242424242424242';
const CARD_GROUPED = '4242 4242 4242 4242';
const CARD_DASHED = '4242-4242-4242-4242';
const AMEX = '378282246310005';
const IBAN = 'NL91ABNA0417164300';
const IBAN_SPACED = 'NL91 ABNA 0417 1643 00';
const STRIPE_KEY = 'sk_live_51HqLeakedKeyAbCdEfGh0123456789';
const CARD_DATA = [CARD, CARD_GROUPED, CARD_DASHED, AMEX, IBAN, IBAN_SPACED];

function leaksIn(places: Record<string, string>, secrets: string[]): string[] {
  const leaks: string[] = [];
  for (const [place, text] of Object.entries(places)) {
    for (const secret of secrets) if (text.includes(secret)) leaks.push(`${place}: ${secret.slice(0, 24)}…`);
  }
  return leaks;
}

describe.each<Mode>(MODES)('no secrets or card data in logs (%s mode)', (mode) => {
  let stack: SecureStack;
  let agency: FailingAgency;
  let available = true;
  let logText = '';
  let allSecrets: string[] = [];
  const sent: string[] = [];
  const f = { invoice: `in_logs${Date.now().toString(36)}`, customer: `cus_logs${Date.now().toString(36)}` };

  beforeAll(async () => {
    available = await modeAvailable(mode);
    if (!available) return;
    const stream = new PassThrough();
    stream.on('data', (d) => (logText += d));
    agency = await startFailingAgency([503, 503, 422]);
    stack = await startSecureStack({ mode, agencyUrl: agency.url, logger: createLogger({ stream, level: 'debug' }), maxAttempts: 5 });
  }, 60_000);

  afterAll(async () => {
    if (stack) await stack.stop();
    if (agency) await agency.stop();
  });

  const maybe = (name: string, fn: () => Promise<void>, timeout = 60_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  maybe('pushes secrets and card data through the whole pipeline, and none of it reaches the log output, the sync log or the merchant API in clear', async () => {
    // 1. A failed payment whose free-text fields carry card data, an IBAN and a key.
    const event = stripeEvents.paymentFailed({ ...f, amount: 5100, created: nowS() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds', customerName: `Jan ${CARD_GROUPED}`, customerEmail: 'jan@example.nl', country: 'NL' }) as any;
    event.data.object.description = `pay from ${IBAN_SPACED} or card ${CARD_DASHED}`;
    event.data.object.metadata = { card: CARD, iban: IBAN, note: `amex ${AMEX}, key ${STRIPE_KEY}`, ref: `card${CARD}`, raw: Number(CARD) };
    const signed = signStripe(event, SECRETS.stripe.acme);
    sent.push(signed.header);
    const ok = await send(`${stack.hubUrl}/v1/webhooks/stripe/acme`, { body: signed.body, headers: { 'content-type': 'application/json', 'stripe-signature': signed.header } });
    expect(ok.status).toBe(200);

    // 2. Rejected webhooks with the same body: a forged signature, a malformed header.
    const forged = signStripe(event, 'whsec_forged_0123456789abcdef');
    sent.push(forged.header);
    expect((await send(`${stack.hubUrl}/v1/webhooks/stripe/acme`, { body: forged.body, headers: { 'content-type': 'application/json', 'stripe-signature': forged.header } })).status).toBe(400);
    expect((await send(`${stack.hubUrl}/v1/webhooks/stripe/acme`, { body: forged.body, headers: { 'content-type': 'application/json', 'stripe-signature': `t=0,v1=,${CARD}` } })).status).toBe(400);

    // 3. The case goes to the agency: 503, 503 (retried), then 422 (dead) — each answer echoing our token and the debtor's name.
    const dead = await waitFor(async () => {
      const r = await stack.get('/v1/deliveries?status=dead');
      return r.body?.data?.[0];
    }, 40_000, 100, 'the dead-lettered case');
    expect(dead).toMatchObject({ lastStatus: 422, attempts: 3 });
    expect(agency.requests.length).toBeGreaterThanOrEqual(3);
    for (const r of agency.requests) sent.push(String(r.authorization).replace(/^Bearer /, ''));
    // The debtor name reaches the agency (it is the data), scrubbed of the card number typed into it (src/privacy/minimise.ts).
    expect(agency.requests[0].body).toContain('Jan [pan redacted]');
    for (const r of agency.requests) for (const card of CARD_DATA) expect(r.body).not.toContain(card);

    // 4. The agency pushes an update whose note carries card data.
    const inv = (await stack.get(`/v1/invoices/${f.invoice}`)).body;
    const pushToken = jwt.sign({}, SECRETS.agencyToHub, { algorithm: 'HS256', issuer: 'refagency', audience: HUB_ID, expiresIn: 60, jwtid: randomUUID() });
    sent.push(pushToken);
    const update = { id: `upd_logs_${Date.now().toString(36)}`, seq: 1, caseId: 'agency_case_1', caseReference: inv.case.id, claimReference: null, status: 'on_hold', note: `debtor paid with ${CARD_GROUPED} from ${IBAN}`, occurredAt: new Date().toISOString() };
    expect((await send(`${stack.hubUrl}/v1/partners/refagency/events`, { body: JSON.stringify({ events: [update] }), headers: { 'content-type': 'application/json', authorization: `Bearer ${pushToken}` } })).status).toBe(200);
    const forgedPush = jwt.sign({}, 'a-forged-agency-secret-0123456789abcdef', { algorithm: 'HS256', issuer: 'refagency', audience: HUB_ID, expiresIn: 60 });
    sent.push(forgedPush);
    expect((await send(`${stack.hubUrl}/v1/partners/refagency/events`, { body: JSON.stringify({ events: [update] }), headers: { 'content-type': 'application/json', authorization: `Bearer ${forgedPush}` } })).status).toBe(401);
    await waitFor(async () => (await stack.hub.ctx.db.query(`SELECT 1 FROM partner_updates WHERE update_id = $1 AND status <> 'received'`, [update.id])).rows.length === 1, 20_000, 100, 'the update applied');

    // 5. Merchant API calls with a valid and with invalid bearer tokens.
    const token = stack.token('acme');
    sent.push(token);
    expect((await send(`${stack.hubUrl}/v1/sync-log?limit=100`, { method: 'GET', headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    const wrong = jwt.sign({ sub: 'acme' }, 'not-the-merchant-secret-0123456789', { algorithm: 'HS256', audience: HUB_ID, issuer: HUB_ID, expiresIn: 60 });
    sent.push(wrong);
    expect((await send(`${stack.hubUrl}/v1/me`, { method: 'GET', headers: { authorization: `Bearer ${wrong}` } })).status).toBe(401);
    expect((await send(`${stack.hubUrl}/v1/customers/%00`, { method: 'GET', headers: { authorization: `Bearer ${token}` } })).status).toBe(400);

    // Let the background work settle, then look everywhere.
    await new Promise((r) => setTimeout(r, 500));
    const secrets = [...CARD_DATA, STRIPE_KEY, SECRETS.stripe.acme, SECRETS.merchantToken, SECRETS.hubToAgency, SECRETS.agencyToHub, ...sent.filter((s) => s.length > 20)];
    const signaturesOnly = sent.filter((s) => s.startsWith('t=')).flatMap((h) => h.split(',').filter((p) => p.startsWith('v1=')).map((p) => p.slice(3)));
    const all = [...secrets, ...signaturesOnly];

    allSecrets = all;
    const exchanges = (await stack.hub.ctx.db.query<{ request: unknown; response: unknown; summary: string | null }>(`SELECT request, response, summary FROM exchanges`)).rows;
    const places: Record<string, string> = {
      'log output': logText,
      'GET /v1/deliveries': JSON.stringify((await stack.get('/v1/deliveries?status=dead&limit=500')).body),
      'GET /v1/sync-log': JSON.stringify((await stack.get('/v1/sync-log?limit=500')).body),
      'exchanges.request': exchanges.map((x) => JSON.stringify(x.request)).join('\n'),
      'exchanges.response': exchanges.map((x) => JSON.stringify(x.response)).join('\n'),
      'exchanges.summary': exchanges.map((x) => x.summary ?? '').join('\n'),
    };
    // The places are not empty: the pipeline did run through them.
    expect(logText.split('\n').length).toBeGreaterThan(8);
    expect(logText).toMatch(/agency answered 422/);
    expect(exchanges.length).toBeGreaterThan(3);
    const leaks = leaksIn(places, all);
    console.log(`[security] logs (${mode}): ${logText.split('\n').length - 1} log lines, ${exchanges.length} sync-log entries and 2 API listings searched for ${all.length} secrets; leaks: ${leaks.length}`);
    if (process.env.SHOW_SECURITY_LOGS) console.log(logText);
    expect(leaks).toEqual([]);
  });

  maybe("and none in the outbox's last_response / last_error, where the agency's echo is kept", async () => {
    expect(allSecrets.length).toBeGreaterThan(10); // the test above ran
    const outbox = (await stack.hub.ctx.db.query<{ last_response: unknown; last_error: string | null }>(`SELECT last_response, last_error FROM outbox`)).rows;
    const places = {
      'outbox.last_response': outbox.map((x) => JSON.stringify(x.last_response)).join('\n'),
      'outbox.last_error': outbox.map((x) => x.last_error ?? '').join('\n'),
    };
    expect(places['outbox.last_error']).toMatch(/422/);
    const leaks = leaksIn(places, allSecrets);
    console.log(`[security] logs (${mode}): ${outbox.length} outbox rows searched; leaks: ${leaks.length}`);
    expect(leaks).toEqual([]);
  });
});
