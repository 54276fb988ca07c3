/**
 * Adyen normalization, specified on the documented example of shared/reference/psp-webhooks.md §3.5
 * (a refused recurring card authorisation) and variants: a refused SEPA recurring authorisation, the
 * refusal reasons of §3.4, a chargeback, a successful authorisation (recovery), refunds, money with
 * Adyen's own currency exponents. Every canonical field is asserted. Pure: no HTTP.
 */
import { adyenConnector } from '../../../connectors/psp/adyen';
import { AdyenPayloadError, adyenAmountToMoney } from '../../../connectors/psp/adyen/normalize';
import { adyenProviderConfigSchema, type AdyenProviderConfig } from '../../../connectors/psp/adyen/schema';
import type { NormalizeContext, RawInboundEvent } from '../../../connectors/psp/types';
import type { PaymentEvent } from '../../../src/domain/types';
import { loadPspMapping } from '../../../src/mappings/load';
import { Permanent } from '../../../src/pipeline/errors';
import { adyenItems, type AdyenItem } from '../../../sim/psp/adyen-events';

const ctx: NormalizeContext<AdyenProviderConfig> = {
  merchantId: 'acme',
  config: adyenProviderConfigSchema.parse({ hmacKeys: 'DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00', basicAuth: { username: 'adyen', password: 'pw' } }),
  mapping: loadPspMapping('adyen'),
};

/** The §3.5 example, verbatim but for the signature placeholder (not read by the normalizer). */
const EXAMPLE: AdyenItem = {
  additionalData: {
    hmacSignature: '<base64 HMAC over pspReference::merchantAccountCode:merchantReference:4900:EUR:AUTHORISATION:false>',
    recurringProcessingModel: 'Subscription',
    shopperReference: 'cust-8812',
    paymentMethodVariant: 'visa',
  },
  amount: { currency: 'EUR', value: 4900 },
  eventCode: 'AUTHORISATION',
  eventDate: '2024-06-03T09:12:00+02:00',
  merchantAccountCode: 'AcmeECOM',
  merchantReference: 'ACME-0042',
  paymentMethod: 'visa',
  pspReference: 'QFQTPCQ8HXSKGK82',
  reason: 'Not enough balance',
  success: 'false',
};

const example = (patch: Partial<AdyenItem> = {}, data: Record<string, string | undefined> = {}): AdyenItem => {
  const additionalData = Object.fromEntries(Object.entries({ ...EXAMPLE.additionalData, ...data }).filter(([, v]) => v !== undefined)) as Record<string, string>;
  return { ...EXAMPLE, ...patch, additionalData };
};

function normalize(item: AdyenItem, live: 'true' | 'false' = 'false'): PaymentEvent {
  const raw: RawInboundEvent = {
    providerEventId: `${item.pspReference}:${item.eventCode}:${item.success}`,
    eventType: item.eventCode,
    occurredAt: new Date(item.eventDate).toISOString(),
    payload: { live, NotificationRequestItem: item },
  };
  return adyenConnector.normalize(raw, ctx) as PaymentEvent;
}

