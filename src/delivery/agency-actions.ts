/**
 * The merchant's hold and resume requests as agency calls (`agency.hold`, `agency.resume` outbox
 * rows, written by src/http/merchant-actions.ts), made like every other agency call
 * (agency-delivery.ts): after the case and the claim are at the agency, with the row's
 * idempotency key, through the partner's circuit breaker, logged in the sync log, and committed
 * with the row's completion. An agency whose connector cannot hold or resume dead-letters the row
 * with that reason (the merchant sees it in /v1/deliveries) rather than pretending.
 */
import type { HubContext } from '../context';
import type { OutboxRow } from '../outbox/outbox';
import type { AgencyClient, CallContext } from '../../connectors/agency/types';
import { addHistory } from '../ledger/history';
import { Permanent } from '../pipeline/errors';
import { callPartner, caseAtAgency, ensureClaimSent, loadClaim } from './agency-delivery';
import { scrubFreeText } from '../privacy/minimise';

/** What a hold or resume asks the agency (the same shape as a withdrawal). */
export interface CaseAction {
  reason: string;
  claimReference?: string;
}

/** The optional connector methods (connectors/agency/types.ts): put a case, or one claim of it, on hold, and take it off again. */
type Holding = AgencyClient & {
  hold?: (casePartnerRef: string, h: CaseAction, ctx: CallContext) => Promise<unknown>;
  resume?: (casePartnerRef: string, h: CaseAction, ctx: CallContext) => Promise<unknown>;
};

async function deliverCaseAction(ctx: HubContext, row: OutboxRow<'agency.hold' | 'agency.resume'>, method: 'hold' | 'resume'): Promise<void> {
  const { partner, partnerRef, kase } = await caseAtAgency(ctx, row.payload.caseId);
  const claimId: string | undefined = row.payload.claimId ?? undefined;
  if (claimId) await ensureClaimSent(ctx, await loadClaim(ctx, claimId));
  const client = partner.client as Holding;
  const fn = client[method];
  if (typeof fn !== 'function') {
    throw new Permanent(`partner ${partner.settings.id} (connector ${partner.settings.connector}) cannot ${method} a case; tell the agency yourself`);
  }
  // The merchant's own words, scrubbed of card numbers and IBANs before they leave (src/privacy/minimise.ts).
  const reason = scrubFreeText(String(row.payload.reason ?? ''));
  await callPartner(
    ctx, row, partner.settings.id,
    (onExchange) => fn.call(client, partnerRef, { reason, ...(claimId ? { claimReference: claimId } : {}) }, { idempotencyKey: row.idempotency_key, onExchange }),
    async (sql, _res, now) => {
      await addHistory(
        sql,
        { merchantId: kase.merchant_id, entity: claimId ? 'claim' : 'case', entityId: claimId ?? kase.id, status: `${method}_sent`, reason, source: 'hub', occurredAt: now, detail: { partner: partner.settings.id } },
        now,
      );
    },
  );
  ctx.logger.info(`${method} sent to the agency`, { merchantId: kase.merchant_id, caseId: kase.id, claimId, partner: partner.settings.id });
}

/** `agency.hold`: ask the agency to pause collecting the claim (or case). */
export const deliverHold = (ctx: HubContext, row: OutboxRow<'agency.hold'>) => deliverCaseAction(ctx, row, 'hold');

/** `agency.resume`: ask the agency to carry on collecting after a hold. */
export const deliverResume = (ctx: HubContext, row: OutboxRow<'agency.resume'>) => deliverCaseAction(ctx, row, 'resume');
