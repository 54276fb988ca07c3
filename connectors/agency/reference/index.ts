/**
 * The reference collection-protocol connector (contract §5): the object the hub registers for
 * `connector: reference` partners. Another agency is another folder like this one plus a file
 * in mappings/agency/.
 */
import type { AgencyConnector } from '../types';
import { createReferenceClient } from './client';
import { referencePartnerConfigSchema, type ReferencePartnerConfig } from './schema';

export const referenceAgencyConnector: AgencyConnector<ReferencePartnerConfig> = {
  id: 'reference',
  configSchema: referencePartnerConfigSchema,
  create(deps) {
    // A mapping written for another connector would map this agency's words wrongly.
    if (deps.mapping.partnerConnector !== 'reference') {
      throw new Error(`partner ${deps.partnerId}: mapping is for connector ${deps.mapping.partnerConnector}, expected reference`);
    }
    if (deps.config.id !== deps.partnerId) {
      throw new Error(`partner ${deps.partnerId}: config block has id ${deps.config.id}`);
    }
    return createReferenceClient(deps);
  },
};

export type { ReferencePartnerConfig } from './schema';
export { referencePartnerConfigSchema } from './schema';
export { UnmappedValueError, normalizeUpdate } from './normalize';
export { createPushVerifier, verifyPush } from './verify';
export { createReferenceClient, parseRetryAfter } from './client';
