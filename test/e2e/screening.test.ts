/**
 * Screening a sign-up (issue 17, requirement 3), end to end over real HTTP in both run modes: the
 * hub learns a person's identifiers from signed PSP webhooks (Stripe: e-mail, the merchant's own
 * customer id in the subscription's metadata, the card fingerprint of the failed attempt; Mollie:
 * e-mail, customer id in the customer's metadata, the IBAN of the SEPA debit), keeps them only as
 * salted hashes, and `POST /v1/screening` finds that person for their merchant by each of them —
 * and nothing for another merchant, even one with a customer of the same e-mail. Erasing the
 * customer removes its hashes: screening finds nothing afterwards. A body without identifiers is a
 * 400 that says so. Every call is in the sync log, without the plain e-mail or IBAN.
 */
import { startStack, type Mode, type Stack } from '../support/stack';
import { postgresAvailable, redisAvailable, waitFor } from '../support/services';
import { createFakeMollie, type FakeMollie } from '../../sim/psp/fake-mollie';
import { classicBody, mollieCustomer, mollieId, molliePayments } from '../../sim/psp/mollie-events';
import { stripeEvents } from '../../sim/psp/stripe-events';
import { loadDebtorProfile } from '../../src/profile/profile';

const API_KEY = 'test_acmeMollie0123456789abcdefghij';

async function modeAvailable(mode: Mode): Promise<boolean> {
  if (mode === 'embedded') return true;
  return (await postgresAvailable()) && (await redisAvailable());
}

let seq = 0;
const tag = () => `${Date.now().toString(36)}${(++seq).toString(36)}`;
const now = () => Math.floor(Date.now() / 1000);

/** A Dutch IBAN with valid check digits and a random account number (ISO 13616 mod 97). */
function randomIban(): string {
  const account = String(Math.floor(Math.random() * 1e10)).padStart(10, '0');
  const bban = `ABNA${account}`;
  const digits = `${bban}NL00`.replace(/[A-Z]/g, (c) => String(c.charCodeAt(0) - 55));
  let rest = 0;
  for (const d of digits) rest = (rest * 10 + Number(d)) % 97;
  return `NL${String(98 - rest).padStart(2, '0')}${bban}`;
}
const spaced = (iban: string) => iban.toLowerCase().replace(/(.{4})/g, '$1 ').trim();

