/**
 * Shapes of the files in mappings/ (data, not code — design.md habit 5). Validated at boot by
 * ./load.ts against the canonical enums in src/domain/types.ts.
 */
import type { FailureReason, PaymentEventKind, AgencyStatus, ResolutionReason } from '../domain/types';

export interface FailureCodeRule {
  reason: FailureReason;
  /** Whether another attempt on the same payment method could succeed. */
  retryable: boolean;
  /** Where the rule comes from (a URL or a reference file section). */
  source?: string;
  /**
   * SEPA codes (mappings/psp/sepa.yaml): a debit returned with this code after it was paid is a
   * failure to `collect`, or a `dispute` — connectors/psp/sepa-return.ts.
   */
  onReturn?: 'collect' | 'dispute';
}

export interface PspMapping {
  provider: string;
  /** PSP event type → canonical kind; a type not listed is stored and marked `ignored`. */
  events: Record<string, PaymentEventKind>;
  /** Raw failure code → canonical reason; includes the shared SEPA R-codes (mappings/psp/sepa.yaml). */
  failureCodes: Record<string, FailureCodeRule>;
}

export interface AgencyMapping {
  partnerConnector: string;
  /** The agency's status vocabulary → canonical status. */
  statuses: Record<string, AgencyStatus>;
  /** The agency's close/resolution reasons → canonical resolution reason. */
  reasons: Record<string, ResolutionReason>;
}
