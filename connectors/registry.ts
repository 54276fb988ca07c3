/**
 * The one explicit list of connectors (design.md habit 4). Adding a PSP or an agency is a
 * folder, a mapping file, and one line here. A duplicate id fails at boot.
 */
import type { PspConnector } from './psp/types';
import type { AgencyConnector } from './agency/types';
import { stripeConnector } from './psp/stripe';
import { adyenConnector } from './psp/adyen';
import { gocardlessConnector } from './psp/gocardless';
import { mollieConnector } from './psp/mollie';
import { referenceAgencyConnector } from './agency/reference';
import { rivertyAgencyConnector } from './agency/riverty';

export const PSP_CONNECTORS: readonly PspConnector<any>[] = [stripeConnector, adyenConnector, gocardlessConnector, mollieConnector];

export const AGENCY_CONNECTORS: readonly AgencyConnector<any>[] = [referenceAgencyConnector, rivertyAgencyConnector];

function indexById<T extends { id: string }>(list: readonly T[], what: string): Map<string, T> {
  const map = new Map<string, T>();
  for (const c of list) {
    if (map.has(c.id)) throw new Error(`duplicate ${what} connector id: ${c.id}`);
    map.set(c.id, c);
  }
  return map;
}

export const pspConnectors = indexById(PSP_CONNECTORS, 'PSP');
export const agencyConnectors = indexById(AGENCY_CONNECTORS, 'agency');