describe('a refused recurring card authorisation (the §3.5 example)', () => {
  it('is a final payment_failed for invoice ACME-0042 of customer cust-8812, insufficient funds', () => {
    expect(normalize(EXAMPLE)).toEqual({
      merchantId: 'acme',
      provider: 'adyen',
      providerEventId: 'QFQTPCQ8HXSKGK82:AUTHORISATION:false',
      providerEventType: 'AUTHORISATION',
      kind: 'payment_failed',
      occurredAt: '2024-06-03T07:12:00.000Z',
      customer: { ref: 'cust-8812', type: 'consumer', merchantRef: 'cust-8812' },
      invoice: { ref: 'ACME-0042', amountDue: { value: 4900, currency: 'EUR' } },
      payment: { ref: 'QFQTPCQ8HXSKGK82', method: 'card' },
      failure: { code: 'Not enough balance', reason: 'insufficient_funds', retryable: true, final: true },
      detail: {
        success: false,
        live: false,
        merchantAccount: 'AcmeECOM',
        pspReference: 'QFQTPCQ8HXSKGK82',
        paymentMethod: 'visa',
        reason: 'Not enough balance',
        recurringProcessingModel: 'Subscription',
        customerRefSource: 'shopperReference',
      },
    });
  });

  it('keeps the raw acquirer answer as the message when the webhook sends it', () => {
    const ev = normalize(example({}, { refusalReasonRaw: '51 : Insufficient funds' }));
    expect(ev.failure).toEqual({ code: 'Not enough balance', reason: 'insufficient_funds', message: '51 : Insufficient funds', retryable: true, final: true });
  });

  it('without shopperReference, stands in a customer derived from the merchantReference', () => {
    const ev = normalize(example({}, { shopperReference: undefined }));
    expect(ev.customer).toEqual({ ref: 'order:ACME-0042', type: 'consumer' });
    expect(ev.detail?.customerRefSource).toBe('merchantReference');
    // The same order always gets the same stand-in.
    expect(normalize(example({ pspReference: 'KHQC5N7G84BLNK43' }, { shopperReference: undefined })).customer?.ref).toBe('order:ACME-0042');
  });

  it('reads the shopper e-mail when the webhook includes it', () => {
    expect(normalize(example({}, { shopperEmail: 'jan@example.nl' })).customer).toEqual({ ref: 'cust-8812', email: 'jan@example.nl', type: 'consumer', merchantRef: 'cust-8812' });
  });

  it("takes the merchant's customer id from additionalData `metadata.customer_id` before the shopperReference (issue 12, hole 3)", () => {
    expect(normalize(example({}, { 'metadata.customer_id': 'CRM-42' })).customer).toMatchObject({ ref: 'cust-8812', merchantRef: 'CRM-42' });
  });

  it('marks a live notification as live', () => {
    expect(normalize(EXAMPLE, 'true').detail?.live).toBe(true);
  });
});

describe('refusal reasons (psp-webhooks.md §3.4) through mappings/psp/adyen.yaml', () => {
  it.each([
    ['Refused', 'Refused', 'card_declined', true],
    ['Referral', 'Referral', 'card_declined', true],
    ['Acquirer Error', 'Acquirer Error', 'technical', true],
    ['Blocked Card', 'Blocked Card', 'card_declined', false],
    ['Expired Card', 'Expired Card', 'card_expired', false],
    ['Invalid Card Number', 'Invalid Card Number', 'card_declined', false],
    ['Issuer Unavailable', 'Issuer Unavailable', 'technical', true],
    ['3D Not Authenticated', '3D Not Authenticated', 'authentication_required', false],
    ['Not enough balance', 'Not enough balance', 'insufficient_funds', true],
    ['FRAUD', 'FRAUD', 'fraud_suspected', false],
    ['FRAUD-CANCELLED', 'FRAUD-CANCELLED', 'fraud_suspected', false],
    ['CVC Declined', 'CVC Declined', 'card_declined', false],
    ['Revocation Of Auth', 'Revocation Of Auth', 'debtor_refused', false],
    ['Withdrawal amount exceeded', 'Withdrawal amount exceeded', 'card_declined', true],
    ['Issuer Suspected Fraud', 'Issuer Suspected Fraud', 'fraud_suspected', false],
    ['Authentication required', 'Authentication required', 'authentication_required', false],
    ['Shopper Cancelled', 'Shopper Cancelled', 'expired_or_canceled', false],
    // Another spelling of a known text is the mapping's code; the text sent is kept as the message.
    ['not enough BALANCE', 'Not enough balance', 'insufficient_funds', true],
    // Unknown text: kept raw, reason unknown, not retryable (design.md habit 5).
    ['Card melted', 'Card melted', 'unknown', false],
  ])('%s → code %s, %s, retryable %s, final', (text, code, reason, retryable) => {
    const ev = normalize(example({ reason: text }));
    expect(ev.kind).toBe('payment_failed');
    expect(ev.failure).toMatchObject({ code, reason, retryable, final: true });
    if (text !== code) expect(ev.failure?.message).toBe(text);
  });

  it('an empty reason is code unknown', () => {
    expect(normalize(example({ reason: '' })).failure).toEqual({ code: 'unknown', reason: 'unknown', retryable: false, final: true });
  });
});

