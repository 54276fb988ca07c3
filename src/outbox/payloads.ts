/**
 * What each outbox kind carries (issue 14: typed payloads per kind, a discriminated union). A row
 * is written by the stage that owes the work and read by the stage that does it; both are checked
 * against this one table, so a producer and its stage cannot drift apart. Rows hold ids, not state:
 * a stage loads what it needs when it runs.
 */
import type { Money } from '../domain/types';
import type { MerchantEvent } from '../notify/events';

export interface OutboxPayloads {
  /** A stored PSP webhook to normalize and apply (src/pipeline/process-event.ts). */
  process_event: { inboundEventId: number };
  /** The customer whose failed invoices may be due for hand-over (src/pipeline/handover-check.ts). */
  handover_check: { customerId: string };
  /** A stored agency update to apply (src/sync/partner-updates.ts). */
  apply_update: { partnerUpdateId: number };
  'agency.create_case': { caseId: string; claimIds: string[] };
  'agency.add_claim': { caseId: string; claimId: string };
  /** Paid through the PSP while the agency collects: what to tell it (src/ledger/payment-decision.ts). */
  'agency.report_payment': { caseId: string; claimId: string; amount: Money; paidAt: string; channel: string };
  'agency.withdraw': { caseId: string; claimId?: string; reason: string };
  'agency.hold': { caseId: string; claimId?: string; reason: string };
  'agency.resume': { caseId: string; claimId?: string; reason: string };
  /** The event to post (built when the history row was read), with what caused it. */
  'merchant.webhook': { event: MerchantEvent; historyId?: number; debtorId?: string };
  'psp.writeback':
    | { action: 'pay' | 'mark_uncollectible'; historyId: number; invoiceId: string; provider: string; ref: string }
    | { action: 'customer_flags'; provider: string; ref: string; customerId: string; debtorId: string; flags: string[] };
  /** A failure that went on without its enrichment lookup (src/pipeline/re-enrich.ts). */
  enrich_event: { inboundEventId: number; wentOnWith: string | null };
}
