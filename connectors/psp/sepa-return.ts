/**
 * A returned SEPA direct debit reported as a chargeback: a dispute, or a failure to collect?
 * (issue 12, hole 8). Shared by every PSP connector that reports SEPA returns as chargebacks —
 * Adyen (CHARGEBACK with `chargebackReasonCode`) and Mollie (a chargeback on the paid payment) —
 * so the same ISO 20022 reason code gives the same canonical event whichever PSP reports it.
 *
 * The decision is data: `onReturn` of the code's row in mappings/psp/sepa.yaml. `collect` (AM04
 * insufficient funds, AC04 closed account, …): the debt is still owed, so a final
 * `payment_failed` the hub may hand over. `dispute` (MD01 unauthorised, MD06 refund request, …):
 * the debtor contests the debit, so a `chargeback` — not collectible, withdrawn from an open case.
 * A code that is not a SEPA code (a card scheme's 10.4, Mollie's `fraudulent`) is not decided here.
 */
import type { FailureInfo, PaymentEventKind } from '../../src/domain/types';
import { mapFailureCode } from '../../src/mappings/load';
import type { PspMapping } from '../../src/mappings/types';

export interface SepaReturn {
  kind: Extract<PaymentEventKind, 'payment_failed' | 'chargeback'>;
  failure: FailureInfo;
}

const ISO_REASON_CODE = /^([A-Z]{2}\d{2})(?![A-Za-z0-9])/;

/** The SEPA reason code at the start of `value`, when the mapping knows it as one (it has `onReturn`). */
export function sepaReturnCode(mapping: PspMapping, value: string | null | undefined): string | undefined {
  const m = value ? ISO_REASON_CODE.exec(value.trim()) : null;
  return m && Object.hasOwn(mapping.failureCodes, m[1]) && mapping.failureCodes[m[1]].onReturn ? m[1] : undefined;
}

/** The canonical kind and failure of a debit returned with `code`; undefined when it is no SEPA code. */
export function sepaReturnOf(mapping: PspMapping, code: string | null | undefined, message?: string): SepaReturn | undefined {
  const sepa = sepaReturnCode(mapping, code);
  if (!sepa) return undefined;
  const rule = mapFailureCode(mapping, sepa);
  const collect = rule.onReturn === 'collect';
  const failure: FailureInfo = { code: sepa, reason: rule.reason, retryable: collect ? rule.retryable : false, final: true };
  if (message && message !== sepa) failure.message = message;
  return { kind: collect ? 'payment_failed' : 'chargeback', failure };
}
