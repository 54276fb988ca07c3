/**
 * End to end over real HTTP (issue 12, hole 2): Mollie's real lifecycle. A payment that failed is
 * final at Mollie — it never turns paid (psp-webhooks reference §2.5); the debtor who pays later
 * pays through a new `tr_…` payment. The fake Mollie runs with `strictLifecycle`, so a test that
 * flipped a failed payment to paid would throw.
 *
 * tr_1 (recurring SEPA, AM04) failed → handed over to the agency simulator → the debtor pays
 * through tr_2 (a one-off iDEAL payment with the merchant's invoice id in its metadata) → the hub
 * links tr_2 to the invoice tr_1 opened, reports the payment to the agency and ends the claim;
 * GET /v1/invoices/tr_2 then answers tr_1's invoice (for the same merchant only).
 * And when the invoice id names two open invoices, nothing is guessed.
 */
import { startStack, type Stack } from '../support/stack';
import { waitFor } from '../support/services';
import { createFakeMollie, type FakeMollie } from '../../sim/psp/fake-mollie';
import { classicBody, mollieCustomer, mollieId, molliePayments } from '../../sim/psp/mollie-events';

const API_KEY = 'test_acmeMollie0123456789abcdefghij';

interface LogEntry {
  operation: string;
  outcome: string;
  summary: string;
  request: { id?: string } | null;
}