describe('a refused SEPA recurring authorisation', () => {
  const sepa = (sepaCode: string, reason = 'Refused') =>
    adyenItems.refusedSepa({
      merchantReference: 'ACME-0077',
      pspReference: 'M7SV2B3C9QKL8T11',
      amount: 2995,
      shopperReference: 'cust-9001',
      eventDate: '2024-07-01T06:30:00+02:00',
      sepaCode,
      reason,
    });

  it('takes the SEPA reason code from additionalData and maps it through sepa.yaml', () => {
    expect(normalize(sepa('AM04'))).toEqual({
      merchantId: 'acme',
      provider: 'adyen',
      providerEventId: 'M7SV2B3C9QKL8T11:AUTHORISATION:false',
      providerEventType: 'AUTHORISATION',
      kind: 'payment_failed',
      occurredAt: '2024-07-01T04:30:00.000Z',
      customer: { ref: 'cust-9001', type: 'consumer', merchantRef: 'cust-9001' },
      invoice: { ref: 'ACME-0077', amountDue: { value: 2995, currency: 'EUR' } },
      payment: { ref: 'M7SV2B3C9QKL8T11', method: 'sepa_debit' },
      failure: { code: 'AM04', reason: 'insufficient_funds', message: 'Refused — AM04 : Insufficient funds', retryable: true, final: true },
      detail: {
        success: false,
        live: false,
        merchantAccount: 'AcmeECOM',
        pspReference: 'M7SV2B3C9QKL8T11',
        paymentMethod: 'sepadirectdebit',
        reason: 'Refused',
        recurringProcessingModel: 'Subscription',
        customerRefSource: 'shopperReference',
      },
    });
  });

  it.each([
    ['AC04', 'account_closed', false],
    ['MD01', 'mandate_invalid', false],
    ['MS03', 'unknown', true],
    ['MD07', 'unknown', false],
  ])('%s → %s (retryable %s)', (code, reason, retryable) => {
    expect(normalize(sepa(code)).failure).toMatchObject({ code, reason, retryable, final: true });
  });

  it('a code sepa.yaml does not know is not taken for one: the refusal text is the code', () => {
    expect(normalize(sepa('ZZ99')).failure).toMatchObject({ code: 'Refused', reason: 'card_declined' });
  });
});

describe('a chargeback', () => {
  const chargeback = (patch: { chargebackReasonCode?: string; shopperReference?: string; paymentMethod?: string; eventCode?: 'CHARGEBACK' | 'NOTIFICATION_OF_CHARGEBACK' } = {}) => {
    const facts = {
      merchantReference: 'ACME-0031',
      pspReference: 'DSP4K2L9QW1ZX7C3',
      originalReference: 'PAY8H2J4K6L8N0P2',
      amount: 1999,
      shopperReference: 'shopperReference' in patch ? patch.shopperReference : 'cust-7001',
      paymentMethod: patch.paymentMethod ?? 'mc',
      eventDate: '2024-08-12T14:00:00+02:00',
      chargebackReasonCode: patch.chargebackReasonCode,
      reason: 'Fraudulent',
    };
    return patch.eventCode === 'NOTIFICATION_OF_CHARGEBACK' ? adyenItems.notificationOfChargeback(facts) : adyenItems.chargeback(facts);
  };

  it('is a chargeback on the disputed payment, found by merchantReference or originalReference', () => {
    expect(normalize(chargeback())).toEqual({
      merchantId: 'acme',
      provider: 'adyen',
      providerEventId: 'DSP4K2L9QW1ZX7C3:CHARGEBACK:true',
      providerEventType: 'CHARGEBACK',
      kind: 'chargeback',
      occurredAt: '2024-08-12T12:00:00.000Z',
      customer: { ref: 'cust-7001', type: 'consumer', merchantRef: 'cust-7001' },
      invoice: { ref: 'ACME-0031', amountDue: { value: 1999, currency: 'EUR' } },
      payment: { ref: 'PAY8H2J4K6L8N0P2', method: 'card', relatedRefs: ['DSP4K2L9QW1ZX7C3'] },
      failure: { code: '10.4', reason: 'disputed', message: 'Fraudulent', retryable: false, final: true },
      detail: {
        success: true,
        live: false,
        merchantAccount: 'AcmeECOM',
        pspReference: 'DSP4K2L9QW1ZX7C3',
        originalReference: 'PAY8H2J4K6L8N0P2',
        paymentMethod: 'mc',
        reason: 'Fraudulent',
        disputeRef: 'DSP4K2L9QW1ZX7C3',
        amount: { value: 1999, currency: 'EUR' },
        chargebackReasonCode: '10.4',
        chargebackSchemeCode: 'mc',
        disputeStatus: 'Undefended',
        defendable: 'false',
      },
    });
  });

  it('a NOTIFICATION_OF_CHARGEBACK is a chargeback too, with its own event id', () => {
    const ev = normalize(chargeback({ eventCode: 'NOTIFICATION_OF_CHARGEBACK' }));
    expect(ev).toMatchObject({ kind: 'chargeback', providerEventId: 'DSP4K2L9QW1ZX7C3:NOTIFICATION_OF_CHARGEBACK:true', failure: { reason: 'disputed' } });
  });

  it('a SEPA return for lack of funds reported as a chargeback is a final payment failure: the debt is still owed', () => {
    const ev = normalize(chargeback({ chargebackReasonCode: 'AM04', paymentMethod: 'sepadirectdebit' }));
    expect(ev.kind).toBe('payment_failed');
    expect(ev.payment?.method).toBe('sepa_debit');
    expect(ev.invoice?.ref).toBe('ACME-0031');
    expect(ev.customer?.ref).toBeDefined();
    expect(ev.failure).toEqual({ code: 'AM04', reason: 'insufficient_funds', message: 'Fraudulent', retryable: true, final: true });
    expect(ev.detail).toMatchObject({ sepaReturn: true });
  });

  it('a contested SEPA debit (MD06 refund request) stays a chargeback: not for collection', () => {
    const ev = normalize(chargeback({ chargebackReasonCode: 'MD06', paymentMethod: 'sepadirectdebit' }));
    expect(ev.kind).toBe('chargeback');
    expect(ev.failure).toMatchObject({ code: 'MD06', reason: 'disputed', final: true });
  });

  it('without shopperReference it invents no customer (the invoice names one)', () => {
    const ev = normalize(chargeback({ shopperReference: undefined }));
    expect(ev.customer).toBeUndefined();
    expect(ev.invoice?.ref).toBe('ACME-0031');
  });
});

