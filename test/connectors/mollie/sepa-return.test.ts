/**
 * Mollie reports a returned SEPA direct debit as a chargeback on the paid payment (psp-webhooks.md
 * §2.2: the webhook is called "when a chargeback is received"; reversals such as MD06 "are
 * reported next working day", §2.5). Issue 12, hole 8: the canonical result per ISO reason code
 * is the one table Adyen is held to as well (test/connectors/sepa-return-cases.ts) — a return for
 * lack of funds is a failure to collect, a contested debit a dispute.
 */
import { normalizeMolliePayment } from '../../../connectors/psp/mollie/normalize';
import type { MollieProviderConfig } from '../../../connectors/psp/mollie/schema';
import type { NormalizeContext } from '../../../connectors/psp/types';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadPspMapping, MAPPINGS_DIR } from '../../../src/mappings/load';
import { mollieChargeback, molliePayments } from '../../../sim/psp/mollie-events';
import { canonicalReturn, expectedReturn, SEPA_RETURN_CASES } from '../sepa-return-cases';

const ctx: NormalizeContext<MollieProviderConfig> = { merchantId: 'acme', config: { apiKey: 'test_x' } as MollieProviderConfig, mapping: loadPspMapping('mollie') };

function chargedBack(chargeback: { reasonCode?: string }, paymentExtra: Record<string, unknown> = {}) {
  const payment = { ...molliePayments.sepaRecurring({ status: 'paid', customerId: 'cst_8wmqcHMN4U', value: '49.00' }), ...paymentExtra };
  const cb = mollieChargeback({ paymentId: payment.id, id: 'chb_n9z0tp', value: '49.00', createdAt: '2099-01-01T00:00:00+00:00', ...chargeback });
  const ev = normalizeMolliePayment({ providerEventId: `${payment.id}:1717492325000`, eventType: 'payment.webhook', payload: { id: payment.id } }, ctx, { payment, chargebacks: [cb] });
  return { payment, ev };
}

describe('Mollie: a chargeback of a SEPA debit, by reason code', () => {
  it.each(SEPA_RETURN_CASES.map((c) => [c.code, c.kind, c]))('%s → %s', (_code, _kind, c) => {
    const { payment, ev } = chargedBack({ reasonCode: c.code });
    expect(canonicalReturn(ev)).toEqual(expectedReturn(c));
    // Either way: the same invoice, the chargeback kept as the fact (applied once).
    expect(ev.invoice?.ref).toBe(payment.id);
    expect(ev.payment).toMatchObject({ ref: payment.id, method: 'sepa_debit' });
    expect(ev.factKey).toBe(`${payment.id}:chargeback:chb_n9z0tp`);
    expect(ev.detail).toMatchObject({ chargebackRef: 'chb_n9z0tp', chargebackReason: c.code });
  });

  it('the return code may come from the payment’s bankReasonCode when the chargeback carries no reason', () => {
    const { ev } = chargedBack({}, { details: { ...molliePayments.sepaRecurring({ status: 'failed' }).details, bankReasonCode: 'AM04' } });
    expect(ev).toMatchObject({ kind: 'payment_failed', failure: { code: 'AM04', reason: 'insufficient_funds', final: true } });
  });

  it('a chargeback without a SEPA code (a card dispute, or no reason given) stays a dispute', () => {
    const card = molliePayments.card({ status: 'paid', customerId: 'cst_1', value: '25.00' });
    const cb = mollieChargeback({ paymentId: card.id, value: '25.00', reasonCode: 'fraudulent' });
    const ev = normalizeMolliePayment({ providerEventId: `${card.id}:1717492325000`, eventType: 'payment.webhook', payload: { id: card.id } }, ctx, { payment: card, chargebacks: [cb] });
    expect({ kind: ev.kind, failure: ev.failure }).toEqual({ kind: 'chargeback', failure: { code: 'fraudulent', reason: 'disputed', message: 'fraudulent', retryable: false, final: true } });
    expect(chargedBack({}).ev).toMatchObject({ kind: 'chargeback', failure: { code: 'chargeback', reason: 'disputed' } });
  });
});

describe('mappings/psp/sepa.yaml', () => {
  it('a SEPA code without `onReturn` stops start-up, naming the code', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sepa-mapping-'));
    fs.mkdirSync(path.join(dir, 'psp'));
    fs.copyFileSync(path.join(MAPPINGS_DIR, 'psp', 'mollie.yaml'), path.join(dir, 'psp', 'mollie.yaml'));
    const sepa = fs.readFileSync(path.join(MAPPINGS_DIR, 'psp', 'sepa.yaml'), 'utf8');
    fs.writeFileSync(path.join(dir, 'psp', 'sepa.yaml'), sepa.replace(/(  AM04:\n(?:    .*\n)*?)    onReturn: collect\n/, '$1'));
    expect(() => loadPspMapping('mollie', dir)).toThrow(/sepa\.yaml: failureCodes\.AM04\.onReturn/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