describe('Mollie re-payment through a new payment (embedded mode)', () => {
  let fake: FakeMollie;
  let stack: Stack;

  beforeAll(async () => {
    fake = createFakeMollie({ strictLifecycle: true });
    const { apiBase } = await fake.start();
    // The merchant's rule, written out as the default reads (README "Payment providers").
    stack = await startStack({
      mode: 'embedded',
      sim: { stepMs: 60_000 },
      acmeProviders: `      mollie:\n        apiKey: ${API_KEY}\n        apiBase: ${apiBase}\n        invoiceLink: [metadata.invoiceId, subscriptionPeriod]`,
    });
    stack.sim.pause();
  }, 60_000);

  afterAll(async () => {
    if (stack) await stack.stop();
    if (fake) await fake.stop();
  });

  const sendMollie = (id: string) =>
    fetch(`${stack.hubUrl}/v1/webhooks/mollie/acme`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'Mollie HTTP client/1.0' },
      body: classicBody(id),
    });

  /** The applied (non-duplicate) inbound log entry of one payment id. */
  const appliedEntry = (paymentId: string) =>
    waitFor(async () => {
      const r = await stack.get('/v1/sync-log?direction=in&limit=200');
      // Stored first ("stored …"), then the ledger's line once the event is applied.
      return (r.body.data as LogEntry[]).find((e) => e.request?.id === paymentId && e.outcome === 'ok' && /^payment_/.test(e.summary)) ?? null;
    }, 20_000, 100, `the delivery of ${paymentId} to be applied`);

  const handedOver = (ref: string) =>
    waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${ref}`);
      return r.status === 200 && r.body.case?.partnerRef ? r.body : null;
    }, 20_000, 100, `${ref} to reach the agency`);

  const casesPosted = () => stack.sim.requests().filter((r) => r.method === 'POST' && r.path === '/v1/cases' && r.status === 201).length;

  it('tr_1 failed (final) and handed over; the debtor pays through tr_2: the agency is told and the claim ends', async () => {
    const customerId = mollieId('cst');
    const invoiceId = `ACME-${mollieId('inv')}`;
    fake.setCustomer(mollieCustomer({ id: customerId, name: 'Jan Jansen', email: 'jan@example.nl', locale: 'nl_NL' }));
    const tr1 = molliePayments.sepaRecurring({ status: 'failed', customerId, value: '49.00', bankReasonCode: 'AM04', metadata: { invoiceId } });
    fake.setPayment(tr1);
    const before = casesPosted();

    expect((await sendMollie(tr1.id)).status).toBe(200);
    const inv = await handedOver(tr1.id);
    expect(inv).toMatchObject({ status: 'submitted', number: invoiceId, amountDue: { value: 4900, currency: 'EUR' }, failure: { code: 'AM04', final: true } });
    const simCase = stack.sim.case(inv.case.partnerRef);
    expect(simCase.claims).toHaveLength(1);

    // Mollie's lifecycle: tr_1 stays failed for good (the strict fake refuses to change it).
    expect(() => fake.setPayment({ ...tr1, status: 'paid', paidAt: new Date().toISOString() })).toThrow(/final at Mollie/);

    // The debtor pays by iDEAL through a payment the merchant created for the same invoice.
    const tr2 = molliePayments.ideal({ status: 'paid', customerId, value: '49.00', metadata: { invoiceId }, description: `Invoice ${invoiceId}` });
    fake.setPayment(tr2);
    expect((await sendMollie(tr2.id)).status).toBe(200);

    await waitFor(async () => stack.sim.case(inv.case.partnerRef).claims[0].amountPaidToMerchant.value === 4900, 20_000, 100, 'the payment report at the agency');
    const after = (await stack.get(`/v1/invoices/${tr1.id}`)).body;
    expect(after).toMatchObject({ id: inv.id, status: 'paid', resolution: 'paid_to_merchant' });
    // The report the agency accepted names the claim and the amount; no second invoice, case or claim.
    const out = await stack.get(`/v1/sync-log?direction=out&case=${inv.case.id}`);
    const report = (out.body.data as { operation: string; httpStatus: number; request: unknown }[]).find((x) => /\/payments$/.test(x.operation));
    expect(report).toMatchObject({ httpStatus: 202 });
    const sent = typeof report!.request === 'string' ? JSON.parse(report!.request) : report!.request;
    expect(sent).toMatchObject({ amount: { value: 4900, currency: 'EUR' }, channel: 'mollie' });
    expect(casesPosted()).toBe(before + 1);
    expect(stack.sim.case(inv.case.partnerRef).claims).toHaveLength(1);
    // Either payment's id finds the one invoice (through invoice_payment_refs); another merchant's token finds neither.
    const byTr2 = await stack.get(`/v1/invoices/${tr2.id}`);
    expect(byTr2.status).toBe(200);
    expect(byTr2.body).toMatchObject({ id: inv.id, status: 'paid', number: invoiceId, resolution: 'paid_to_merchant', case: { id: inv.case.id } });
    for (const ref of [tr1.id, tr2.id]) expect((await stack.get(`/v1/invoices/${ref}`, 'globex')).status).toBe(404);
    // The sync log says why tr_2 paid tr_1's invoice.
    expect((await appliedEntry(tr2.id)).summary).toContain(`linked to open invoice ${inv.id} by metadata.invoiceId ${invoiceId}`);
    // Neither payment ever changed status at Mollie.
    expect([fake.payments.get(tr1.id)!.status, fake.payments.get(tr2.id)!.status]).toEqual(['failed', 'paid']);
  }, 60_000);

  it('an invoice id that names two open invoices is never guessed: the payment is an invoice of its own, and the sync log says why', async () => {
    const customerId = mollieId('cst');
    const invoiceId = `ACME-${mollieId('inv')}`;
    const subscriptionId = mollieId('sub');
    fake.setCustomer(mollieCustomer({ id: customerId }));
    // Two months of one subscription failed; Mollie copied the subscription's metadata onto both.
    const may = molliePayments.sepaRecurring({ status: 'failed', customerId, subscriptionId, metadata: { invoiceId }, createdAt: '2024-05-01T06:00:00+00:00' });
    const june = molliePayments.sepaRecurring({ status: 'failed', customerId, subscriptionId, metadata: { invoiceId }, createdAt: '2024-06-01T06:00:00+00:00' });
    for (const p of [may, june]) {
      fake.setPayment(p);
      expect((await sendMollie(p.id)).status).toBe(200);
      await handedOver(p.id);
    }
    const paid = molliePayments.ideal({ status: 'paid', customerId, metadata: { invoiceId } });
    fake.setPayment(paid);
    expect((await sendMollie(paid.id)).status).toBe(200);

    const entry = await appliedEntry(paid.id);
    expect(entry.summary).toMatch(new RegExp(`not linked: metadata\\.invoiceId ${invoiceId} names 2 open invoices`));
    expect((await stack.get(`/v1/invoices/${paid.id}`)).body).toMatchObject({ status: 'settled', case: null });
    for (const p of [may, june]) expect((await stack.get(`/v1/invoices/${p.id}`)).body.status).toBe('submitted');
  }, 60_000);
});