describe('a successful authorisation (recovery by the merchant`s retry)', () => {
  it('is payment_succeeded for the same invoice, with the amount paid', () => {
    const item = adyenItems.authorised({
      merchantReference: 'ACME-0042',
      pspReference: 'RTRY5X8Q2M4N6B7V',
      amount: 4900,
      shopperReference: 'cust-8812',
      eventDate: '2024-06-06T10:00:00+02:00',
    });
    expect(normalize(item)).toEqual({
      merchantId: 'acme',
      provider: 'adyen',
      providerEventId: 'RTRY5X8Q2M4N6B7V:AUTHORISATION:true',
      providerEventType: 'AUTHORISATION',
      kind: 'payment_succeeded',
      occurredAt: '2024-06-06T08:00:00.000Z',
      customer: { ref: 'cust-8812', type: 'consumer', merchantRef: 'cust-8812' },
      invoice: { ref: 'ACME-0042', amountDue: { value: 4900, currency: 'EUR' } },
      payment: { ref: 'RTRY5X8Q2M4N6B7V', method: 'card', amount: { value: 4900, currency: 'EUR' } },
      detail: {
        success: true,
        live: false,
        merchantAccount: 'AcmeECOM',
        pspReference: 'RTRY5X8Q2M4N6B7V',
        paymentMethod: 'visa',
        recurringProcessingModel: 'Subscription',
        customerRefSource: 'shopperReference',
      },
    });
  });
});

