/**
 * The local Stripe fake (sim/psp/fake-stripe.ts) answers what the official SDK sends: checked
 * through stripe-node itself (createStripeClient with apiBase), so the wire format is the SDK's.
 */
import Stripe from 'stripe';
import { createStripeClient } from '../../../connectors/psp/stripe/client';
import { createFakeStripe, parseNested, type FakeStripe } from '../../../sim/psp/fake-stripe';

let fake: FakeStripe;
let stripe: Stripe;

const invoice = {
  id: 'in_fake1',
  object: 'invoice',
  amount_due: 4900,
  amount_paid: 0,
  amount_remaining: 4900,
  currency: 'eur',
  status: 'open',
  paid: false,
  auto_advance: true,
  next_payment_attempt: 1717459200,
  status_transitions: { finalized_at: 1717200000, marked_uncollectible_at: null, paid_at: null, voided_at: null },
};

beforeAll(async () => {
  fake = createFakeStripe({ now: () => 1717300000 });
  const { url } = await fake.start();
  stripe = createStripeClient({ apiKey: 'sk_test_x', apiBase: url });
});
afterAll(() => fake.stop());
beforeEach(() => fake.reset());

describe('fake Stripe', () => {
  it('retrieves objects and expands ids it knows (qs-style expand[0])', async () => {
    fake.paymentIntents.set('pi_1', { id: 'pi_1', object: 'payment_intent', latest_charge: 'ch_1' });
    fake.charges.set('ch_1', { id: 'ch_1', object: 'charge', failure_code: 'expired_card' });
    const pi = await stripe.paymentIntents.retrieve('pi_1', { expand: ['latest_charge'] });
    expect(pi.latest_charge).toEqual({ id: 'ch_1', object: 'charge', failure_code: 'expired_card' });
    const plain = await stripe.paymentIntents.retrieve('pi_1');
    expect(plain.latest_charge).toBe('ch_1');
    expect(fake.requests[0]).toEqual({
      method: 'GET',
      path: '/v1/payment_intents/pi_1',
      query: { expand: ['latest_charge'] },
      body: {},
      stripeVersion: Stripe.API_VERSION,
    });
  });

  it('answers 404 resource_missing for unknown ids, which the SDK types as an invalid request', async () => {
    const err = await stripe.charges.retrieve('ch_nope').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(err).toMatchObject({ statusCode: 404, code: 'resource_missing', message: "No such charge: 'ch_nope'" });
  });

  it('retrieves payment methods (a mandate names only its payment method; the customer is on it), 404 for unknown ones', async () => {
    fake.paymentMethods.set('pm_1', { id: 'pm_1', object: 'payment_method', type: 'sepa_debit', customer: 'cus_1' });
    fake.paymentMethods.set('pm_2', { id: 'pm_2', object: 'payment_method', type: 'sepa_debit', customer: null });
    const pm = await stripe.paymentMethods.retrieve('pm_1', { expand: ['customer'] });
    expect(pm).toMatchObject({ id: 'pm_1', customer: 'cus_1' }); // a customer the fake does not hold stays an id
    expect(fake.requests[0]).toMatchObject({ method: 'GET', path: '/v1/payment_methods/pm_1' });
    const err = await stripe.paymentMethods.retrieve('pm_nope').catch((e: unknown) => e);
    expect(err).toMatchObject({ statusCode: 404, code: 'resource_missing', message: "No such payment_method: 'pm_nope'" });
    fake.reset();
    expect(fake.paymentMethods.size).toBe(0);
  });

  it('lists invoice payments by invoice or by payment intent, with expansion through data', async () => {
    fake.paymentIntents.set('pi_a', { id: 'pi_a', object: 'payment_intent' });
    fake.invoicePayments.set('inpay_a', { id: 'inpay_a', object: 'invoice_payment', invoice: 'in_fake1', created: 1, payment: { type: 'payment_intent', payment_intent: 'pi_a' } });
    fake.invoicePayments.set('inpay_b', { id: 'inpay_b', object: 'invoice_payment', invoice: 'in_other', created: 2, payment: { type: 'payment_intent', payment_intent: 'pi_b' } });
    const byInvoice = await stripe.invoicePayments.list({ invoice: 'in_fake1', expand: ['data.payment.payment_intent'] });
    expect(byInvoice.data.map((p) => p.id)).toEqual(['inpay_a']);
    expect(byInvoice.data[0].payment.payment_intent).toEqual({ id: 'pi_a', object: 'payment_intent' });
    const byPayment = await stripe.invoicePayments.list({ payment: { type: 'payment_intent', payment_intent: 'pi_b' } });
    expect(byPayment.data.map((p) => p.id)).toEqual(['inpay_b']);
    expect(fake.requests[1].query).toEqual({ payment: { type: 'payment_intent', payment_intent: 'pi_b' } });
  });

  it("includes an invoice's payments when expanded", async () => {
    fake.invoices.set('in_fake1', invoice);
    fake.invoicePayments.set('inpay_a', { id: 'inpay_a', object: 'invoice_payment', invoice: 'in_fake1', payment: { type: 'payment_intent', payment_intent: 'pi_a' } });
    fake.paymentIntents.set('pi_a', { id: 'pi_a', object: 'payment_intent' });
    const inv = await stripe.invoices.retrieve('in_fake1', { expand: ['payments.data.payment.payment_intent'] });
    expect(inv.payments?.data[0].payment.payment_intent).toEqual({ id: 'pi_a', object: 'payment_intent' });
    expect((await stripe.invoices.retrieve('in_fake1')).payments).toBeUndefined();
  });

  it('pays an invoice out of band (form-encoded body) and answers the updated invoice', async () => {
    fake.invoices.set('in_fake1', invoice);
    const paid = await stripe.invoices.pay('in_fake1', { paid_out_of_band: true });
    expect(paid).toMatchObject({ id: 'in_fake1', status: 'paid', paid: true, amount_paid: 4900, amount_remaining: 0, next_payment_attempt: null });
    expect(paid.status_transitions.paid_at).toBe(1717300000);
    expect(fake.invoices.get('in_fake1')?.status).toBe('paid');
    expect(fake.requests[0]).toMatchObject({ method: 'POST', path: '/v1/invoices/in_fake1/pay', body: { paid_out_of_band: 'true' } });
    // Paying twice is refused as Stripe does.
    await expect(stripe.invoices.pay('in_fake1', { paid_out_of_band: true })).rejects.toThrow('Invoice is already paid');
    // The fake never charges.
    fake.invoices.set('in_fake2', { ...invoice, id: 'in_fake2' });
    await expect(stripe.invoices.pay('in_fake2')).rejects.toMatchObject({ statusCode: 400, param: 'paid_out_of_band' });
  });

  it('marks an open invoice uncollectible', async () => {
    fake.invoices.set('in_fake1', invoice);
    const inv = await stripe.invoices.markUncollectible('in_fake1');
    expect(inv).toMatchObject({ status: 'uncollectible', next_payment_attempt: null, status_transitions: { marked_uncollectible_at: 1717300000 } });
    await expect(stripe.invoices.markUncollectible('in_fake1')).rejects.toMatchObject({ statusCode: 400 });
    await expect(stripe.invoices.markUncollectible('in_nope')).rejects.toMatchObject({ statusCode: 404, code: 'resource_missing' });
  });

  it('refuses a wrong key with 401 when configured with one', async () => {
    const strict = createFakeStripe({ apiKey: 'sk_test_right' });
    const { url } = await strict.start();
    try {
      const wrong = createStripeClient({ apiKey: 'sk_test_wrong', apiBase: url });
      await expect(wrong.charges.retrieve('ch_1')).rejects.toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
    } finally {
      await strict.stop();
    }
  });

  it('injected failures apply a given number of times', async () => {
    fake.charges.set('ch_1', { id: 'ch_1', object: 'charge' });
    fake.fail({ path: '/v1/charges/ch_1', status: 503, times: 1 });
    await expect(stripe.charges.retrieve('ch_1')).rejects.toMatchObject({ statusCode: 503, type: 'StripeAPIError' });
    await expect(stripe.charges.retrieve('ch_1')).resolves.toMatchObject({ id: 'ch_1' });
  });

  it('parses qs-style brackets', () => {
    expect(parseNested(new URLSearchParams('expand[0]=a&expand[1]=b.c&payment[type]=x&e[]=1&e[]=2&flag=true'))).toEqual({
      expand: ['a', 'b.c'],
      payment: { type: 'x' },
      e: ['1', '2'],
      flag: 'true',
    });
  });
});
