/**
 * End to end over real HTTP, in both run modes: a classic Mollie webhook (`id=tr_…`, unsigned)
 * → the hub fetches the payment and its customer through the official SDK from the local fake
 * Mollie (`apiBase` in acme's mollie block) → a case at the agency simulator. Mollie re-delivers
 * the same id, for the same and for later changes; each fact is applied once.
 */
import { startStack, type Mode, type Stack } from '../support/stack';
import { postgresAvailable, redisAvailable, waitFor } from '../support/services';
import { createFakeMollie, type FakeMollie } from '../../sim/psp/fake-mollie';
import { classicBody, mollieChargeback, mollieCustomer, mollieId, molliePayments } from '../../sim/psp/mollie-events';

const API_KEY = 'test_acmeMollie0123456789abcdefghij';

async function modeAvailable(mode: Mode): Promise<boolean> {
  if (mode === 'embedded') return true;
  return (await postgresAvailable()) && (await redisAvailable());
}

interface LogEntry {
  operation: string;
  outcome: string;
  summary: string;
  request: { id?: string } | null;
}

describe.each<Mode>(['embedded', 'services'])('Mollie → agency (%s mode)', (mode) => {
  let fake: FakeMollie;
  let stack: Stack;
  let available = true;

  beforeAll(async () => {
    available = await modeAvailable(mode);
    if (!available) return;
    // Mollie's real lifecycle: a failed, expired, canceled or paid payment never changes status.
    fake = createFakeMollie({ strictLifecycle: true });
    const { apiBase } = await fake.start();
    stack = await startStack({ mode, sim: { stepMs: 60_000 }, acmeProviders: `      mollie:\n        apiKey: ${API_KEY}\n        apiBase: ${apiBase}` });
    stack.sim.pause();
  }, 60_000);

  afterAll(async () => {
    if (stack) await stack.stop();
    if (fake) await fake.stop();
  });

  const maybe = (name: string, fn: () => Promise<void>, timeout = 30_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  /** What Mollie posts (psp-webhooks.md §2.6). */
  const sendMollie = (body: string, contentType = 'application/x-www-form-urlencoded') =>
    fetch(`${stack.hubUrl}/v1/webhooks/mollie/acme`, { method: 'POST', headers: { 'content-type': contentType, 'user-agent': 'Mollie HTTP client/1.0' }, body });

  /** The inbound log entries of one payment id, once `done(entries)` holds for them. */
  const deliveriesOf = (paymentId: string, done: (entries: LogEntry[]) => boolean, what: string) =>
    waitFor(async () => {
      const r = await stack.get('/v1/sync-log?direction=in&limit=100');
      const mine = (r.body.data as LogEntry[]).filter((e) => e.request?.id === paymentId);
      return done(mine) ? mine : null;
    }, 20_000, 100, what);

  const casesPosted = () => stack.sim.requests().filter((r) => r.method === 'POST' && r.path === '/v1/cases' && r.status === 201).length;

  maybe('a failed SEPA payment (AM04) becomes one case; two more deliveries of the same id change nothing; paying later reaches the agency', async () => {
    const customerId = mollieId('cst');
    const payment = molliePayments.sepaRecurring({ status: 'failed', customerId, value: '49.00', bankReasonCode: 'AM04' });
    fake.setPayment(payment);
    fake.setCustomer(mollieCustomer({ id: customerId, name: 'Jan Jansen', email: 'jan@example.nl', locale: 'nl_NL' }));
    const before = casesPosted();

    const first = await sendMollie(classicBody(payment.id));
    expect(first.status).toBe(200);
    expect(await first.text()).toBe('');

    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${payment.id}`);
      return r.status === 200 && r.body.case?.partnerRef ? r.body : null;
    }, 20_000, 100, 'the case to reach the agency');
    expect(inv).toMatchObject({
      ref: payment.id,
      provider: 'mollie',
      number: 'ACME-0042',
      status: 'submitted',
      amountDue: { value: 4900, currency: 'EUR' },
      paymentMethod: 'sepa_debit',
      subscriptionRef: payment.subscriptionId,
      failure: { code: 'AM04', reason: 'insufficient_funds', message: 'Insufficient funds', final: true, count: 1 },
    });
    const simCase = stack.sim.case(inv.case.partnerRef);
    expect(simCase.claims).toHaveLength(1);
    expect(simCase.claims[0].principal).toEqual({ value: 4900, currency: 'EUR' });
    // What the agency accepted (201) carried the PSP, its raw SEPA reason code and the canonical reason.
    const out = await stack.get(`/v1/sync-log?direction=out&case=${inv.case.id}`);
    const submit = out.body.data.find((x: { operation: string }) => x.operation === 'POST /v1/cases');
    expect(submit).toMatchObject({ httpStatus: 201, outcome: 'ok' });
    const sentClaims = (typeof submit.request === 'string' ? JSON.parse(submit.request) : submit.request).claims;
    expect(sentClaims).toEqual([
      expect.objectContaining({ reference: inv.claim.id, principal: { value: 4900, currency: 'EUR' }, failure: { provider: 'mollie', code: 'AM04', reason: 'insufficient_funds' } }),
    ]);
    expect(simCase.debtor).toMatchObject({ name: 'Jan Jansen', type: 'consumer' });
    expect(casesPosted()).toBe(before + 1);
    const customer = await stack.get(`/v1/customers/${customerId}`);
    expect(customer.body.lastFailure).toMatchObject({ code: 'AM04', reason: 'insufficient_funds' });

    // Mollie retries: the same id twice more, for the same (failed) state.
    const again = await Promise.all([sendMollie(classicBody(payment.id)), sendMollie(classicBody(payment.id))]);
    expect(again.map((a) => a.status)).toEqual([200, 200]);
    // The first delivery was applied (`ok`), the two later ones are recorded as the same fact again.
    const log = await deliveriesOf(payment.id, (es) => es.filter((e) => e.outcome === 'duplicate').length === 2, 'two duplicate deliveries');
    expect(log).toHaveLength(3);
    expect(log.filter((e) => e.outcome === 'duplicate').map((e) => e.summary)).toEqual([`${payment.id}:failed already applied`, `${payment.id}:failed already applied`]);
    expect(log.filter((e) => e.outcome === 'ok').map((e) => e.summary)).toEqual([expect.stringMatching(/^payment_failed: /)]);
    const after = await stack.get(`/v1/invoices/${payment.id}`);
    expect(after.body).toMatchObject({ status: 'submitted', case: { id: inv.case.id }, failure: { count: 1 } });
    expect(stack.sim.case(inv.case.partnerRef).claims).toHaveLength(1);
    expect(casesPosted()).toBe(before + 1);
    // The truth is fetched from Mollie, once per coalescing window (issue 13: unsigned deliveries of
    // one id are coalesced): the first delivery, and the two concurrent re-deliveries together
    // unless a slow machine splits them across windows.
    const fetches = fake.requests.filter((r) => r.path === `/v2/payments/${payment.id}`).length;
    expect(fetches).toBeGreaterThanOrEqual(2);
    expect(fetches).toBeLessThanOrEqual(3);

    // The customer pays after all. A failed Mollie payment is final (it never turns paid): the
    // debtor pays through a new payment carrying the merchant's invoice id, which the hub links to
    // this invoice (README "Mollie: a later payment pays the open invoice"): reported to the agency at once.
    const repayment = molliePayments.ideal({ status: 'paid', customerId, value: '49.00', metadata: { invoiceId: 'ACME-0042' } });
    fake.setPayment(repayment);
    expect((await sendMollie(classicBody(repayment.id))).status).toBe(200);
    await waitFor(async () => stack.sim.case(inv.case.partnerRef).claims[0].amountPaidToMerchant.value === 4900, 20_000, 100, 'the payment report at the agency');
    expect((await stack.get(`/v1/invoices/${payment.id}`)).body).toMatchObject({ status: 'paid', resolution: 'paid_to_merchant' });
  });

  maybe('a chargeback on another (paid) payment does not open a case: the invoice is disputed', async () => {
    const customerId = mollieId('cst');
    const payment = molliePayments.card({ status: 'paid', customerId, value: '25.00' });
    fake.setPayment(payment);
    fake.setCustomer(mollieCustomer({ id: customerId, name: 'Piet Pieters', email: 'piet@example.nl' }));
    const before = casesPosted();

    expect((await sendMollie(classicBody(payment.id))).status).toBe(200);
    await waitFor(async () => (await stack.get(`/v1/invoices/${payment.id}`)).body?.status === 'settled', 20_000, 100, 'the settled invoice');

    fake.addChargeback(mollieChargeback({ paymentId: payment.id, value: '25.00', reasonCode: 'fraudulent' }));
    expect((await sendMollie(classicBody(payment.id))).status).toBe(200);
    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${payment.id}`);
      return r.body?.status === 'disputed' ? r.body : null;
    }, 20_000, 100, 'the disputed invoice');
    expect(inv.case).toBeNull();
    // Give a wrongly scheduled hand-over the time to happen, then check none did.
    await new Promise((r) => setTimeout(r, 500));
    expect(casesPosted()).toBe(before);
    expect((await stack.get(`/v1/invoices/${payment.id}`)).body).toMatchObject({ status: 'disputed', case: null });
  });

  maybe('a webhook for an id Mollie does not know gets 200 and creates nothing', async () => {
    const unknown = mollieId('tr');
    const r = await sendMollie(classicBody(unknown));
    expect(r.status).toBe(200);
    const [entry] = await deliveriesOf(unknown, (es) => es.some((e) => e.outcome !== 'ok'), 'the delivery to be processed');
    expect(entry).toMatchObject({ operation: 'payment.webhook', outcome: 'ignored' });
    expect(fake.requests.filter((x) => x.path === `/v2/payments/${unknown}`).length).toBeGreaterThanOrEqual(1);
    expect((await stack.get(`/v1/invoices/${unknown}`)).status).toBe(404);
  });

  maybe('a body that is not a Mollie webhook is refused with 400', async () => {
    const r = await sendMollie('id=in_1PFail00000000000000001');
    expect(r.status).toBe(400);
    const json = await sendMollie(JSON.stringify({ id: 'tr_abc' }), 'application/json');
    expect(json.status).toBe(400);
  });
});