describe('refunds and everything else', () => {
  const facts = { merchantReference: 'ACME-0042', pspReference: 'RFND9Z8Y7X6W5V4U', originalReference: 'QFQTPCQ8HXSKGK82', amount: 4900, shopperReference: 'cust-8812', eventDate: '2024-06-10T09:00:00+02:00' };

  it('a successful REFUND is a refund of the original payment', () => {
    const ev = normalize(adyenItems.refund(facts));
    expect(ev).toMatchObject({
      kind: 'refund',
      providerEventId: 'RFND9Z8Y7X6W5V4U:REFUND:true',
      invoice: { ref: 'ACME-0042', amountDue: { value: 4900, currency: 'EUR' } },
      payment: { ref: 'QFQTPCQ8HXSKGK82', relatedRefs: ['RFND9Z8Y7X6W5V4U'], amount: { value: 4900, currency: 'EUR' } },
      detail: { refundRef: 'RFND9Z8Y7X6W5V4U' },
    });
    expect(ev.failure).toBeUndefined();
  });

  it.each([
    ['a failed REFUND', adyenItems.refund({ ...facts, success: false })],
    ['a CAPTURE', adyenItems.other('CAPTURE', facts)],
    ['a REPORT_AVAILABLE', adyenItems.other('REPORT_AVAILABLE', facts)],
    ['an event code Adyen adds tomorrow', adyenItems.other('SOMETHING_NEW', facts)],
    ['an event code named like an Object.prototype member', adyenItems.other('constructor', facts)],
  ])('%s is ignored, kept with its refs and no failure', (_name, item) => {
    const ev = normalize(item);
    expect(ev.kind).toBe('ignored');
    expect(ev.failure).toBeUndefined();
    expect(ev.invoice).toBeUndefined();
    expect(ev.payment?.ref).toBe('RFND9Z8Y7X6W5V4U');
    expect(ev.detail?.merchantReference).toBe('ACME-0042');
  });
});

describe('payment methods', () => {
  it.each([
    ['visa', 'card'],
    ['mc', 'card'],
    ['amex', 'card'],
    ['scheme', 'card'],
    ['cartebancaire', 'card'],
    ['sepadirectdebit', 'sepa_debit'],
    ['ideal', 'ideal'],
    ['bcmc', 'bancontact'],
    ['paypal', 'paypal'],
    ['klarna', 'other'],
    ['toString', 'other'],
  ])('%s → %s', (paymentMethod, method) => {
    expect(normalize(example({ paymentMethod })).payment?.method).toBe(method);
  });

  it('no paymentMethod → other', () => {
    expect(normalize(example({ paymentMethod: undefined })).payment?.method).toBe('other');
  });
});

describe('money (contract §2): Adyen minor units to the hub`s, exactly', () => {
  it.each([
    [4900, 'EUR', 4900, 'EUR'],
    [4900, 'eur', 4900, 'EUR'],
    [1000, 'JPY', 1000, 'JPY'],
    [12345, 'KWD', 12345, 'KWD'],
    // Adyen's table differs from ISO 4217 for these four (docs.adyen.com/development-resources/currency-codes).
    [279000, 'ISK', 2790, 'ISK'],
    [150000, 'CLP', 1500, 'CLP'],
    [15000, 'IDR', 1500000, 'IDR'],
    [2500, 'CVE', 250000, 'CVE'],
  ])('%d %s → %d %s', (value, currency, expected, code) => {
    expect(adyenAmountToMoney(value, currency)).toEqual({ value: expected, currency: code });
  });

  it('refuses to round a fraction the currency cannot hold', () => {
    expect(() => adyenAmountToMoney(279050, 'ISK')).toThrow(AdyenPayloadError);
  });

  it('normalizes an ISK refusal to ISO minor units', () => {
    expect(normalize(example({ amount: { currency: 'ISK', value: 279000 } })).invoice?.amountDue).toEqual({ value: 2790, currency: 'ISK' });
  });
});

describe('payloads the normalizer cannot read', () => {
  it.each([
    ['an item without pspReference', { live: 'false', NotificationRequestItem: { ...EXAMPLE, pspReference: undefined } }],
    ['an amount that is not an integer', { live: 'false', NotificationRequestItem: { ...EXAMPLE, amount: { currency: 'EUR', value: 49.5 } } }],
    ['an eventDate that is not a date', { live: 'false', NotificationRequestItem: { ...EXAMPLE, eventDate: 'yesterday' } }],
    ['not an item at all', { id: 'evt_1' }],
  ])('%s is a Permanent AdyenPayloadError (dead-lettered, raw event kept)', (_name, payload) => {
    const raw: RawInboundEvent = { providerEventId: 'x:AUTHORISATION:false', eventType: 'AUTHORISATION', payload };
    let caught: unknown;
    try {
      adyenConnector.normalize(raw, ctx);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(AdyenPayloadError);
    expect(caught).toBeInstanceOf(Permanent);
  });
});
