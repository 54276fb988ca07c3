/**
 * Adyen reports a returned SEPA direct debit as a CHARGEBACK with the ISO reason code in
 * `additionalData.chargebackReasonCode` (psp-webhooks.md §3.1). Issue 12, hole 8: the canonical
 * result per code is the one table Mollie is held to as well (test/connectors/sepa-return-cases.ts).
 */
import { normalizeAdyenItem } from '../../../connectors/psp/adyen/normalize';
import type { AdyenProviderConfig } from '../../../connectors/psp/adyen/schema';
import type { NormalizeContext } from '../../../connectors/psp/types';
import { loadPspMapping } from '../../../src/mappings/load';
import { adyenItems } from '../../../sim/psp/adyen-events';
import { canonicalReturn, expectedReturn, SEPA_RETURN_CASES } from '../sepa-return-cases';

const ctx: NormalizeContext<AdyenProviderConfig> = { merchantId: 'acme', config: {} as AdyenProviderConfig, mapping: loadPspMapping('adyen') };

function sepaChargeback(code: string) {
  const item = adyenItems.chargeback({
    merchantReference: 'ACME-0031',
    pspReference: 'DSP4K2L9QW1ZX7C3',
    originalReference: 'PAY8H2J4K6L8N0P2',
    amount: 4900,
    shopperReference: 'cust-7001',
    paymentMethod: 'sepadirectdebit',
    eventDate: '2024-08-12T14:00:00+02:00',
    chargebackReasonCode: code,
    reason: code,
  });
  return normalizeAdyenItem({ providerEventId: `${item.pspReference}:CHARGEBACK:true`, eventType: 'CHARGEBACK', payload: { live: 'false', NotificationRequestItem: item } }, ctx);
}

describe('Adyen: a SEPA return reported as a chargeback, by reason code', () => {
  it.each(SEPA_RETURN_CASES.map((c) => [c.code, c.kind, c]))('%s → %s', (_code, _kind, c) => {
    const ev = sepaChargeback(c.code);
    expect(canonicalReturn(ev)).toEqual(expectedReturn(c));
    // Either way the event is about the returned payment of the merchant's invoice.
    expect(ev.payment).toMatchObject({ ref: 'PAY8H2J4K6L8N0P2', method: 'sepa_debit' });
    expect(ev.invoice?.ref).toBe('ACME-0031');
  });

  it('a card scheme code stays a dispute', () => {
    const item = adyenItems.chargeback({ merchantReference: 'ACME-0031', pspReference: 'DSP1', originalReference: 'PAY1', amount: 1999, paymentMethod: 'mc', eventDate: '2024-08-12T14:00:00+02:00', chargebackReasonCode: '10.4', reason: 'Fraudulent' });
    const ev = normalizeAdyenItem({ providerEventId: 'DSP1:CHARGEBACK:true', eventType: 'CHARGEBACK', payload: { live: 'false', NotificationRequestItem: item } }, ctx);
    expect({ kind: ev.kind, failure: ev.failure }).toEqual({ kind: 'chargeback', failure: { code: '10.4', reason: 'disputed', message: 'Fraudulent', retryable: false, final: true } });
  });
});
