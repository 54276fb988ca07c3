/**
 * The hub's stage registry: which function works each outbox kind, and which kinds are worked in
 * batches. Given to the runner (createOutboxRunner) by the hub, so the runner imports no stage
 * and can be tested with stages of the test's own (issue 14, "the runner receives its stages").
 */
import type { HubContext } from '../context';
import type { OutboxKind, OutboxRow } from './outbox';
import type { BatchStage } from './batch';
import { processEvent } from '../pipeline/process-event';
import { runEventBatch } from '../pipeline/event-batch';
import { reEnrichEvent } from '../pipeline/re-enrich';
import { runHandoverCheck } from '../pipeline/handover-check';
import { applyPartnerUpdate } from '../sync/partner-updates';
import { runUpdateBatch } from '../sync/update-batch';
import { deliverAddClaim, deliverCreateCase, deliverReportPayment, deliverWithdraw } from '../delivery/agency-delivery';
import { deliverHold, deliverResume } from '../delivery/agency-actions';
import { deliverMerchantWebhook } from '../notify/merchant-webhook-stage';
import { writeBackToStripe } from '../notify/stripe-writeback-stage';

/** Works one claimed row of its kind; throws to fail it (Defer, Permanent, DeliveryError or any error: see the runner). */
export type Stage<K extends OutboxKind = OutboxKind> = (ctx: HubContext, row: OutboxRow<K>) => Promise<void>;

export interface StageRegistry {
  /** Every kind's one-row stage, typed by its kind's payload (src/outbox/payloads.ts). */
  stages: { [K in OutboxKind]: Stage<K> };
  /** Hub-lane kinds worked in batches instead (a message only wakes their loop). */
  batches: { [K in OutboxKind]?: BatchStage<K> };
}

export const HUB_STAGES: StageRegistry = {
  stages: {
    process_event: processEvent,
    handover_check: runHandoverCheck,
    apply_update: applyPartnerUpdate,
    'agency.create_case': deliverCreateCase,
    'agency.add_claim': deliverAddClaim,
    'agency.report_payment': deliverReportPayment,
    'agency.withdraw': deliverWithdraw,
    'agency.hold': deliverHold,
    'agency.resume': deliverResume,
    'merchant.webhook': deliverMerchantWebhook,
    'psp.writeback': writeBackToStripe,
    enrich_event: reEnrichEvent,
  },
  batches: { process_event: runEventBatch, apply_update: runUpdateBatch },
};
