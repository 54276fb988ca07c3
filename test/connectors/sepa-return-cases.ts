/**
 * What a SEPA direct debit returned after it was paid means, whichever PSP reports it (issue 12,
 * hole 8): the canonical kind and failure per ISO 20022 reason code, from mappings/psp/sepa.yaml
 * (`reason`, `retryable`, `onReturn`). test/connectors/adyen/sepa-return.test.ts and
 * test/connectors/mollie/sepa-return.test.ts hold each PSP to this one table.
 */
import type { FailureReason } from '../../src/domain/types';

export interface SepaReturnCase {
  code: string;
  kind: 'payment_failed' | 'chargeback';
  reason: FailureReason;
  retryable: boolean;
}

export const SEPA_RETURN_CASES: SepaReturnCase[] = [
  // The debt is still owed: a final failure the hub may hand over.
  { code: 'AM04', kind: 'payment_failed', reason: 'insufficient_funds', retryable: true },
  { code: 'MS03', kind: 'payment_failed', reason: 'unknown', retryable: true },
  { code: 'AC04', kind: 'payment_failed', reason: 'account_closed', retryable: false },
  { code: 'AC06', kind: 'payment_failed', reason: 'account_invalid', retryable: false },
  { code: 'MS02', kind: 'payment_failed', reason: 'debtor_refused', retryable: false },
  // Contested, or no debt at all: a dispute, never collected.
  { code: 'MD01', kind: 'chargeback', reason: 'mandate_invalid', retryable: false },
  { code: 'MD02', kind: 'chargeback', reason: 'mandate_invalid', retryable: false },
  { code: 'MD06', kind: 'chargeback', reason: 'disputed', retryable: false },
  { code: 'AM05', kind: 'chargeback', reason: 'technical', retryable: false },
];

/** The canonical result the table expects for one code. */
export const expectedReturn = (c: SepaReturnCase) => ({ kind: c.kind, failure: { code: c.code, reason: c.reason, retryable: c.retryable, final: true } });

/** The part of a canonical event the table speaks about (the PSP's free-text message aside). */
export const canonicalReturn = (ev: { kind: string; failure?: { code: string; reason: string; retryable: boolean; final: boolean } }) => ({
  kind: ev.kind,
  failure: ev.failure && { code: ev.failure.code, reason: ev.failure.reason, retryable: ev.failure.retryable, final: ev.failure.final },
});