describe.each<Mode>(['embedded', 'services'])('screening a sign-up (%s mode)', (mode) => {
  let fake: FakeMollie;
  let stack: Stack;
  let available = true;

  beforeAll(async () => {
    available = await modeAvailable(mode);
    if (!available) return;
    fake = createFakeMollie();
    const { apiBase } = await fake.start();
    stack = await startStack({
      mode, sim: { stepMs: 60_000 }, acmeProviders: `      mollie:\n        apiKey: ${API_KEY}\n        apiBase: ${apiBase}`,
      // One failure for insufficient funds is enough for the flag here, so a screened debtor has one on.
      policy: { acme: { behaviour: { repeatedInsufficientFunds: { count: 1, months: 6 } } } },
    });
    stack.sim.pause();
  }, 60_000);

  afterAll(async () => {
    if (stack) await stack.stop();
    if (fake) await fake.stop();
  });

  const maybe = (name: string, fn: () => Promise<void>, timeout = 60_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  const screen = async (merchantId: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) => {
    const r = await fetch(`${stack.hubUrl}/v1/screening`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.token(merchantId)}`, ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: r.status, body: (await r.json()) as any };
  };

  const customerWhen = (ref: string, ok: (body: any) => boolean, what: string, merchantId = 'acme') =>
    waitFor(async () => {
      const r = await stack.get(`/v1/customers/${ref}`, merchantId);
      return r.status === 200 && ok(r.body) ? r.body : null;
    }, 30_000, 100, what);

  /**
   * A Stripe customer whose invoice failed (Stripe retries later, so nothing goes to the agency)
   * with a card of this fingerprint, then was paid: known to the hub, owing nothing.
   */
  async function stripeCustomerPaidAfterFailure(merchantId: 'acme' | 'globex', p: { customer: string; email: string; merchantRef?: string; fingerprint?: string }) {
    const f = {
      invoice: `in_scr${tag()}`, customer: p.customer, amount: 1990, created: now() - 120, customerName: 'Jan Jansen', customerEmail: p.email,
      subscription: `sub_scr${tag()}`, ...(p.merchantRef ? { subscriptionMetadata: { customer_id: p.merchantRef } } : {}),
    };
    expect((await stack.sendStripe(merchantId, stripeEvents.paymentFailed({ ...f, nextPaymentAttempt: now() + 3 * 86400, failureCode: 'insufficient_funds', cardFingerprint: p.fingerprint }))).status).toBe(200);
    expect((await stack.sendStripe(merchantId, stripeEvents.paid({ ...f, created: now() - 60 }))).status).toBe(200);
    await waitFor(async () => (await stack.get(`/v1/invoices/${f.invoice}`, merchantId)).body?.status === 'recovered', 30_000, 100, 'the Stripe invoice recovered');
    return f.invoice;
  }

  /** A paid Mollie SEPA debit from this IBAN, of a Mollie customer with this e-mail and merchant id. */
  async function molliePaidFrom(p: { customerId: string; email: string; merchantRef: string; iban: string }) {
    const payment = molliePayments.sepaRecurring({ status: 'paid', customerId: p.customerId, value: '19.90' }) as any;
    payment.details = { ...payment.details, consumerAccount: p.iban };
    fake.setPayment(payment);
    fake.setCustomer(mollieCustomer({ id: p.customerId, name: 'Jan Jansen', email: p.email, metadata: { customer_id: p.merchantRef } }));
    const r = await fetch(`${stack.hubUrl}/v1/webhooks/mollie/acme`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: classicBody(payment.id) });
    expect(r.status).toBe(200);
    await waitFor(async () => (await stack.get(`/v1/invoices/${payment.id}`)).body?.status === 'settled', 30_000, 100, 'the Mollie payment settled');
  }

  const flagShape = { name: expect.any(String), on: expect.any(Boolean), why: expect.any(String), facts: expect.any(Object) };

  maybe('finds the same person by e-mail, IBAN, card fingerprint and customer id for their merchant, and nothing for another merchant', async () => {
    const email = `jan.${tag()}@example.nl`;
    const iban = randomIban();
    const fingerprint = `fp${tag()}Xq`;
    const merchantRef = `CRM-${tag()}`;
    const stripeCustomer = `cus_scr${tag()}`;
    const mollieCustomerId = mollieId('cst');

    await stripeCustomerPaidAfterFailure('acme', { customer: stripeCustomer, email, merchantRef, fingerprint });
    await molliePaidFrom({ customerId: mollieCustomerId, email, merchantRef, iban });
    const view = await customerWhen(stripeCustomer, (b) => b.debtor?.identities?.length === 2, 'one debtor for both PSP customers');
    const debtorId = view.debtor.id;
    const idOf = (provider: string) => view.debtor.identities.find((i: any) => i.provider === provider).customerId;

    // By e-mail, as a sign-up form sends it: both PSP customers of the debtor hold it.
    const byEmail = await screen('acme', { email: `  ${email.toUpperCase()} ` });
    expect(byEmail.status).toBe(200);
    expect(byEmail.body.match).toBe(true);
    expect(byEmail.body.debtors).toHaveLength(1);
    expect(byEmail.body.debtors[0]).toMatchObject({ id: debtorId, matchedBy: ['email'] });
    expect(byEmail.body.debtors[0].customers.map((c: any) => `${c.provider}:${c.ref}:${c.matchedBy}`).sort()).toEqual([`mollie:${mollieCustomerId}:email`, `stripe:${stripeCustomer}:email`]);
    // The debtor's explainable flags, as its profile computes them (src/profile/profile.ts).
    const flags = byEmail.body.debtors[0].flags;
    for (const f of flags) expect(f).toEqual(flagShape);
    expect(flags).toContainEqual(expect.objectContaining({ name: 'repeated_insufficient_funds', on: true }));
    const profile = await stack.hub.ctx.db.tx((sql) => loadDebtorProfile(sql, stack.hub.ctx.merchants.get('acme')!, debtorId, new Date()));
    expect(flags.map((f: any) => f.name)).toEqual(profile.flags.map((f) => f.name));
    expect(byEmail.body.identifiers).toEqual([{ field: 'email', kind: 'email', masked: expect.stringMatching(/^j•••@e•••\.nl$/), matched: true }]);

    // By IBAN (spaces, lower case): the Mollie customer whose debit came from it.
    const byIban = await screen('acme', { iban: spaced(iban) });
    expect(byIban.body.match).toBe(true);
    expect(byIban.body.debtors).toEqual([expect.objectContaining({ id: debtorId, matchedBy: ['iban'], customers: [{ id: idOf('mollie'), provider: 'mollie', ref: mollieCustomerId, matchedBy: ['iban'] }] })]);

    // By card fingerprint: the Stripe customer whose card failed.
    const byCard = await screen('acme', { cardFingerprint: fingerprint });
    expect(byCard.body.debtors).toEqual([expect.objectContaining({ id: debtorId, matchedBy: ['card_fingerprint'], customers: [{ id: idOf('stripe'), provider: 'stripe', ref: stripeCustomer, matchedBy: ['card_fingerprint'] }] })]);

    // All at once, with the merchant's own customer id: one debtor, every kind.
    const all = await screen('acme', { email, iban, cardFingerprint: fingerprint, merchantRef });
    expect(all.body.debtors).toHaveLength(1);
    expect([...all.body.debtors[0].matchedBy].sort()).toEqual(['card_fingerprint', 'email', 'iban', 'merchant_ref']);
    expect(all.body.identifiers.every((i: any) => i.matched)).toBe(true);

    // An unknown identifier matches nothing (200, match false).
    const unknown = await screen('acme', { email: `someone.else.${tag()}@example.nl`, iban: randomIban() });
    expect(unknown.status).toBe(200);
    expect(unknown.body).toMatchObject({ match: false, debtors: [] });
    expect(unknown.body.identifiers.map((i: any) => i.matched)).toEqual([false, false]);

    // Another merchant finds nothing of acme's customer, by any identifier…
    const other = await screen('globex', { email, iban, cardFingerprint: fingerprint, merchantRef });
    expect(other.status).toBe(200);
    expect(other.body).toMatchObject({ match: false, debtors: [] });
    // …even once it has a customer of its own with the same e-mail: it finds only that one, and acme only its own.
    const globexCustomer = `cus_scrg${tag()}`;
    await stripeCustomerPaidAfterFailure('globex', { customer: globexCustomer, email });
    const globexView = await customerWhen(globexCustomer, () => true, "globex's customer", 'globex');
    const globexByEmail = await screen('globex', { email });
    expect(globexByEmail.body.debtors.map((d: any) => d.id)).toEqual([globexView.debtor.id]);
    expect(globexByEmail.body.debtors[0].customers.map((c: any) => c.ref)).toEqual([globexCustomer]);
    expect((await screen('acme', { email })).body.debtors.map((d: any) => d.id)).toEqual([debtorId]);

    // The table holds hashes only: 64 hex digits, never the e-mail, IBAN, fingerprint or customer id.
    const rows = (await stack.hub.ctx.db.query(`SELECT * FROM identifier_hashes WHERE customer_id = ANY($1::text[])`, [[idOf('stripe'), idOf('mollie'), globexView.debtor.identities[0].customerId]])).rows;
    expect(rows.map((r: any) => r.kind).sort()).toEqual(['card_fingerprint', 'email', 'email', 'email', 'iban', 'merchant_ref', 'merchant_ref']);
    for (const r of rows) expect(r.hash).toMatch(/^[0-9a-f]{64}$/);
    const dump = JSON.stringify(rows);
    for (const plain of [email, iban, fingerprint, merchantRef]) expect(dump).not.toContain(plain);
    // The same e-mail hashes differently for acme and globex.
    const emailHashes = rows.filter((r: any) => r.kind === 'email');
    expect(new Set(emailHashes.filter((r: any) => r.merchant_id === 'acme').map((r: any) => r.hash)).size).toBe(1);
    expect(emailHashes.find((r: any) => r.merchant_id === 'globex').hash).not.toBe(emailHashes.find((r: any) => r.merchant_id === 'acme').hash);
  });

  maybe('erasure removes the hashes: screening finds nothing afterwards, and a later event of the erased customer brings none back', async () => {
    const email = `erase.${tag()}@example.nl`;
    const fingerprint = `fp${tag()}Er`;
    const customer = `cus_scre${tag()}`;
    const invoice = await stripeCustomerPaidAfterFailure('acme', { customer, email, fingerprint });
    expect((await screen('acme', { email })).body.match).toBe(true);
    expect((await screen('acme', { cardFingerprint: fingerprint })).body.match).toBe(true);

    const erased = await fetch(`${stack.hubUrl}/v1/customers/${customer}/erase`, { method: 'POST', headers: { authorization: `Bearer ${stack.token('acme')}` } });
    expect(erased.status).toBe(200);
    const body = (await erased.json()) as any;
    expect(body.purged.identifierHashes).toBe(2);
    expect((await stack.hub.ctx.db.query(`SELECT 1 FROM identifier_hashes WHERE customer_id = $1`, [body.customer])).rows).toHaveLength(0);

    expect((await screen('acme', { email })).body).toMatchObject({ match: false, debtors: [] });
    expect((await screen('acme', { email, cardFingerprint: fingerprint })).body).toMatchObject({ match: false, debtors: [] });

    // The PSP sends the customer's e-mail again (a late webhook): the erased customer gets no hash back.
    expect((await stack.sendStripe('acme', stripeEvents.paid({ invoice, customer, amount: 1990, created: now(), customerEmail: email, subscription: `sub_scr${tag()}` }))).status).toBe(200);
    await waitFor(async () => (await stack.get(`/v1/sync-log?invoice=${invoice}&limit=10`)).body.data.filter((e: any) => e.operation === 'invoice.paid').length >= 2
      && (await stack.get('/v1/deliveries?status=pending&scope=all')).body.data.length === 0, 30_000, 100, 'the late event processed');
    expect((await screen('acme', { email })).body.match).toBe(false);
  });

  maybe('a body without identifiers is a 400 that says so; every call is in the sync log, without the plain e-mail or IBAN', async () => {
    const email = `Log.${tag()}@Example.nl`;
    const iban = randomIban();
    const empty = await screen('acme', {});
    expect(empty.status).toBe(400);
    expect(empty.body.error).toEqual({ code: 'bad_request', message: 'at least one identifier is required: email, merchantRef, iban or cardFingerprint' });
    const notJson = await screen('acme', `email=${encodeURIComponent(email)}`, { 'content-type': 'application/x-www-form-urlencoded' });
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.message).toMatch(/send a JSON object/);
    const broken = await screen('acme', '{"email": ');
    expect(broken.status).toBe(400);
    const badIban = await screen('acme', { email, iban: 'NL00ABNA0000000000' });
    expect(badIban.status).toBe(400);
    expect(badIban.body.error.message).toMatch(/^iban is not a valid IBAN/);
    const unauthenticated = await fetch(`${stack.hubUrl}/v1/screening`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email }) });
    expect(unauthenticated.status).toBe(401);
    const answered = await screen('acme', { email, iban });
    expect(answered.status).toBe(200);

    const log = (await stack.get('/v1/sync-log?direction=in&limit=200')).body.data.filter((e: any) => e.operation === 'POST /v1/screening');
    const text = JSON.stringify(log);
    expect(text).not.toContain(email);
    expect(text).not.toContain(email.toLowerCase());
    expect(text).not.toContain(iban);
    const refused = log.filter((e: any) => e.outcome === 'rejected');
    expect(refused.map((e: any) => e.httpStatus)).toEqual([400, 400, 400, 400]);
    expect(refused.map((e: any) => e.summary)).toEqual(expect.arrayContaining([
      'screening refused: at least one identifier is required: email, merchantRef, iban or cardFingerprint',
      'screening refused: request body is not valid JSON',
      expect.stringMatching(/^screening refused: iban is not a valid IBAN/),
    ]));
    const ok = log.find((e: any) => e.outcome === 'ok');
    expect(ok).toMatchObject({ party: 'merchant', direction: 'in', httpStatus: 200, summary: 'screening by email, iban: no match', response: { match: false, debtors: [] } });
    expect(ok.request.identifiers).toEqual([
      { kind: 'email', masked: 'l•••@e•••.nl', hash: expect.stringMatching(/^[0-9a-f]{16}$/) },
      { kind: 'iban', masked: `${iban.slice(0, 4)}•••${iban.slice(-4)}`, hash: expect.stringMatching(/^[0-9a-f]{16}$/) },
    ]);
    // The stored rows too (the API masks on the way out; the table must not need it).
    const stored = JSON.stringify((await stack.hub.ctx.db.query(`SELECT summary, request, response FROM exchanges WHERE operation = 'POST /v1/screening'`)).rows);
    expect(stored).not.toContain(email.toLowerCase());
    expect(stored).not.toContain(iban);
    // Another merchant's sync log shows none of acme's screenings.
    const globexLog = (await stack.get('/v1/sync-log?direction=in&limit=200', 'globex')).body.data;
    expect(globexLog.filter((e: any) => e.operation === 'POST /v1/screening' && JSON.stringify(e).includes('l•••@e•••.nl'))).toEqual([]);
  });
});
