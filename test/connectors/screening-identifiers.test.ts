/**
 * What the PSP connectors read for screening (issue 17, requirement 3): the card fingerprint
 * (Stripe: the failed attempt's expanded PaymentMethod, or a charge's `payment_method_details.card`;
 * Mollie: `details.cardFingerprint`) and the IBAN (Mollie: `details.consumerAccount`, normalised,
 * and only when it is an IBAN — PayPal puts the payer's e-mail there). They land on
 * `PaymentEvent.payment` and are only ever stored hashed (src/screening/).
 */
import { stripeConnector } from '../../connectors/psp/stripe';
import { stripeProviderConfigSchema, type StripeProviderConfig } from '../../connectors/psp/stripe/schema';
import { normalizeMolliePayment } from '../../connectors/psp/mollie/normalize';
import { mollieProviderConfigSchema, type MollieProviderConfig } from '../../connectors/psp/mollie/schema';
import type { NormalizeContext, RawInboundEvent } from '../../connectors/psp/types';
import type { PaymentEvent } from '../../src/domain/types';
import { loadPspMapping } from '../../src/mappings/load';
import { stripeEvents } from '../../sim/psp/stripe-events';
import { mollieCustomer, molliePayments } from '../../sim/psp/mollie-events';
import { testSecret } from '../support/secrets';

type Json = Record<string, any>;

const stripeCtx: NormalizeContext<StripeProviderConfig> = {
  merchantId: 'acme',
  config: stripeProviderConfigSchema.parse({ webhookSecret: testSecret('stripeWebhook') }),
  mapping: loadPspMapping('stripe'),
};
const stripeNormalize = (event: Json): PaymentEvent =>
  stripeConnector.normalize({ providerEventId: event.id, eventType: event.type, payload: event }, stripeCtx) as PaymentEvent;

const mollieCtx: NormalizeContext<MollieProviderConfig> = {
  merchantId: 'acme',
  // The API key is never used here (normalizeMolliePayment takes the fetched payment); drawn like every test secret.
  config: mollieProviderConfigSchema.parse({ apiKey: `test_${testSecret('apiKey').replace(/[^A-Za-z0-9]/g, '')}` }),
  mapping: loadPspMapping('mollie'),
};
const mollieNormalize = (payment: Json): PaymentEvent => {
  const raw: RawInboundEvent = { providerEventId: `${payment.id}:1`, eventType: 'payment', payload: { id: payment.id } };
  return normalizeMolliePayment(raw, mollieCtx, { payment, customer: mollieCustomer({ id: payment.customerId }) });
};

const CREATED = 1750000000;

describe('Stripe: the card fingerprint', () => {
  it("of an invoice's failed attempt, from its expanded PaymentMethod", () => {
    const ev = stripeNormalize(stripeEvents.paymentFailed({ invoice: 'in_fp1', customer: 'cus_fp1', amount: 1000, created: CREATED, failureCode: 'insufficient_funds', cardFingerprint: 'Xt5EWLLDS7FJjR1c' }));
    expect(ev.payment).toMatchObject({ method: 'card', cardFingerprint: 'Xt5EWLLDS7FJjR1c' });
  });

  it("of a failed charge, from its payment_method_details.card; none where Stripe gives none", () => {
    const event = stripeEvents.chargeFailed({ paymentIntent: 'pi_fp2', customer: 'cus_fp2', amount: 1000, created: CREATED, failureCode: 'insufficient_funds', invoice: null }) as Json;
    event.data.object.payment_method_details = { type: 'card', card: { brand: 'visa', last4: '4242', fingerprint: 'Qw3RTy7UIop9AsDf' } };
    expect(stripeNormalize(event).payment).toMatchObject({ cardFingerprint: 'Qw3RTy7UIop9AsDf' });
    const plain = stripeNormalize(stripeEvents.paymentFailed({ invoice: 'in_fp3', customer: 'cus_fp3', amount: 1000, created: CREATED, failureCode: 'insufficient_funds' }));
    expect(plain.payment).not.toHaveProperty('cardFingerprint');
    expect(plain.payment).not.toHaveProperty('iban');
  });
});

describe('Mollie: the IBAN and the card fingerprint', () => {
  it("a SEPA debit's consumerAccount, without spaces and upper-cased", () => {
    const p = molliePayments.sepaRecurring({ status: 'paid', value: '10.00' }) as Json;
    p.details.consumerAccount = 'nl91 abna 0417 1643 00';
    expect(mollieNormalize(p).payment).toMatchObject({ method: 'sepa_debit', iban: 'NL91ABNA0417164300' });
  });

  it('a consumerAccount that is not an IBAN (PayPal: the payer e-mail) is not taken', () => {
    const p = molliePayments.sepaRecurring({ status: 'paid', value: '10.00' }) as Json;
    p.method = 'paypal';
    p.details = { consumerName: 'Jan Jansen', consumerAccount: 'jan@example.nl' };
    expect(mollieNormalize(p).payment).not.toHaveProperty('iban');
  });

  it("a card payment's cardFingerprint", () => {
    const p = molliePayments.card({ status: 'paid', value: '10.00', customerId: 'cst_fp4' }) as Json;
    p.details.cardFingerprint = 'Mk9aVb7LhP2q';
    expect(mollieNormalize(p).payment).toMatchObject({ method: 'card', cardFingerprint: 'Mk9aVb7LhP2q' });
  });
});
