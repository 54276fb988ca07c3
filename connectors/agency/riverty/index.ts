/**
 * The Riverty connector: a collection agency of another shape than the reference protocol,
 * modelled on Riverty Back in Flow's published API (collections.md §A): OAuth2 client-credentials
 * tokens, claims handed over asynchronously (`requestId` now, claim number later), amounts as
 * decimal strings, its own statuses and closing types (mappings/agency/riverty.yaml), and updates
 * only by pulling a transaction feed ordered by `sortNumber` — no push, so no `verifyPush` (the
 * hub answers 404 `push_not_supported` to a push for this partner).
 *
 * Documented by Riverty vs modelled here: see schema.ts's header. In short, the token endpoint,
 * `POST /v1/claims`, payments with `paymentNumber`, recalls, transaction types, closing types and
 * `sortNumber` follow the sources; the transaction's field names, the status words, decimal
 * strings, the request-status lookup, the claim view, adding invoices, hold/resume and the
 * `fromSortNumber` feed parameter (Riverty documents a `from`/`to` period) are modelled.
 */
import type { AgencyConnector } from '../types';
import { createRivertyClient } from './client';
import { rivertyPartnerConfigSchema, type RivertyPartnerConfig } from './schema';

export const rivertyAgencyConnector: AgencyConnector<RivertyPartnerConfig> = {
  id: 'riverty',
  configSchema: rivertyPartnerConfigSchema,
  create(deps) {
    if (deps.mapping.partnerConnector !== 'riverty') {
      throw new Error(`partner ${deps.partnerId}: mapping is for connector ${deps.mapping.partnerConnector}, expected riverty`);
    }
    if (deps.config.id !== deps.partnerId) {
      throw new Error(`partner ${deps.partnerId}: config block has id ${deps.config.id}`);
    }
    return createRivertyClient(deps);
  },
};

export type { RivertyPartnerConfig } from './schema';
export { rivertyPartnerConfigSchema, CLOSING_TYPES, TRANSACTION_TYPES } from './schema';
export { normalizeTransaction, UnmappedValueError } from './normalize';
export { createRivertyClient, parseCursor, type RivertyClient } from './client';
export { createTokenSource } from './token';
